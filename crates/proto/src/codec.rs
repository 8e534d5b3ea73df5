//! One entry point over both wire forms: [`Codec::decode`] and [`Codec::encode`].

use crate::error::{EncodeError, FramingError, MessageError};
use crate::frame::{decode_frame, Status};
use crate::json::{decode_text_frame, encode_json, parse_json};
use crate::message::Message;

/// Which wire form a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// The binary AVP form.
    Binary,
    /// The text form: decimal length, newline, JSON body.
    Json,
}

/// A complete frame's content: a valid message, or the reason it is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid message.
    Message(Message<'a>),
    /// A well-framed but invalid message; it deserves an error answer, the stream goes on.
    Invalid(MessageError),
}

impl<'a> From<Result<Message<'a>, MessageError>> for Decoded<'a> {
    fn from(r: Result<Message<'a>, MessageError>) -> Self {
        match r {
            Ok(m) => Decoded::Message(m),
            Err(e) => Decoded::Invalid(e),
        }
    }
}

impl Codec {
    /// Decodes the first frame of `buf` and the message inside it.
    ///
    /// Returns the content and the bytes consumed, [`Status::Partial`] when more bytes are
    /// needed, or a [`FramingError`] when the stream cannot continue.
    #[inline(always)]
    pub fn decode(self, buf: &[u8]) -> Result<Status<(Decoded<'_>, usize)>, FramingError> {
        Ok(match self {
            Codec::Binary => match decode_frame(buf)? {
                Status::Complete((frame, used)) => {
                    Status::Complete((Message::parse(frame).into(), used))
                }
                Status::Partial => Status::Partial,
            },
            Codec::Json => match decode_text_frame(buf)? {
                Status::Complete((body, used)) => Status::Complete((parse_json(body).into(), used)),
                Status::Partial => Status::Partial,
            },
        })
    }

    /// Appends the encoding of `msg` to `out` and returns the bytes written.
    #[inline(always)]
    pub fn encode(self, msg: &Message<'_>, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        match self {
            Codec::Binary => msg.encode(out),
            Codec::Json => encode_json(msg, out),
        }
    }
}
