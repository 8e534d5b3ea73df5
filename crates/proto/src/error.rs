//! The protocol's errors, one flat enum per concern: [`FramingError`] closes a stream,
//! [`InvalidReason`] (inside [`MessageError`]) is answered with 400 or 501 and the stream goes
//! on, [`DatagramError`] drops a datagram, [`EncodeError`] refuses to write an invalid message.

use crate::avp::{Attribute, MAX_VALUE_LEN};
use crate::frame::HEADER_LEN;
use crate::json::{MAX_BODY_LEN, MAX_HEADER_DIGITS};
use crate::message::{result_code, MessageType};
use crate::rules::{value_rule, ValueRule};
use std::fmt;

/// The stream cannot be split into frames any more: the connection must close (after sending
/// the answers owed for the frames before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A binary frame's length field is below the 3-byte header.
    LengthTooSmall(u16),
    /// A text frame's length header holds a byte that is not an ASCII digit.
    TextNonDigit(u8),
    /// A text frame's length header is empty (the frame starts with `\n`).
    TextEmptyLength,
    /// A text frame announces a body longer than 65535 bytes.
    TextTooLong,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::LengthTooSmall(len) => write!(
                f,
                "frame length {len} is below the {HEADER_LEN}-byte header; stream cannot be resynchronised"
            ),
            FramingError::TextNonDigit(b) => {
                write!(f, "length header holds non-digit byte 0x{b:02x}")
            }
            FramingError::TextEmptyLength => f.write_str("length header is empty"),
            FramingError::TextTooLong => write!(
                f,
                "announced body is longer than {MAX_BODY_LEN} bytes (at most {MAX_HEADER_DIGITS} digits)"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

/// Why a UDP datagram is not exactly one frame; it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramError {
    /// The datagram is shorter than a frame header.
    TooShort(usize),
    /// The length field disagrees with the datagram size.
    LengthMismatch {
        /// The frame's length field.
        field: u16,
        /// The datagram's size in bytes.
        size: usize,
    },
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramError::TooShort(n) => {
                write!(f, "datagram of {n} bytes is shorter than a frame header")
            }
            DatagramError::LengthMismatch { field, size } => {
                write!(
                    f,
                    "frame length {field} does not match datagram size {size}"
                )
            }
        }
    }
}

impl std::error::Error for DatagramError {}

/// Why a well-framed message is invalid. `Copy`, so the decoding hot path keeps it in
/// registers; text that only a JSON error has lives in [`MessageError::detail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReason {
    /// The binary message type is not one of 0..=4 (answered with 501).
    UnknownType(u8),
    /// The JSON `type` is not one this protocol defines (answered with 501); the detail names it.
    UnknownTypeName,
    /// The last AVP runs past the end of the body.
    TruncatedAvp {
        /// Offset within the body where the AVP starts.
        offset: usize,
    },
    /// A known attribute appears twice.
    Duplicate(Attribute),
    /// An integer attribute has a zero-length value.
    EmptyInt(Attribute),
    /// An integer attribute is wider than 8 bytes.
    IntTooWide(Attribute, usize),
    /// An integer value is outside the attribute's range.
    OutOfRange(Attribute, u64),
    /// A text attribute is not valid UTF-8.
    InvalidUtf8(Attribute),
    /// A text attribute is too short or too long.
    TextLength(Attribute, usize),
    /// A text attribute holds a control character where only printable text is allowed.
    Unprintable(Attribute),
    /// An attribute of raw bytes has the wrong length.
    OctetsLength(Attribute, usize),
    /// A JSON value of raw bytes is not a string of hexadecimal digits.
    NotHex(Attribute),
    /// A text attribute was given a number, or an integer attribute text (JSON only).
    WrongKind(Attribute),
    /// The message type requires this attribute.
    Missing(Attribute, MessageType),
    /// The message type does not allow this attribute.
    NotAllowed(Attribute, MessageType),
    /// A JSON percentage is neither a number nor text such as `"30%"`.
    NotAPercentage(Attribute),
    /// The JSON body could not be read; the detail says why.
    Json,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InvalidReason::*;
        match self {
            UnknownType(t) => write!(f, "unsupported message type {t}"),
            UnknownTypeName => f.write_str("unsupported message type"),
            TruncatedAvp { offset } => write!(
                f,
                "AVP at body offset {offset} runs past the end of the message"
            ),
            Duplicate(a) => write!(f, "{a} appears more than once"),
            EmptyInt(a) => write!(f, "{a} has an empty value"),
            IntTooWide(a, n) => write!(f, "{a} is {n} bytes long; integers are 1 to 8 bytes"),
            OutOfRange(a, v) => match value_rule(*a) {
                ValueRule::Uint { min, max } => write!(f, "{a} {v} is out of range {min}..={max}"),
                ValueRule::Text { .. } => write!(f, "{a} must be text"),
                ValueRule::Octets { len } => write!(f, "{a} must be {len} bytes"),
            },
            InvalidUtf8(a) => write!(f, "{a} is not valid UTF-8"),
            TextLength(a, n) => match value_rule(*a) {
                ValueRule::Text { min_len, .. } => {
                    write!(
                        f,
                        "{a} is {n} bytes long; allowed {min_len}..={MAX_VALUE_LEN}"
                    )
                }
                ValueRule::Uint { .. } => write!(f, "{a} must be an unsigned integer"),
                ValueRule::Octets { len } => write!(f, "{a} must be {len} bytes"),
            },
            Unprintable(a) => write!(f, "{a} holds a control character"),
            OctetsLength(a, n) => match value_rule(*a) {
                ValueRule::Octets { len } => write!(f, "{a} is {n} bytes long; it must be {len}"),
                _ => write!(f, "{a} is not raw bytes"),
            },
            NotHex(a) => write!(f, "{a} must be hexadecimal digits"),
            WrongKind(a) if a.is_text() => write!(f, "{a} must be text"),
            WrongKind(a) if a.is_octets() => write!(f, "{a} must be hexadecimal digits"),
            WrongKind(a) => write!(f, "{a} must be an unsigned integer"),
            Missing(a, t) => write!(f, "{t} requires {a}"),
            NotAllowed(a, t) => write!(f, "{a} is not allowed in {t}"),
            NotAPercentage(a) => write!(f, "{a} is not a percentage"),
            Json => f.write_str("invalid JSON message"),
        }
    }
}

/// Longest peer-supplied text quoted in an error text, so that every [`MessageError`] text
/// fits in an INFO AVP (255 bytes) and the error answer can always be encoded.
const MAX_QUOTED_LEN: usize = 200;

/// Writes `s`, cut at a character boundary to at most [`MAX_QUOTED_LEN`] bytes plus `...`.
fn write_clipped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if s.len() <= MAX_QUOTED_LEN {
        return f.write_str(s);
    }
    let mut end = MAX_QUOTED_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    write!(f, "{}...", &s[..end])
}

/// A well-framed message that breaks a rule; the connection stays usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// The offending message's type, when it is a known one.
    pub msg_type: Option<MessageType>,
    /// Its SEQUENCE, when one could be read, so the error answer can echo it.
    pub sequence: Option<u64>,
    /// What is wrong.
    pub reason: InvalidReason,
    /// Text that completes the reason (the JSON parser's message, the unknown type's name).
    pub detail: Option<Box<str>>,
}

impl MessageError {
    /// The RESULT_CODE that answers this error: 501 for an unknown type, 400 otherwise.
    pub fn result_code(&self) -> u16 {
        match self.reason {
            InvalidReason::UnknownType(_) | InvalidReason::UnknownTypeName => {
                result_code::UNSUPPORTED_TYPE
            }
            _ => result_code::BAD_REQUEST,
        }
    }

    /// True when the offending message was itself an answer (COMMAND_RESPONSE or
    /// STAT_REPORT_ACK), which must never be answered.
    pub fn is_answer(&self) -> bool {
        self.msg_type.is_some_and(MessageType::is_answer)
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)?;
        match &self.detail {
            Some(detail) => {
                let separator = if self.reason == InvalidReason::UnknownTypeName {
                    " "
                } else {
                    ": "
                };
                f.write_str(separator)?;
                write_clipped(f, detail)
            }
            None => Ok(()),
        }
    }
}

impl std::error::Error for MessageError {}

/// A message that cannot be encoded because a value is outside its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// An integer value is outside its attribute's range.
    OutOfRange(Attribute, u64),
    /// A text value is empty where it must not be, or longer than 255 bytes.
    TextLength(Attribute, usize),
    /// A text value holds a control character where only printable text is allowed.
    Unprintable(Attribute),
    /// The frame could not be signed.
    Unsignable(crate::auth::SignError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::OutOfRange(a, v) => write!(f, "cannot encode {a} {v}: out of range"),
            EncodeError::TextLength(a, n) => write!(f, "cannot encode {a} of {n} bytes"),
            EncodeError::Unprintable(a) => {
                write!(f, "cannot encode {a} holding a control character")
            }
            EncodeError::Unsignable(e) => write!(f, "cannot sign the frame: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}
