//! One entry point over both wire forms, so the network layer is written once.

use super::canonical::{self, ReportRun};
use super::frame::{decode_frame, FrameError, Status};
use super::json::{decode_text_frame, encode_json, parse_json, TextFrameError};
use super::message::{EncodeError, Message, MessageError};
use std::fmt;

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

/// The stream cannot be split into frames any more: the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A binary framing error.
    Binary(FrameError),
    /// A text framing error.
    Text(TextFrameError),
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::Binary(e) => e.fmt(f),
            FramingError::Text(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FramingError {}

impl<'a> From<Result<Message<'a>, MessageError>> for Decoded<'a> {
    fn from(r: Result<Message<'a>, MessageError>) -> Self {
        match r {
            Ok(m) => Decoded::Message(m),
            Err(e) => Decoded::Invalid(e),
        }
    }
}

/// What [`Codec::decode_with`] hands each decoded frame to. Implementations should mark
/// `handle` `#[inline(always)]`, which is the point of the method.
pub trait HandleDecoded<'a> {
    /// What handling one frame yields.
    type Output;
    /// Handles one decoded frame.
    fn handle(&mut self, decoded: Decoded<'a>) -> Self::Output;
}

/// The handler that returns the decoded frame itself: [`Codec::decode`].
struct Keep;

impl<'a> HandleDecoded<'a> for Keep {
    type Output = Decoded<'a>;

    #[inline(always)]
    fn handle(&mut self, decoded: Decoded<'a>) -> Decoded<'a> {
        decoded
    }
}

impl Codec {
    /// Decodes the first frame of `buf` and the message inside it.
    ///
    /// Returns the content and the bytes consumed, [`Status::Partial`] when more bytes are
    /// needed, or a [`FramingError`] when the stream cannot continue.
    #[inline(always)]
    pub fn decode(self, buf: &[u8]) -> Result<Status<(Decoded<'_>, usize)>, FramingError> {
        self.decode_with(buf, &mut Keep)
    }

    /// Decodes the first frame of `buf` and hands its content to `handler`, returning what the
    /// handler returns and the bytes consumed ([`Codec::decode`] keeps the content itself).
    ///
    /// The handler is inlined into each decoding path: a message of a canonical layout reaches it in registers rather than
    /// through a stack copy of the [`Decoded`] union, whose overlapping variants make the
    /// compiler store it in pieces that a whole-word load then waits for.
    #[inline(always)]
    pub fn decode_with<'a, H: HandleDecoded<'a>>(
        self,
        buf: &'a [u8],
        handler: &mut H,
    ) -> Result<Status<(H::Output, usize)>, FramingError> {
        Ok(match self {
            Codec::Binary => match decode_frame(buf).map_err(FramingError::Binary)? {
                Status::Complete((frame, used)) => {
                    let result = match canonical::parse(frame) {
                        Some(msg) => handler.handle(Decoded::Message(msg)),
                        None => handler.handle(Message::parse_general(frame).into()),
                    };
                    Status::Complete((result, used))
                }
                Status::Partial => Status::Partial,
            },
            Codec::Json => match decode_text_frame(buf).map_err(FramingError::Text)? {
                Status::Complete((body, used)) => {
                    Status::Complete((handler.handle(parse_json(body).into()), used))
                }
                Status::Partial => Status::Partial,
            },
        })
    }

    /// Acknowledges, in one pass, the reports at the front of `buf` that have the form's
    /// canonical layout: appends to `out` exactly the acks that decoding them one by one and
    /// answering each as a session does would append, as long as `out` has grown by less than
    /// `room` bytes before each. `None` when the first frame is not such a report (or the form
    /// has no canonical layout, as JSON): decode it with [`Codec::decode_with`].
    #[inline(always)]
    pub fn ack_report_run(self, buf: &[u8], room: usize, out: &mut Vec<u8>) -> Option<ReportRun> {
        match self {
            Codec::Binary => canonical::ack_report_run(buf, room, out),
            Codec::Json => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what it is handed, so `decode_with` can be compared with `decode`.
    struct Collect;

    impl<'a> HandleDecoded<'a> for Collect {
        type Output = Decoded<'static>;

        fn handle(&mut self, decoded: Decoded<'a>) -> Decoded<'static> {
            match decoded {
                Decoded::Message(m) => Decoded::Message(m.into_owned()),
                Decoded::Invalid(e) => Decoded::Invalid(e),
            }
        }
    }

    #[test]
    fn decode_with_hands_over_what_decode_returns() {
        let inputs: [(Codec, &[u8]); 8] = [
            (
                Codec::Binary,
                &[0, 15, 3, 1, 1, 30, 2, 1, 53, 6, 4, 0, 0, 0, 7],
            ),
            (Codec::Binary, &[0, 9, 4, 6, 4, 0, 0, 0, 7]),
            (Codec::Binary, &[0, 9, 3, 1, 1, 30, 2, 1, 53, 0]),
            (Codec::Binary, &[0, 9, 3, 1, 1, 130, 2, 1, 53]),
            (Codec::Binary, &[0, 9, 3, 1, 1]),
            (Codec::Binary, &[0, 2, 3]),
            (Codec::Json, b"17\n{\"type\":\"resume\"}"),
            (Codec::Json, b"x\n"),
        ];
        for (codec, bytes) in inputs {
            let via_handler = codec.decode_with(bytes, &mut Collect);
            let direct = codec.decode(bytes).map(|s| match s {
                Status::Complete((d, used)) => Status::Complete((Collect.handle(d), used)),
                Status::Partial => Status::Partial,
            });
            assert_eq!(via_handler, direct, "{bytes:?}");
        }
    }
}
