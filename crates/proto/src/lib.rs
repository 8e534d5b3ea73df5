//! The AVP resource-usage protocol, free of IO: framing, attribute-value pairs, the message
//! model with its rules, the two wire forms (binary and JSON text), and the two sessions that
//! speak it.
//!
//! - [`ServerSession`]: the node's side of a connection or UDP socket. Bytes in, answers out
//!   in request order, accepted reports handed to the caller.
//! - [`PeerSession`]: the side of an agent, a terminal or a load generator. Requests out,
//!   answers matched to them by SEQUENCE, PAUSE and RESUME obeyed and answered.
//! - [`Codec`]: decode and encode single frames, for tools and tests.
//!
//! Nothing here opens a socket, reads a clock or starts a thread: callers pass the time of every
//! input and the buffers to read from and write to. The normative description of the wire
//! format is `docs/PROTOCOL.md`; the rules it states live in one table, [`rules`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod avp;
mod canonical;
mod codec;
mod error;
mod frame;
mod json;
mod message;
pub mod peer;
pub mod rules;
pub mod server;

pub use avp::Attribute;
pub use codec::{Codec, Decoded};
pub use error::{DatagramError, EncodeError, FramingError, InvalidReason, MessageError};
pub use frame::{decode_datagram, decode_frame, Frame, Status, HEADER_LEN, MAX_FRAME_LEN};
pub use json::MAX_TEXT_FRAME_LEN;
pub use message::{result_code, Body, FleetState, Message, MessageType, NodeState, Report};
pub use peer::PeerSession;
pub use rules::MAX_PAUSE_SECS;
pub use server::ServerSession;
