//! The network layer: listening sockets, connection buffers, and driving one connection's
//! reads and writes. It moves bytes and frames; what a message means is the session's job.

pub mod buffer;
pub mod conn;
pub mod listen;
