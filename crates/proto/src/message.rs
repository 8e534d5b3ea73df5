//! The message model shared by both codecs, and its binary encoding and parsing.
//!
//! Both the binary decoder and the JSON decoder fill a `Fields` record attribute by attribute
//! and then build the message from it, checking every value and every type against the rules
//! of [`crate::rules`] on the way. Nothing here does IO; decoding borrows from the input and
//! does not allocate.

use crate::avp::{
    self, Attribute, AvpIter, UintError, AVP_HEADER_LEN, MAX_UINT_LEN, MAX_VALUE_LEN,
};
use crate::canonical;
use crate::error::{EncodeError, InvalidReason, MessageError};
use crate::frame::{self, Frame, HEADER_LEN};
use crate::rules::{first_of, type_rule, value_rule, AttrSet, ValueRule};
use std::borrow::Cow;
use std::fmt;

/// The five message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Stop pushing reports for a duration.
    Pause = 0,
    /// Resume pushing reports.
    Resume = 1,
    /// Answer to a command or to an invalid message.
    CommandResponse = 2,
    /// A resource usage sample.
    StatReport = 3,
    /// Acknowledges a stat report.
    StatReportAck = 4,
}

impl MessageType {
    /// Maps a wire byte to a known type; `None` for 5..=255.
    pub fn from_u8(code: u8) -> Option<MessageType> {
        match code {
            0 => Some(MessageType::Pause),
            1 => Some(MessageType::Resume),
            2 => Some(MessageType::CommandResponse),
            3 => Some(MessageType::StatReport),
            4 => Some(MessageType::StatReportAck),
            _ => None,
        }
    }

    /// The protocol name of the type.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Pause => "PAUSE",
            MessageType::Resume => "RESUME",
            MessageType::CommandResponse => "COMMAND_RESPONSE",
            MessageType::StatReport => "STAT_REPORT",
            MessageType::StatReportAck => "STAT_REPORT_ACK",
        }
    }

    /// True for the two answer types (COMMAND_RESPONSE, STAT_REPORT_ACK), which are never
    /// answered themselves.
    pub fn is_answer(self) -> bool {
        matches!(
            self,
            MessageType::CommandResponse | MessageType::StatReportAck
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Result codes carried in RESULT_CODE.
pub mod result_code {
    /// The command was carried out.
    pub const OK: u16 = 200;
    /// The message was malformed or invalid.
    pub const BAD_REQUEST: u16 = 400;
    /// The message type is not supported.
    pub const UNSUPPORTED_TYPE: u16 = 501;
    /// No such node: a command's target is not connected to any collector.
    pub const NOT_FOUND: u16 = 404;
    /// The node is overloaded.
    pub const OVERLOADED: u16 = 503;
    /// A relayed command got no answer in time.
    pub const TIMED_OUT: u16 = 504;
    /// A report failed authentication (unsigned, unknown node, bad signature, stale or
    /// replayed); it was not accepted.
    pub const UNAUTHORIZED: u16 = 401;

    /// Every code above with its name.
    pub const NAMES: [(u16, &str); 7] = [
        (OK, "OK"),
        (BAD_REQUEST, "BAD_REQUEST"),
        (UNAUTHORIZED, "UNAUTHORIZED"),
        (NOT_FOUND, "NOT_FOUND"),
        (UNSUPPORTED_TYPE, "UNSUPPORTED_TYPE"),
        (OVERLOADED, "OVERLOADED"),
        (TIMED_OUT, "TIMED_OUT"),
    ];
}

/// The state of a node's row in the fleet view, as a node pushes it to terminals (STATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum NodeState {
    /// Reporting on time.
    #[default]
    Ok = 0,
    /// No report for longer than its stale time.
    Stale = 1,
    /// Paused by an operator (until PAUSED_UNTIL).
    Paused = 2,
    /// Its TIMESTAMP is far from the collector's clock.
    ClockSkew = 3,
    /// Gone from the view (silent past the node TTL): the terminal drops the row.
    Removed = 4,
}

impl NodeState {
    /// The largest STATE value.
    pub const MAX: u8 = 4;

    /// The state of a STATE value (0..=[`NodeState::MAX`]).
    pub fn from_u8(v: u8) -> Option<NodeState> {
        Some(match v {
            0 => NodeState::Ok,
            1 => NodeState::Stale,
            2 => NodeState::Paused,
            3 => NodeState::ClockSkew,
            4 => NodeState::Removed,
            _ => return None,
        })
    }

    /// Its name, as terminals show it.
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Ok => "ok",
            NodeState::Stale => "stale",
            NodeState::Paused => "paused",
            NodeState::ClockSkew => "clock skew",
            NodeState::Removed => "removed",
        }
    }
}

/// What a node says of a fleet row when it pushes it to a terminal: STATE, RECEIVED and
/// PAUSED_UNTIL. Reports from agents carry none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetState {
    /// The row's state.
    pub state: NodeState,
    /// When a collector last received the node's report, ms since the Unix epoch.
    pub received_ms: Option<u64>,
    /// Until when the node is paused, ms since the Unix epoch.
    pub paused_until_ms: Option<u64>,
}

/// Longest binary message this module encodes: a STAT_REPORT with every attribute (CPU, MEM
/// and STATE in one byte, TIMESTAMP, INSTANCE, RECEIVED, PAUSED_UNTIL and SEQUENCE in eight,
/// a 255-byte NODE_ID). Encoders reserve it once.
const MAX_ENCODED_LEN: usize = HEADER_LEN
    + 3 * (AVP_HEADER_LEN + 1)
    + 5 * (AVP_HEADER_LEN + MAX_UINT_LEN)
    + (AVP_HEADER_LEN + MAX_VALUE_LEN);

/// A resource usage sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'a> {
    /// CPU usage, percent 0..=100.
    pub cpu_percent: u8,
    /// Memory usage, percent 0..=100.
    pub mem_percent: u8,
    /// When the sample was taken, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<u64>,
    /// The reporting host's name (1..=255 bytes).
    pub node_id: Option<Cow<'a, str>>,
    /// The reporting agent's instance, which makes (NODE_ID, INSTANCE, SEQUENCE) the report's
    /// identity.
    pub instance: Option<u64>,
    /// The row's state, in a report a node pushes to a terminal.
    pub fleet: Option<FleetState>,
}

impl Report<'_> {
    /// Copies borrowed text so the report outlives its input buffer.
    pub fn into_owned(self) -> Report<'static> {
        Report {
            cpu_percent: self.cpu_percent,
            mem_percent: self.mem_percent,
            timestamp_ms: self.timestamp_ms,
            node_id: self.node_id.map(|n| Cow::Owned(n.into_owned())),
            instance: self.instance,
            fleet: self.fleet,
        }
    }
}

/// What a message says, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// PAUSE: stop sampling (an agent) or pushing (to a terminal) for `duration_secs` seconds
    /// or until RESUME.
    Pause {
        /// Pause length in seconds (1..=[`MAX_PAUSE_SECS`](crate::MAX_PAUSE_SECS)).
        duration_secs: u64,
        /// From a terminal: the nodes to pause (a glob over NODE_IDs); without it the pushes
        /// to that terminal pause.
        target: Option<Cow<'a, str>>,
    },
    /// RESUME: end a pause.
    Resume {
        /// From a terminal: the nodes to resume (a glob over NODE_IDs); without it the pushes
        /// to that terminal resume.
        target: Option<Cow<'a, str>>,
    },
    /// COMMAND_RESPONSE: a result code and optional text.
    CommandResponse {
        /// The result code, see [`result_code`].
        code: u16,
        /// Human-readable result, at most 255 bytes.
        info: Option<Cow<'a, str>>,
        /// Set in one node's result of a targeted command (not the command's answer).
        node: Option<Cow<'a, str>>,
    },
    /// STAT_REPORT: one sample.
    StatReport(Report<'a>),
    /// STAT_REPORT_ACK.
    StatReportAck,
}

/// One protocol message: its body plus the optional SEQUENCE every type may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Requester-chosen sequence number, echoed in answers.
    pub sequence: Option<u64>,
    /// The type-specific content.
    pub body: Body<'a>,
}

impl<'a> Message<'a> {
    /// The message's type.
    pub fn msg_type(&self) -> MessageType {
        match self.body {
            Body::Pause { .. } => MessageType::Pause,
            Body::Resume { .. } => MessageType::Resume,
            Body::CommandResponse { .. } => MessageType::CommandResponse,
            Body::StatReport(_) => MessageType::StatReport,
            Body::StatReportAck => MessageType::StatReportAck,
        }
    }

    /// A COMMAND_RESPONSE with `code` and `info`, echoing `sequence`.
    pub fn command_response(
        sequence: Option<u64>,
        code: u16,
        info: impl Into<Cow<'a, str>>,
    ) -> Self {
        Message {
            sequence,
            body: Body::CommandResponse {
                code,
                info: Some(info.into()),
                node: None,
            },
        }
    }

    /// A PAUSE of `duration_secs`, for `target` when given.
    pub fn pause(sequence: Option<u64>, duration_secs: u64, target: Option<&'a str>) -> Self {
        Message {
            sequence,
            body: Body::Pause {
                duration_secs,
                target: target.map(Cow::Borrowed),
            },
        }
    }

    /// A RESUME, for `target` when given.
    pub fn resume(sequence: Option<u64>, target: Option<&'a str>) -> Self {
        Message {
            sequence,
            body: Body::Resume {
                target: target.map(Cow::Borrowed),
            },
        }
    }

    /// A STAT_REPORT_ACK echoing `sequence`.
    pub fn ack(sequence: Option<u64>) -> Self {
        Message {
            sequence,
            body: Body::StatReportAck,
        }
    }

    /// Copies borrowed text so the message outlives its input buffer.
    pub fn into_owned(self) -> Message<'static> {
        let owned = |t: Option<Cow<'_, str>>| t.map(|t| Cow::Owned(t.into_owned()));
        let body = match self.body {
            Body::Pause {
                duration_secs,
                target,
            } => Body::Pause {
                duration_secs,
                target: owned(target),
            },
            Body::Resume { target } => Body::Resume {
                target: owned(target),
            },
            Body::CommandResponse { code, info, node } => Body::CommandResponse {
                code,
                info: owned(info),
                node: owned(node),
            },
            Body::StatReport(r) => Body::StatReport(r.into_owned()),
            Body::StatReportAck => Body::StatReportAck,
        };
        Message {
            sequence: self.sequence,
            body,
        }
    }

    /// Parses a frame's body into a message, checking every rule of the protocol.
    #[inline(always)]
    pub fn parse(frame: Frame<'a>) -> Result<Message<'a>, MessageError> {
        match canonical::parse(frame) {
            Some(msg) => Ok(msg),
            None => Self::parse_general(frame),
        }
    }

    /// [`Message::parse`] without the canonical-layout shortcut: AVP by AVP.
    #[inline(always)]
    pub(crate) fn parse_general(frame: Frame<'a>) -> Result<Message<'a>, MessageError> {
        let Some(msg_type) = MessageType::from_u8(frame.msg_type) else {
            // An unknown type's attributes may mean anything: do not validate them.
            return Err(MessageError {
                msg_type: None,
                sequence: find_sequence(frame.body),
                reason: InvalidReason::UnknownType(frame.msg_type),
                detail: None,
            });
        };
        let mut fields = Fields::default();
        for avp in AvpIter::new(frame.body) {
            let result = match avp {
                Err(t) => Err(InvalidReason::TruncatedAvp { offset: t.offset }),
                Ok(avp) => match Attribute::from_u8(avp.attribute) {
                    None => Ok(()),
                    Some(attr) if attr.is_octets() => fields.set_octets(attr, avp.value.len()),
                    Some(attr) if attr.is_text() => match std::str::from_utf8(avp.value) {
                        Ok(text) => fields.set_text(attr, Cow::Borrowed(text)),
                        Err(_) => Err(InvalidReason::InvalidUtf8(attr)),
                    },
                    Some(attr) => match avp::read_uint(avp.value) {
                        Ok(v) => fields.set_uint(attr, v),
                        Err(UintError::Empty) => Err(InvalidReason::EmptyInt(attr)),
                        Err(UintError::TooWide(n)) => Err(InvalidReason::IntTooWide(attr, n)),
                    },
                },
            };
            if let Err(reason) = result {
                return Err(reject(msg_type, fields.sequence(), frame.body, reason));
            }
        }
        let sequence = fields.sequence();
        fields
            .into_message(msg_type)
            .map_err(|reason| reject(msg_type, sequence, frame.body, reason))
    }

    /// Appends the binary encoding of this message to `out`.
    ///
    /// Returns the number of bytes written. On error nothing is left appended.
    #[inline(always)]
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        match canonical::encode(self, out) {
            Some(n) => Ok(n),
            None => self.encode_general(out),
        }
    }

    /// Appends the binary encoding of any message, attribute by attribute.
    pub(crate) fn encode_general(&self, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        self.check_encodable()?;
        out.reserve(MAX_ENCODED_LEN);
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        match &self.body {
            Body::Pause {
                duration_secs,
                target,
            } => {
                avp::put_uint(out, Attribute::Duration, *duration_secs);
                if let Some(target) = target {
                    avp::put_text(out, Attribute::Target, target);
                }
            }
            Body::Resume { target } => {
                if let Some(target) = target {
                    avp::put_text(out, Attribute::Target, target);
                }
            }
            Body::StatReportAck => {}
            Body::CommandResponse { code, info, node } => {
                avp::put_uint(out, Attribute::ResultCode, *code as u64);
                if let Some(info) = info {
                    avp::put_text(out, Attribute::Info, info);
                }
                if let Some(node) = node {
                    avp::put_text(out, Attribute::NodeId, node);
                }
            }
            Body::StatReport(r) => {
                avp::put_uint(out, Attribute::CpuUsage, r.cpu_percent as u64);
                avp::put_uint(out, Attribute::MemUsage, r.mem_percent as u64);
                if let Some(ts) = r.timestamp_ms {
                    avp::put_uint(out, Attribute::Timestamp, ts);
                }
                if let Some(node) = &r.node_id {
                    avp::put_text(out, Attribute::NodeId, node);
                }
                if let Some(instance) = r.instance {
                    avp::put_uint(out, Attribute::Instance, instance);
                }
                if let Some(f) = &r.fleet {
                    avp::put_uint(out, Attribute::State, f.state as u64);
                    if let Some(t) = f.paused_until_ms {
                        avp::put_uint(out, Attribute::PausedUntil, t);
                    }
                    if let Some(t) = f.received_ms {
                        avp::put_uint(out, Attribute::Received, t);
                    }
                }
            }
        }
        if let Some(seq) = self.sequence {
            // Senders always use 4 bytes; 8 only for a value that does not fit.
            let width = if seq > u32::MAX as u64 { 8 } else { 4 };
            avp::put_uint_with_width(out, Attribute::Sequence, seq, width);
        }
        let len = out.len() - start;
        frame::write_header(out, start, len, self.msg_type() as u8);
        Ok(len)
    }

    /// Checks every value against the protocol's rules, so that encoding yields a valid frame.
    pub fn check_encodable(&self) -> Result<(), EncodeError> {
        let uint = |attr: Attribute, v: u64| {
            if value_rule(attr).allows_uint(v) {
                Ok(())
            } else {
                Err(EncodeError::OutOfRange(attr, v))
            }
        };
        let text = |attr: Attribute, text: Option<&str>| match text {
            Some(t) if !value_rule(attr).allows_text_len(t.len()) => {
                Err(EncodeError::TextLength(attr, t.len()))
            }
            Some(t) if !value_rule(attr).allows_chars(t) => Err(EncodeError::Unprintable(attr)),
            _ => Ok(()),
        };
        match &self.body {
            Body::Pause {
                duration_secs,
                target,
            } => {
                uint(Attribute::Duration, *duration_secs)?;
                text(Attribute::Target, target.as_deref())
            }
            Body::Resume { target } => text(Attribute::Target, target.as_deref()),
            Body::CommandResponse { code, info, node } => {
                uint(Attribute::ResultCode, u64::from(*code))?;
                text(Attribute::Info, info.as_deref())?;
                text(Attribute::NodeId, node.as_deref())
            }
            Body::StatReport(r) => {
                uint(Attribute::CpuUsage, u64::from(r.cpu_percent))?;
                uint(Attribute::MemUsage, u64::from(r.mem_percent))?;
                text(Attribute::NodeId, r.node_id.as_deref())
            }
            Body::StatReportAck => Ok(()),
        }
    }
}

/// The error for a rejected binary message; out of line so the accepting path stays small.
#[cold]
#[inline(never)]
fn reject(
    msg_type: MessageType,
    sequence: Option<u64>,
    body: &[u8],
    reason: InvalidReason,
) -> MessageError {
    MessageError {
        msg_type: Some(msg_type),
        sequence: sequence.or_else(|| find_sequence(body)),
        reason,
        detail: None,
    }
}

/// Scans a body for the first well-formed SEQUENCE AVP, stopping at a truncated AVP.
///
/// Used for invalid messages, so that even error answers can be correlated.
pub(crate) fn find_sequence(body: &[u8]) -> Option<u64> {
    AvpIter::new(body)
        .map_while(Result::ok)
        .find(|a| a.attribute == Attribute::Sequence as u8)
        .and_then(|a| avp::read_uint(a.value).ok())
}

/// Attribute values gathered from one message, before the per-type rules are applied.
///
/// Decoders call [`Fields::set_uint`] / [`Fields::set_text`] once per attribute they meet, then
/// [`Fields::into_message`]. Setting an attribute twice, or to a value outside its range, fails.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields<'a> {
    present: AttrSet,
    cpu: u8,
    mem: u8,
    duration: u64,
    result_code: u16,
    info: Option<Cow<'a, str>>,
    sequence: u64,
    timestamp: u64,
    node_id: Option<Cow<'a, str>>,
    instance: u64,
    target: Option<Cow<'a, str>>,
    state: u8,
    paused_until: u64,
    received: u64,
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn mark(&mut self, attr: Attribute) -> Result<(), InvalidReason> {
        let bit: AttrSet = 1 << (attr as u8);
        if self.present & bit != 0 {
            return Err(InvalidReason::Duplicate(attr));
        }
        self.present |= bit;
        Ok(())
    }

    fn has(&self, attr: Attribute) -> bool {
        self.present & (1 << (attr as u8)) != 0
    }

    /// Records an integer attribute after checking it against its rule.
    ///
    /// Text attributes passed here are reported as [`InvalidReason::WrongKind`].
    #[inline(always)]
    pub(crate) fn set_uint(&mut self, attr: Attribute, v: u64) -> Result<(), InvalidReason> {
        self.mark(attr)?;
        let rule = value_rule(attr);
        if !matches!(rule, ValueRule::Uint { .. }) {
            return Err(InvalidReason::WrongKind(attr));
        }
        if !rule.allows_uint(v) {
            return Err(InvalidReason::OutOfRange(attr, v));
        }
        // The rule bounds every narrowed value: percentages to 100, result codes to 999.
        match attr {
            Attribute::CpuUsage => self.cpu = v as u8,
            Attribute::MemUsage => self.mem = v as u8,
            Attribute::Duration => self.duration = v,
            Attribute::ResultCode => self.result_code = v as u16,
            Attribute::Sequence => self.sequence = v,
            Attribute::Timestamp => self.timestamp = v,
            Attribute::Instance => self.instance = v,
            Attribute::State => self.state = v as u8,
            Attribute::PausedUntil => self.paused_until = v,
            Attribute::Received => self.received = v,
            Attribute::Info | Attribute::NodeId | Attribute::Target | Attribute::Authenticator => {
                unreachable!("other kinds return above")
            }
        }
        Ok(())
    }

    /// Records a text attribute after checking it against its rule.
    ///
    /// Integer attributes passed here are reported as [`InvalidReason::WrongKind`].
    #[inline(always)]
    pub(crate) fn set_text(
        &mut self,
        attr: Attribute,
        text: Cow<'a, str>,
    ) -> Result<(), InvalidReason> {
        self.mark(attr)?;
        let rule = value_rule(attr);
        if !rule.is_text() {
            return Err(InvalidReason::WrongKind(attr));
        }
        if !rule.allows_text_len(text.len()) {
            return Err(InvalidReason::TextLength(attr, text.len()));
        }
        if !rule.allows_chars(&text) {
            return Err(InvalidReason::Unprintable(attr));
        }
        match attr {
            Attribute::Info => self.info = Some(text),
            Attribute::NodeId => self.node_id = Some(text),
            Attribute::Target => self.target = Some(text),
            _ => unreachable!("integer attributes return above"),
        }
        Ok(())
    }

    /// Records an attribute of raw bytes, `len` bytes long, after checking its length. The
    /// value itself is not part of the message: only [`crate::auth`] reads it, from the frame.
    pub(crate) fn set_octets(&mut self, attr: Attribute, len: usize) -> Result<(), InvalidReason> {
        self.mark(attr)?;
        match value_rule(attr) {
            ValueRule::Octets { len: want } if want == len => Ok(()),
            ValueRule::Octets { .. } => Err(InvalidReason::OctetsLength(attr, len)),
            _ => Err(InvalidReason::WrongKind(attr)),
        }
    }

    /// The SEQUENCE recorded so far, if any.
    pub(crate) fn sequence(&self) -> Option<u64> {
        self.has(Attribute::Sequence).then_some(self.sequence)
    }

    /// Applies the per-type rules (allowed and required attributes) and builds the message.
    #[inline(always)]
    pub(crate) fn into_message(self, msg_type: MessageType) -> Result<Message<'a>, InvalidReason> {
        let (allowed, required) = type_rule(msg_type);
        if let Some(extra) = first_of(self.present & !allowed) {
            return Err(InvalidReason::NotAllowed(extra, msg_type));
        }
        if let Some(missing) = first_of(required & !self.present) {
            return Err(InvalidReason::Missing(missing, msg_type));
        }
        let sequence = self.sequence();
        let fleet_attrs = [
            Attribute::State,
            Attribute::PausedUntil,
            Attribute::Received,
        ];
        let fleet = fleet_attrs
            .iter()
            .any(|&a| self.has(a))
            .then(|| FleetState {
                // The rule bounds STATE to NodeState::MAX.
                state: NodeState::from_u8(self.state).unwrap_or_default(),
                paused_until_ms: self
                    .has(Attribute::PausedUntil)
                    .then_some(self.paused_until),
                received_ms: self.has(Attribute::Received).then_some(self.received),
            });
        let body = match msg_type {
            MessageType::Pause => Body::Pause {
                duration_secs: self.duration,
                target: self.target,
            },
            MessageType::Resume => Body::Resume {
                target: self.target,
            },
            MessageType::CommandResponse => Body::CommandResponse {
                code: self.result_code,
                info: self.info,
                node: self.node_id,
            },
            MessageType::StatReport => Body::StatReport(Report {
                cpu_percent: self.cpu,
                mem_percent: self.mem,
                timestamp_ms: self.has(Attribute::Timestamp).then_some(self.timestamp),
                instance: self.has(Attribute::Instance).then_some(self.instance),
                node_id: self.node_id,
                fleet,
            }),
            MessageType::StatReportAck => Body::StatReportAck,
        };
        Ok(Message { sequence, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_frame, Status};

    fn parse(bytes: &[u8]) -> Result<Message<'_>, MessageError> {
        match decode_frame(bytes).expect("framing") {
            Status::Complete((frame, used)) => {
                assert_eq!(used, bytes.len());
                Message::parse(frame)
            }
            Status::Partial => panic!("partial"),
        }
    }

    fn frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let len = (body.len() + 3) as u16;
        let mut v = len.to_be_bytes().to_vec();
        v.push(msg_type);
        v.extend_from_slice(body);
        v
    }

    fn reason(bytes: &[u8]) -> InvalidReason {
        parse(bytes).expect_err("must be invalid").reason
    }

    #[test]
    fn a_minimal_report() {
        let msg = parse(&[0x00, 0x09, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35]).unwrap();
        assert_eq!(
            msg,
            Message {
                sequence: None,
                body: Body::StatReport(Report {
                    fleet: None,
                    cpu_percent: 30,
                    mem_percent: 53,
                    timestamp_ms: None,
                    node_id: None,
                    instance: None,
                })
            }
        );
        let mut out = Vec::new();
        msg.encode(&mut out).unwrap();
        assert_eq!(out, [0x00, 0x09, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35]);
    }

    #[test]
    fn ack_echoes_sequence_in_four_bytes() {
        let mut out = Vec::new();
        Message::ack(Some(7)).encode(&mut out).unwrap();
        assert_eq!(out, [0, 9, 4, 6, 4, 0, 0, 0, 7]);
    }

    #[test]
    fn every_integer_width_is_accepted() {
        for width in 1..=8usize {
            let mut body = vec![3, width as u8];
            body.extend(std::iter::repeat_n(0, width - 1));
            body.push(5);
            let bytes = frame(0, &body);
            let msg = parse(&bytes).unwrap();
            assert_eq!(
                msg.body,
                Body::Pause {
                    target: None,
                    duration_secs: 5
                }
            );
        }
    }

    #[test]
    fn unknown_attributes_are_skipped_however_often() {
        let body = [
            0x63, 0, 0x63, 2, 1, 2, 1, 1, 10, 0x63, 1, 9, 2, 1, 20, 0xFF, 0,
        ];
        let bytes = frame(3, &body);
        let msg = parse(&bytes).unwrap();
        assert!(matches!(
            msg.body,
            Body::StatReport(Report {
                cpu_percent: 10,
                mem_percent: 20,
                ..
            })
        ));
    }

    #[test]
    fn rule_violations() {
        use Attribute::*;
        assert_eq!(
            reason(&frame(3, &[1, 1, 1, 1, 1, 2, 2, 1, 3])),
            InvalidReason::Duplicate(CpuUsage)
        );
        assert_eq!(
            reason(&frame(3, &[1, 1, 101, 2, 1, 3])),
            InvalidReason::OutOfRange(CpuUsage, 101)
        );
        assert_eq!(
            reason(&frame(3, &[1, 0, 2, 1, 3])),
            InvalidReason::EmptyInt(CpuUsage)
        );
        assert_eq!(
            reason(&frame(3, &[1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1])),
            InvalidReason::IntTooWide(CpuUsage, 9)
        );
        assert_eq!(
            reason(&frame(3, &[1, 1, 1, 2, 1, 3, 8, 1, 0xFF])),
            InvalidReason::InvalidUtf8(NodeId)
        );
        assert_eq!(
            reason(&frame(3, &[1, 1, 1, 2, 1, 3, 8, 0])),
            InvalidReason::TextLength(NodeId, 0)
        );
        assert_eq!(
            reason(&frame(3, &[1, 1, 1])),
            InvalidReason::Missing(MemUsage, MessageType::StatReport)
        );
        assert_eq!(
            reason(&frame(0, &[])),
            InvalidReason::Missing(Duration, MessageType::Pause)
        );
        assert_eq!(
            reason(&frame(0, &[3, 1, 0])),
            InvalidReason::OutOfRange(Duration, 0)
        );
        assert_eq!(
            reason(&frame(1, &[3, 1, 5])),
            InvalidReason::NotAllowed(Duration, MessageType::Resume)
        );
        assert_eq!(
            reason(&frame(1, &[6, 4, 0, 0])),
            InvalidReason::TruncatedAvp { offset: 0 }
        );
        assert_eq!(
            reason(&frame(1, &[6])),
            InvalidReason::TruncatedAvp { offset: 0 }
        );
        assert_eq!(
            reason(&frame(2, &[4, 1, 50])),
            InvalidReason::OutOfRange(ResultCode, 50)
        );
    }

    #[test]
    fn errors_carry_sequence_and_code() {
        let err = parse(&frame(3, &[6, 4, 0, 0, 0, 9, 1, 1, 200])).unwrap_err();
        assert_eq!((err.sequence, err.result_code()), (Some(9), 400));
        let err = parse(&frame(3, &[1, 1, 200, 6, 4, 0, 0, 0, 9])).unwrap_err();
        assert_eq!(err.sequence, Some(9), "sequence found after the bad AVP");
        let err = parse(&frame(77, &[6, 1, 5, 1, 0])).unwrap_err();
        assert_eq!(
            (err.reason, err.sequence, err.result_code()),
            (InvalidReason::UnknownType(77), Some(5), 501)
        );
        assert_eq!(err.to_string(), "unsupported message type 77");
        assert!(!err.is_answer());
        let err = parse(&frame(4, &[1, 1, 1])).unwrap_err();
        assert!(err.is_answer());
    }

    #[test]
    fn encode_refuses_out_of_range_values() {
        let mut out = vec![0xAA];
        let bad = Message::command_response(None, 200, "x".repeat(256));
        assert_eq!(
            bad.encode(&mut out),
            Err(EncodeError::TextLength(Attribute::Info, 256))
        );
        assert_eq!(out, [0xAA], "nothing appended on error");
        let bad = Message {
            sequence: None,
            body: Body::Pause {
                target: None,
                duration_secs: 0,
            },
        };
        assert!(bad.encode(&mut out).is_err());
    }

    #[test]
    fn all_types_round_trip() {
        let msgs = [
            Message {
                sequence: Some(1),
                body: Body::Pause {
                    target: None,
                    duration_secs: 200,
                },
            },
            Message {
                sequence: None,
                body: Body::Resume { target: None },
            },
            Message::command_response(Some(u64::MAX), 503, "overloaded"),
            Message::ack(None),
            Message {
                sequence: Some(42),
                body: Body::StatReport(Report {
                    fleet: None,
                    cpu_percent: 100,
                    mem_percent: 0,
                    timestamp_ms: Some(1_700_000_000_000),
                    node_id: Some("host-1".into()),
                    instance: Some(0x0123_4567_89AB_CDEF),
                }),
            },
        ];
        for msg in msgs {
            let mut out = Vec::new();
            let n = msg.encode(&mut out).unwrap();
            assert_eq!(n, out.len());
            assert_eq!(parse(&out).unwrap(), msg);
        }
    }
}
