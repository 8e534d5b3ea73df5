//! The AVP resource-usage protocol, free of IO: framing, attribute-value pairs, the message
//! model, and the two wire forms (binary and JSON text).
//!
//! Decoding works on byte slices and returns borrowed views; encoding appends to a
//! caller-supplied buffer. This module knows nothing of sockets, connections or time.
//! The normative description is `docs/PROTOCOL.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod avp;
mod canonical;
pub mod codec;
pub mod frame;
pub mod json;
pub mod message;

pub use avp::Attribute;
pub use canonical::{ack_frame, report_frame, ReportRun, ACK_FRAME_LEN, REPORT_FRAME_LEN};
pub use codec::{Codec, Decoded, FramingError, HandleDecoded};
pub use frame::{decode_datagram, decode_frame, DatagramError, Frame, FrameError, Status};
pub use message::{
    result_code, Body, EncodeError, InvalidReason, Message, MessageError, MessageType, Report,
};
