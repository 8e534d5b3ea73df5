//! Binary framing: the 3-byte header (`length` u16 big-endian, `type` u8) and the body it bounds.
//!
//! This module only splits a byte stream into frames. It does not look inside the body (see
//! [`crate::message`]) and never allocates: a [`Frame`] borrows from the caller's buffer.

use crate::error::{DatagramError, FramingError};
use byteorder::{BigEndian, ByteOrder};

/// Size of the frame header: two length bytes and one type byte.
pub const HEADER_LEN: usize = 3;
/// Largest frame the 16-bit length field can describe, header included.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Outcome of a decode attempt that did not fail: a complete item, or "need more bytes".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A complete item was decoded.
    Complete(T),
    /// The buffer holds a valid prefix; more bytes are needed.
    Partial,
}

/// A complete binary frame borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The raw message type byte (0..=4 are defined, the rest are unknown).
    pub msg_type: u8,
    /// The body: a sequence of AVPs that must fill it exactly.
    pub body: &'a [u8],
}

/// Decodes the first frame of `buf`.
///
/// Returns the frame and the number of bytes it occupies, [`Status::Partial`] when `buf` is a
/// prefix of a frame, or [`FramingError`] as soon as the length field is readable and invalid
/// (the length is checked before waiting for the body).
#[inline(always)]
pub fn decode_frame(buf: &[u8]) -> Result<Status<(Frame<'_>, usize)>, FramingError> {
    if buf.len() < 2 {
        return Ok(Status::Partial);
    }
    let len = BigEndian::read_u16(buf);
    if (len as usize) < HEADER_LEN {
        return Err(FramingError::LengthTooSmall(len));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(Status::Partial);
    }
    let frame = Frame {
        msg_type: buf[2],
        body: &buf[HEADER_LEN..len],
    };
    Ok(Status::Complete((frame, len)))
}

/// Decodes a UDP datagram, which must hold exactly one frame whose length equals its size.
pub fn decode_datagram(buf: &[u8]) -> Result<Frame<'_>, DatagramError> {
    if buf.len() < HEADER_LEN {
        return Err(DatagramError::TooShort(buf.len()));
    }
    let field = BigEndian::read_u16(buf);
    if field as usize != buf.len() {
        return Err(DatagramError::LengthMismatch {
            field,
            size: buf.len(),
        });
    }
    Ok(Frame {
        msg_type: buf[2],
        body: &buf[HEADER_LEN..],
    })
}

/// Writes a frame header for a frame of `total_len` bytes at `out[at..at + 3]`.
///
/// The caller guarantees `total_len <= MAX_FRAME_LEN` and that `out` holds the three bytes.
pub(crate) fn write_header(out: &mut [u8], at: usize, total_len: usize, msg_type: u8) {
    debug_assert!((HEADER_LEN..=MAX_FRAME_LEN).contains(&total_len));
    BigEndian::write_u16(&mut out[at..at + 2], total_len as u16);
    out[at + 2] = msg_type;
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_REPORT: &[u8] = &[0x00, 0x09, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35];

    #[test]
    fn a_minimal_report_is_one_frame() {
        let (frame, used) = match decode_frame(SEED_REPORT).unwrap() {
            Status::Complete(v) => v,
            Status::Partial => panic!("a minimal report must be complete"),
        };
        assert_eq!(used, 9);
        assert_eq!(frame.msg_type, 3);
        assert_eq!(frame.body, &SEED_REPORT[3..]);
    }

    #[test]
    fn every_prefix_is_partial() {
        for n in 0..SEED_REPORT.len() {
            assert_eq!(
                decode_frame(&SEED_REPORT[..n]),
                Ok(Status::Partial),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn lengths_below_header_are_fatal() {
        for len in 0u8..3 {
            assert_eq!(
                decode_frame(&[0, len]),
                Err(FramingError::LengthTooSmall(len as u16))
            );
        }
    }

    #[test]
    fn header_only_frame_has_empty_body() {
        let (frame, used) = match decode_frame(&[0, 3, 1, 0xFF]).unwrap() {
            Status::Complete(v) => v,
            Status::Partial => panic!("complete"),
        };
        assert_eq!((frame.msg_type, frame.body.len(), used), (1, 0, 3));
    }

    #[test]
    fn datagram_must_be_exactly_one_frame() {
        assert_eq!(decode_datagram(SEED_REPORT).unwrap().msg_type, 3);
        assert_eq!(decode_datagram(&[0, 3]), Err(DatagramError::TooShort(2)));
        assert_eq!(
            decode_datagram(&SEED_REPORT[..8]),
            Err(DatagramError::LengthMismatch { field: 9, size: 8 })
        );
        let mut two = SEED_REPORT.to_vec();
        two.extend_from_slice(SEED_REPORT);
        assert!(decode_datagram(&two).is_err());
    }

    #[test]
    fn max_length_frame() {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        write_header(&mut buf, 0, MAX_FRAME_LEN, 3);
        assert_eq!(decode_frame(&buf[..MAX_FRAME_LEN - 1]), Ok(Status::Partial));
        match decode_frame(&buf).unwrap() {
            Status::Complete((f, used)) => {
                assert_eq!(used, MAX_FRAME_LEN);
                assert_eq!(f.body.len(), MAX_FRAME_LEN - 3);
            }
            Status::Partial => panic!("complete"),
        }
    }
}
