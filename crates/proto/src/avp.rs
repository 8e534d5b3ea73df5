//! Attribute-value pairs: `attribute` u8, `value length` u8, then the value.
//!
//! This module walks a frame body AVP by AVP and encodes single AVPs. It knows the attribute
//! numbers and how integers and text are laid out, but not which attributes a message needs
//! (the rules table says that: [`crate::rules`]).

use std::fmt;

/// Size of an AVP header: attribute byte and value-length byte.
pub const AVP_HEADER_LEN: usize = 2;
/// Largest value one AVP can carry.
pub const MAX_VALUE_LEN: usize = u8::MAX as usize;
/// Widest unsigned integer a receiver accepts, in bytes.
pub const MAX_UINT_LEN: usize = 8;

/// The attributes this protocol defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Attribute {
    /// CPU usage, percent 0..=100.
    CpuUsage = 1,
    /// Memory usage, percent 0..=100.
    MemUsage = 2,
    /// Pause length in seconds.
    Duration = 3,
    /// Result code of a command response (200, 400, 501, 503).
    ResultCode = 4,
    /// Human-readable UTF-8 result text.
    Info = 5,
    /// Requester-chosen sequence number, echoed in the answer.
    Sequence = 6,
    /// Milliseconds since the Unix epoch when the sample was taken.
    Timestamp = 7,
    /// The reporting host's name, UTF-8, 1..=255 bytes.
    NodeId = 8,
    /// The reporting agent's instance: a number it draws once and keeps, so that a report it
    /// sends again is known as the same report.
    Instance = 9,
    /// The nodes a terminal's PAUSE or RESUME is for: a glob over NODE_IDs.
    Target = 10,
    /// The state of a node's row, in a report pushed to a terminal (see [`crate::NodeState`]).
    State = 11,
    /// Until when (ms since the Unix epoch) a node is paused, in a pushed report.
    PausedUntil = 12,
    /// When a collector last received the node's report (ms since the Unix epoch), in a
    /// pushed report.
    Received = 13,
    /// An HMAC-SHA256 over the whole frame with this value zeroed, keyed by the NODE_ID's
    /// secret (see [`crate::auth`]).
    Authenticator = 14,
}

impl Attribute {
    /// Every defined attribute, in numeric order.
    pub const ALL: [Attribute; 14] = [
        Attribute::CpuUsage,
        Attribute::MemUsage,
        Attribute::Duration,
        Attribute::ResultCode,
        Attribute::Info,
        Attribute::Sequence,
        Attribute::Timestamp,
        Attribute::NodeId,
        Attribute::Instance,
        Attribute::Target,
        Attribute::State,
        Attribute::PausedUntil,
        Attribute::Received,
        Attribute::Authenticator,
    ];

    /// Maps a wire byte to a known attribute; `None` for unknown attributes (to be skipped).
    #[inline(always)]
    pub fn from_u8(code: u8) -> Option<Attribute> {
        Some(match code {
            1 => Attribute::CpuUsage,
            2 => Attribute::MemUsage,
            3 => Attribute::Duration,
            4 => Attribute::ResultCode,
            5 => Attribute::Info,
            6 => Attribute::Sequence,
            7 => Attribute::Timestamp,
            8 => Attribute::NodeId,
            9 => Attribute::Instance,
            10 => Attribute::Target,
            11 => Attribute::State,
            12 => Attribute::PausedUntil,
            13 => Attribute::Received,
            14 => Attribute::Authenticator,
            _ => return None,
        })
    }

    /// The protocol name of the attribute, as used in error texts.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::CpuUsage => "CPU_USAGE",
            Attribute::MemUsage => "MEM_USAGE",
            Attribute::Duration => "DURATION",
            Attribute::ResultCode => "RESULT_CODE",
            Attribute::Info => "INFO",
            Attribute::Sequence => "SEQUENCE",
            Attribute::Timestamp => "TIMESTAMP",
            Attribute::NodeId => "NODE_ID",
            Attribute::Instance => "INSTANCE",
            Attribute::Target => "TARGET",
            Attribute::State => "STATE",
            Attribute::PausedUntil => "PAUSED_UNTIL",
            Attribute::Received => "RECEIVED",
            Attribute::Authenticator => "AUTHENTICATOR",
        }
    }
}

impl Attribute {
    /// True for attributes whose value is UTF-8 text rather than an unsigned integer.
    pub fn is_text(self) -> bool {
        crate::rules::value_rule(self).is_text()
    }

    /// True when `text` is a valid value of this text attribute: its length and its
    /// characters; false for attributes that are not text.
    pub fn allows_text(self, text: &str) -> bool {
        let rule = crate::rules::value_rule(self);
        rule.allows_text_len(text.len()) && rule.allows_chars(text)
    }

    /// True for attributes whose value is a fixed number of raw bytes.
    pub fn is_octets(self) -> bool {
        matches!(
            crate::rules::value_rule(self),
            crate::rules::ValueRule::Octets { .. }
        )
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One AVP borrowed from a frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avp<'a> {
    /// The raw attribute byte.
    pub attribute: u8,
    /// The value bytes; never longer than the body that holds them.
    pub value: &'a [u8],
}

/// The body ended inside an AVP header or value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncatedAvp {
    /// Offset within the body where the truncated AVP starts.
    pub offset: usize,
}

/// Iterator over the AVPs of a frame body; yields an error once, then stops, if the last AVP
/// overruns the body.
#[derive(Debug, Clone)]
pub struct AvpIter<'a> {
    body: &'a [u8],
    // INVARIANT: pos <= body.len().
    pos: usize,
}

impl<'a> AvpIter<'a> {
    /// Starts iterating over `body`.
    pub fn new(body: &'a [u8]) -> Self {
        AvpIter { body, pos: 0 }
    }
}

impl<'a> Iterator for AvpIter<'a> {
    type Item = Result<Avp<'a>, TruncatedAvp>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.body[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let start = self.pos;
        if rest.len() < AVP_HEADER_LEN || rest.len() < AVP_HEADER_LEN + rest[1] as usize {
            self.pos = self.body.len();
            return Some(Err(TruncatedAvp { offset: start }));
        }
        let value_len = rest[1] as usize;
        let value = &rest[AVP_HEADER_LEN..AVP_HEADER_LEN + value_len];
        self.pos += AVP_HEADER_LEN + value_len;
        Some(Ok(Avp {
            attribute: rest[0],
            value,
        }))
    }
}

/// Why an integer value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UintError {
    /// The value has zero bytes.
    Empty,
    /// The value is wider than 8 bytes.
    TooWide(usize),
}

/// Reads a big-endian unsigned integer of 1 to 8 bytes.
#[inline(always)]
pub fn read_uint(value: &[u8]) -> Result<u64, UintError> {
    match value.len() {
        0 => Err(UintError::Empty),
        n if n > MAX_UINT_LEN => Err(UintError::TooWide(n)),
        _ => Ok(value.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64)),
    }
}

/// Number of bytes in the shortest big-endian encoding of `v` (at least 1).
#[inline]
pub fn uint_width(v: u64) -> usize {
    let significant_bits = 64 - v.leading_zeros() as usize;
    significant_bits.div_ceil(8).max(1)
}

/// Appends an integer AVP using exactly `width` bytes (1..=8; the caller ensures `v` fits).
#[inline]
pub(crate) fn put_uint_with_width(out: &mut Vec<u8>, attribute: Attribute, v: u64, width: usize) {
    debug_assert!((1..=MAX_UINT_LEN).contains(&width) && uint_width(v) <= width);
    // One fixed-size copy of the header and the value shifted to the front, then the unused
    // tail cut off: cheaper than a copy whose length is only known at run time.
    let mut avp = [0u8; AVP_HEADER_LEN + MAX_UINT_LEN];
    avp[0] = attribute as u8;
    avp[1] = width as u8;
    let shifted = v << (8 * (MAX_UINT_LEN - width));
    avp[AVP_HEADER_LEN..].copy_from_slice(&shifted.to_be_bytes());
    let end = out.len() + AVP_HEADER_LEN + width;
    out.extend_from_slice(&avp);
    out.truncate(end);
}

/// Appends an integer AVP in the shortest width that holds `v`.
#[inline]
pub(crate) fn put_uint(out: &mut Vec<u8>, attribute: Attribute, v: u64) {
    put_uint_with_width(out, attribute, v, uint_width(v));
}

/// Appends a text AVP; the caller ensures `text.len() <= 255`.
#[inline]
pub(crate) fn put_text(out: &mut Vec<u8>, attribute: Attribute, text: &str) {
    debug_assert!(text.len() <= MAX_VALUE_LEN);
    out.push(attribute as u8);
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_are_checked_by_length_and_characters() {
        assert!(Attribute::NodeId.allows_text("ws-17"));
        assert!(Attribute::NodeId.allows_text(&"x".repeat(255)));
        assert!(!Attribute::NodeId.allows_text(""));
        assert!(!Attribute::NodeId.allows_text(&"x".repeat(256)));
        assert!(!Attribute::NodeId.allows_text("ws\u{1b}[2J"));
        assert!(Attribute::Info.allows_text(""));
        assert!(Attribute::Info.allows_text("line\nbreak"));
        assert!(!Attribute::CpuUsage.allows_text("5"));
    }

    #[test]
    fn iterates_a_minimal_report_body() {
        let body = [0x01, 0x01, 0x1E, 0x02, 0x01, 0x35];
        let avps: Vec<_> = AvpIter::new(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            avps,
            vec![
                Avp {
                    attribute: 1,
                    value: &[0x1E]
                },
                Avp {
                    attribute: 2,
                    value: &[0x35]
                }
            ]
        );
    }

    #[test]
    fn truncated_header_and_value() {
        let mut it = AvpIter::new(&[0x01]);
        assert_eq!(it.next(), Some(Err(TruncatedAvp { offset: 0 })));
        assert_eq!(it.next(), None);
        let mut it = AvpIter::new(&[0x01, 0x01, 0x1E, 0x02, 0x05, 0x00]);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next(), Some(Err(TruncatedAvp { offset: 3 })));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn zero_length_value_is_an_avp() {
        let avps: Vec<_> = AvpIter::new(&[0x09, 0x00]).collect();
        assert_eq!(
            avps,
            vec![Ok(Avp {
                attribute: 9,
                value: &[]
            })]
        );
    }

    #[test]
    fn uint_widths() {
        assert_eq!(read_uint(&[]), Err(UintError::Empty));
        assert_eq!(read_uint(&[0; 9]), Err(UintError::TooWide(9)));
        assert_eq!(read_uint(&[0x01, 0x02]), Ok(0x0102));
        assert_eq!(read_uint(&[0xFF; 8]), Ok(u64::MAX));
        assert_eq!(uint_width(0), 1);
        assert_eq!(uint_width(255), 1);
        assert_eq!(uint_width(256), 2);
        assert_eq!(uint_width(u64::MAX), 8);
    }

    #[test]
    fn put_uint_is_shortest() {
        let mut out = Vec::new();
        put_uint(&mut out, Attribute::CpuUsage, 30);
        put_uint(&mut out, Attribute::Timestamp, 0x01_0203_0405);
        assert_eq!(out, [1, 1, 30, 7, 5, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn attribute_codes_round_trip() {
        for a in Attribute::ALL {
            assert_eq!(Attribute::from_u8(a as u8), Some(a));
        }
        assert_eq!(Attribute::from_u8(0), None);
        assert_eq!(Attribute::from_u8(15), None);
    }
}
