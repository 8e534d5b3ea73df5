//! Fixed byte layouts of the two messages that make up nearly all data-plane traffic, read and
//! written without walking AVPs.
//!
//! A load tool or a minimal agent sends STAT_REPORT as CPU, MEM and a 4-byte SEQUENCE, in that
//! order (15 bytes); the node answers STAT_REPORT_ACK with the 4-byte SEQUENCE (9 bytes). These
//! functions read exactly those layouts, yielding what the general parser
//! (`Message::parse_general`, AVP by AVP) yields for them, and write them as the general
//! encoder does. Anything else (another order, other widths, extra or unknown attributes, a
//! value out of range) is declined and left to the general code. The ranges come from
//! [`crate::rules`]. Tests check that the two agree on every input the fast path accepts.

use crate::avp::Attribute;
use crate::frame::Frame;
use crate::message::{Body, Message, MessageType, Report};
use crate::rules::MAX_PERCENT;
use std::borrow::Cow;

const CPU: u8 = Attribute::CpuUsage as u8;
const MEM: u8 = Attribute::MemUsage as u8;
const SEQ: u8 = Attribute::Sequence as u8;

/// Body length of the canonical STAT_REPORT: CPU (3 bytes), MEM (3), SEQUENCE (6).
const REPORT_BODY_LEN: usize = 12;
/// Body length of the canonical STAT_REPORT_ACK: SEQUENCE (6 bytes).
const ACK_BODY_LEN: usize = 6;

/// Parses `frame` when it has one of the canonical layouts; `None` sends it to the general
/// parser.
#[inline(always)]
pub(crate) fn parse(frame: Frame<'_>) -> Option<Message<'static>> {
    let b = frame.body;
    if frame.msg_type == MessageType::StatReport as u8 {
        if let Some((cpu, mem, seq)) = report_body(b) {
            return Some(Message {
                sequence: Some(u64::from(seq)),
                body: Body::StatReport(report(cpu, mem, None, None, None)),
            });
        }
    } else if frame.msg_type == MessageType::StatReportAck as u8
        && b.len() == ACK_BODY_LEN
        && b[..2] == [SEQ, 4]
    {
        return Some(Message::ack(Some(u64::from(read_u32(&b[2..6])))));
    }
    None
}

/// Reads a canonical STAT_REPORT body: CPU, MEM and SEQUENCE, in that order and widths, with
/// both percentages in range.
#[inline(always)]
fn report_body(b: &[u8]) -> Option<(u8, u8, u32)> {
    let b: &[u8; REPORT_BODY_LEN] = b.try_into().ok()?;
    let fixed = [b[0], b[1], b[3], b[4], b[6], b[7]];
    let (cpu, mem) = (b[2], b[5]);
    let canonical = fixed == [CPU, 1, MEM, 1, SEQ, 4] && cpu <= MAX_PERCENT && mem <= MAX_PERCENT;
    canonical.then(|| (cpu, mem, read_u32(&b[8..12])))
}

/// A report of `cpu`, `mem`, `timestamp_ms`, `node_id` and `instance`.
#[inline(always)]
pub(crate) fn report<'a>(
    cpu: u8,
    mem: u8,
    timestamp_ms: Option<u64>,
    node_id: Option<Cow<'a, str>>,
    instance: Option<u64>,
) -> Report<'a> {
    Report {
        cpu_percent: cpu,
        mem_percent: mem,
        timestamp_ms,
        node_id,
        instance,
        fleet: None,
    }
}

/// CPU, MEM and SEQUENCE of the minimal report filling the first [`MINIMAL_REPORT_LEN`]
/// bytes of `input`, header included; `None` when they hold anything else.
#[inline(always)]
pub(crate) fn minimal_report(input: &[u8]) -> Option<(u8, u8, u32)> {
    let frame = input.get(..MINIMAL_REPORT_LEN)?;
    let (header, body) = frame.split_at(3);
    report_body(body).filter(|_| header == REPORT_HEADER)
}

/// Appends `msg` when it has a canonical layout (a STAT_REPORT of CPU, MEM and SEQUENCE, or a
/// STAT_REPORT_ACK with SEQUENCE, the SEQUENCE fitting the 4 bytes senders use) and returns the
/// bytes written; `None` leaves `out` untouched for the general encoder. The frame is the one
/// the general encoder writes, in one copy.
#[inline(always)]
pub(crate) fn encode(msg: &Message<'_>, out: &mut Vec<u8>) -> Option<usize> {
    let seq = u32::try_from(msg.sequence?).ok()?;
    match &msg.body {
        Body::StatReportAck => {
            out.extend_from_slice(&ack_frame(seq));
            Some(ACK_FRAME_LEN)
        }
        Body::StatReport(Report {
            cpu_percent,
            mem_percent,
            timestamp_ms: None,
            node_id: None,
            instance: None,
            fleet: None,
        }) => {
            out.extend_from_slice(&report_frame(*cpu_percent, *mem_percent, seq)?);
            Some(MINIMAL_REPORT_LEN)
        }
        _ => None,
    }
}

/// Size of the canonical (minimal) STAT_REPORT frame.
pub(crate) const MINIMAL_REPORT_LEN: usize = 3 + REPORT_BODY_LEN;
/// Header of the canonical STAT_REPORT frame: its length and type.
const REPORT_HEADER: [u8; 3] = [0, MINIMAL_REPORT_LEN as u8, MessageType::StatReport as u8];

/// The canonical STAT_REPORT of CPU `cpu` %, memory `mem` % and SEQUENCE `seq`, as the general
/// encoder writes it; `None` when a percentage is above 100.
#[inline(always)]
pub(crate) fn report_frame(cpu: u8, mem: u8, seq: u32) -> Option<[u8; MINIMAL_REPORT_LEN]> {
    if cpu > MAX_PERCENT || mem > MAX_PERCENT {
        return None;
    }
    let [a, b, c, d] = seq.to_be_bytes();
    let [h0, h1, h2] = REPORT_HEADER;
    Some([h0, h1, h2, CPU, 1, cpu, MEM, 1, mem, SEQ, 4, a, b, c, d])
}

/// Size of the canonical STAT_REPORT_ACK frame.
pub(crate) const ACK_FRAME_LEN: usize = 3 + ACK_BODY_LEN;

/// The canonical STAT_REPORT_ACK echoing `seq`: the exact bytes the node answers a report with
/// SEQUENCE `seq`, for a client that checks answers by comparing bytes.
#[inline(always)]
pub(crate) fn ack_frame(seq: u32) -> [u8; ACK_FRAME_LEN] {
    let [a, b, c, d] = seq.to_be_bytes();
    [0, 9, MessageType::StatReportAck as u8, SEQ, 4, a, b, c, d]
}

#[inline(always)]
fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_frame, Status};
    use proptest::prelude::*;

    fn frame(bytes: &[u8]) -> Frame<'_> {
        match decode_frame(bytes) {
            Ok(Status::Complete((f, n))) if n == bytes.len() => f,
            other => panic!("not one frame: {other:?}"),
        }
    }

    /// The fast path accepts `bytes` and agrees with the general parser.
    fn accepted(bytes: &[u8]) -> Message<'static> {
        let f = frame(bytes);
        let fast = parse(f).expect("canonical layout accepted");
        assert_eq!(Message::parse_general(f), Ok(fast.clone()));
        fast
    }

    fn declined(bytes: &[u8]) {
        assert_eq!(parse(frame(bytes)), None, "{bytes:02x?}");
    }

    #[test]
    fn canonical_report_and_ack() {
        let m = accepted(&[0, 15, 3, 1, 1, 30, 2, 1, 53, 6, 4, 0, 0, 1, 2]);
        assert_eq!(m.sequence, Some(258));
        let m = accepted(&[0, 15, 3, 1, 1, 100, 2, 1, 0, 6, 4, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(m.sequence, Some(u64::from(u32::MAX)));
        assert_eq!(
            accepted(&[0, 9, 4, 6, 4, 0, 0, 0, 7]),
            Message::ack(Some(7))
        );
    }

    #[test]
    fn other_layouts_are_declined() {
        // Values out of range: the general parser answers 400.
        declined(&[0, 15, 3, 1, 1, 101, 2, 1, 53, 6, 4, 0, 0, 0, 1]);
        declined(&[0, 15, 3, 1, 1, 30, 2, 1, 255, 6, 4, 0, 0, 0, 1]);
        // Another order, another width, another attribute, another type.
        declined(&[0, 15, 3, 2, 1, 53, 1, 1, 30, 6, 4, 0, 0, 0, 1]);
        declined(&[0, 15, 3, 1, 1, 30, 2, 1, 53, 9, 4, 0, 0, 0, 1]);
        declined(&[0, 15, 3, 1, 1, 30, 2, 1, 53, 6, 3, 0, 0, 1, 9]);
        declined(&[0, 15, 4, 1, 1, 30, 2, 1, 53, 6, 4, 0, 0, 0, 1]);
        declined(&[0, 9, 4, 6, 2, 0, 7, 9, 0]);
        declined(&[0, 9, 3, 6, 4, 0, 0, 0, 7]);
        declined(&[0, 9, 3, 1, 1, 30, 2, 1, 53]);
    }

    #[test]
    fn every_cpu_and_mem_byte_agrees_with_the_general_parser() {
        for cpu in 0..=255u8 {
            for mem in 0..=255u8 {
                let bytes = [0, 15, 3, 1, 1, cpu, 2, 1, mem, 6, 4, 1, 2, 3, 4];
                let f = frame(&bytes);
                match parse(f) {
                    Some(m) => assert_eq!(Message::parse_general(f), Ok(m)),
                    None => assert!(cpu > 100 || mem > 100),
                }
            }
        }
    }

    fn general(msg: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        msg.encode_general(&mut out).unwrap();
        out
    }

    proptest! {
        /// Frames one byte away from the canonical layouts, or anything: whenever the fast path
        /// accepts, the general parser says the same.
        #[test]
        fn fast_path_agrees_with_the_general_parser(
            mut report in proptest::collection::vec(0u8..=8, 15),
            mut ack in proptest::collection::vec(0u8..=8, 9),
            canonical_at in 0usize..15,
        ) {
            let template = [0, 15, 3, 1, 1, 30, 2, 1, 53, 6, 4, 0, 0, 0, 1];
            for (i, b) in report.iter_mut().enumerate() {
                if i != canonical_at && i >= 2 { *b = template[i]; }
            }
            report[0] = 0;
            report[1] = 15;
            let ack_template = [0, 9, 4, 6, 4, 0, 0, 0, 7];
            for (i, b) in ack.iter_mut().enumerate() {
                if i != canonical_at % 9 && i >= 2 { *b = ack_template[i]; }
            }
            ack[0] = 0;
            ack[1] = 9;
            for bytes in [&report[..], &ack[..]] {
                let f = frame(bytes);
                if let Some(m) = parse(f) {
                    prop_assert_eq!(Message::parse_general(f), Ok(m));
                }
            }
        }
    }

    #[test]
    fn encoding_matches_the_general_encoder() {
        let report = |cpu, mem, seq| Message {
            sequence: Some(seq),
            body: Body::StatReport(Report {
                fleet: None,
                cpu_percent: cpu,
                mem_percent: mem,
                timestamp_ms: None,
                node_id: None,
                instance: None,
            }),
        };
        for seq in [0, 7, 0x0102_0304, u64::from(u32::MAX)] {
            for msg in [
                Message::ack(Some(seq)),
                report(0, 100, seq),
                report(30, 53, seq),
            ] {
                let mut fast = Vec::new();
                let n = encode(&msg, &mut fast).expect("canonical");
                assert_eq!((n, &fast), (general(&msg).len(), &general(&msg)));
                assert_eq!(Message::parse_general(frame(&fast)), Ok(msg));
            }
        }
        // Everything else is left to the general encoder, which also refuses what is invalid.
        let mut out = Vec::new();
        for msg in [
            Message::ack(Some(1 << 32)),
            Message::ack(None),
            report(101, 5, 1),
            report(5, 101, 1),
            report(30, 53, 1 << 32),
            Message {
                sequence: Some(1),
                body: Body::Resume { target: None },
            },
        ] {
            assert_eq!(encode(&msg, &mut out), None, "{msg:?}");
        }
        assert!(out.is_empty());
    }
}
