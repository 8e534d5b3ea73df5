//! The network layer: listening sockets, connection buffers and the node's budget over them,
//! the transport under a connection (plain TCP or TLS), driving one TCP connection's reads and
//! writes (batched UDP IO is the `avp-udp` crate). It moves bytes; what a message means is the
//! session's job.

pub mod budget;
pub mod buffer;
pub mod conn;
pub mod listen;
pub mod peer;
pub mod tls;
pub mod transport;
