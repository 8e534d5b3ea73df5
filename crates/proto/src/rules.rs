//! The protocol's rules, in one table: for every attribute how its value is written and which
//! values it may take, and for every message type which attributes it allows and requires.
//!
//! Decoding (binary and text), encoding and the fast paths all read these
//! rules from here; nothing else states a range or a length.

use crate::avp::{Attribute, MAX_VALUE_LEN};
use crate::message::MessageType;

/// Largest accepted pause, in seconds (one week).
pub const MAX_PAUSE_SECS: u64 = 7 * 24 * 3600;

/// Largest CPU or memory percentage.
pub(crate) const MAX_PERCENT: u8 = 100;

/// How an attribute's value is written on the wire and which values are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRule {
    /// A big-endian unsigned integer of 1 to 8 bytes within `min..=max`.
    Uint {
        /// Smallest valid value.
        min: u64,
        /// Largest valid value.
        max: u64,
    },
    /// UTF-8 text of `min_len..=255` bytes.
    Text {
        /// Fewest bytes allowed.
        min_len: usize,
        /// True when control characters (C0, DEL, C1: terminal escapes among them) are
        /// refused, for text an operator's screen shows.
        printable: bool,
    },
    /// Exactly `len` raw bytes.
    Octets {
        /// The value's length.
        len: usize,
    },
}

impl ValueRule {
    /// True for text attributes.
    pub fn is_text(self) -> bool {
        matches!(self, ValueRule::Text { .. })
    }

    /// True when `v` is a valid value of an integer attribute with this rule.
    #[inline(always)]
    pub(crate) fn allows_uint(self, v: u64) -> bool {
        matches!(self, ValueRule::Uint { min, max } if (min..=max).contains(&v))
    }

    /// True when `len` bytes is a valid length of a text attribute with this rule.
    #[inline(always)]
    pub(crate) fn allows_text_len(self, len: usize) -> bool {
        matches!(self, ValueRule::Text { min_len, .. } if (min_len..=MAX_VALUE_LEN).contains(&len))
    }

    /// True when `text` holds only characters a text attribute with this rule allows.
    #[inline(always)]
    pub(crate) fn allows_chars(self, text: &str) -> bool {
        match self {
            ValueRule::Text {
                printable: true, ..
            } => !text.chars().any(char::is_control),
            _ => true,
        }
    }
}

/// Length of an AUTHENTICATOR value: an HMAC-SHA256.
pub const AUTHENTICATOR_LEN: usize = 32;

/// The value rule of `attr`.
#[inline(always)]
pub const fn value_rule(attr: Attribute) -> ValueRule {
    use Attribute::*;
    match attr {
        CpuUsage | MemUsage => ValueRule::Uint {
            min: 0,
            max: MAX_PERCENT as u64,
        },
        Duration => ValueRule::Uint {
            min: 1,
            max: MAX_PAUSE_SECS,
        },
        ResultCode => ValueRule::Uint { min: 100, max: 999 },
        Sequence | Timestamp | Instance | PausedUntil | Received => ValueRule::Uint {
            min: 0,
            max: u64::MAX,
        },
        State => ValueRule::Uint {
            min: 0,
            max: crate::message::NodeState::MAX as u64,
        },
        Info => ValueRule::Text {
            min_len: 0,
            printable: false,
        },
        NodeId | Target => ValueRule::Text {
            min_len: 1,
            printable: true,
        },
        Authenticator => ValueRule::Octets {
            len: AUTHENTICATOR_LEN,
        },
    }
}

/// A set of attributes as a bit mask: bit `n` is attribute number `n`.
pub(crate) type AttrSet = u32;

const fn set(attrs: &[Attribute]) -> AttrSet {
    let mut m = 0;
    let mut i = 0;
    while i < attrs.len() {
        m |= 1 << attrs[i] as u8;
        i += 1;
    }
    m
}

/// The attributes `msg_type` may carry, and those it must carry.
#[inline(always)]
pub(crate) const fn type_rule(msg_type: MessageType) -> (AttrSet, AttrSet) {
    use Attribute::*;
    match msg_type {
        MessageType::Pause => (set(&[Duration, Sequence, Target]), set(&[Duration])),
        MessageType::Resume => (set(&[Sequence, Target]), 0),
        MessageType::CommandResponse => (
            set(&[ResultCode, Info, Sequence, NodeId]),
            set(&[ResultCode]),
        ),
        MessageType::StatReport => (
            set(&[
                CpuUsage,
                MemUsage,
                Sequence,
                Timestamp,
                NodeId,
                Instance,
                State,
                PausedUntil,
                Received,
                Authenticator,
            ]),
            set(&[CpuUsage, MemUsage]),
        ),
        MessageType::StatReportAck => (set(&[Sequence]), 0),
    }
}

/// The first attribute of `set`, in numeric order.
pub(crate) fn first_of(set: AttrSet) -> Option<Attribute> {
    Attribute::from_u8(set.trailing_zeros() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_has_one_rule_and_the_kinds_are_right() {
        for a in Attribute::ALL {
            let rule = value_rule(a);
            assert_eq!(
                rule.is_text(),
                matches!(a, Attribute::Info | Attribute::NodeId | Attribute::Target)
            );
        }
        assert!(value_rule(Attribute::CpuUsage).allows_uint(100));
        assert!(!value_rule(Attribute::CpuUsage).allows_uint(101));
        assert!(!value_rule(Attribute::Duration).allows_uint(0));
        assert!(!value_rule(Attribute::NodeId).allows_text_len(0));
        assert!(value_rule(Attribute::Info).allows_text_len(0));
        assert!(!value_rule(Attribute::NodeId).allows_chars("a\u{1b}[2J"));
        assert!(value_rule(Attribute::NodeId).allows_chars("höst-1"));
        assert!(value_rule(Attribute::Info).allows_chars("a\nb"));
        assert!(Attribute::Authenticator.is_octets());
        assert!(!value_rule(Attribute::Info).allows_text_len(256));
    }

    #[test]
    fn required_attributes_are_allowed() {
        for t in [
            MessageType::Pause,
            MessageType::Resume,
            MessageType::CommandResponse,
            MessageType::StatReport,
            MessageType::StatReportAck,
        ] {
            let (allowed, required) = type_rule(t);
            assert_eq!(required & !allowed, 0, "{t}");
            assert_ne!(
                allowed & set(&[Attribute::Sequence]),
                0,
                "{t} carries SEQUENCE"
            );
        }
    }
}
