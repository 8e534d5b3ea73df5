//! The network layer: listening sockets, connection buffers and the node's budget over them,
//! driving one TCP connection's reads and writes (batched UDP IO is the `avp-udp` crate). It moves bytes; what a message means is the
//! session's job.

pub mod budget;
pub mod buffer;
pub mod conn;
pub mod listen;
pub mod peer;
