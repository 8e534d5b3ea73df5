//! A run of reports acknowledged in one pass ([`Codec::ack_report_run`]) answers exactly what
//! decoding the frames one by one and handing each to a session answers: the same bytes, the
//! same frames consumed, the same reports counted, the same latest report, the same stop at the
//! output bound.

use avp_proto::{report_frame, Body, Codec, Message, Report, Status};
use avpd_node::session::{Kind, Session};
use proptest::collection::vec;
use proptest::prelude::*;
use std::time::Instant;

/// What answering a buffer produced.
#[derive(Debug, PartialEq, Eq)]
struct Answered {
    output: Vec<u8>,
    consumed: usize,
    reports: usize,
    latest: Option<Report<'static>>,
}

/// Answers one frame at the front of `buf` as a connection does without runs; false when no
/// complete frame is left.
fn answer_one(buf: &[u8], session: &mut Session, answered: &mut Answered) -> bool {
    let Ok(Status::Complete((decoded, used))) = Codec::Binary.decode(buf) else {
        return false;
    };
    let outcome = session.handle(Instant::now(), &decoded);
    if let Some(answer) = &outcome.answer {
        Codec::Binary
            .encode(answer, &mut answered.output)
            .expect("answers encode");
    }
    if let Some(report) = outcome.report {
        answered.latest = Some(report.clone().into_owned());
    }
    if outcome.kind == Kind::Report {
        answered.reports += 1;
    }
    answered.consumed += used;
    true
}

/// Answers `buf` until it holds no complete frame or the output reaches `max_output`, taking
/// runs of reports in one pass when `runs` is set.
fn answer(buf: &[u8], max_output: usize, runs: bool) -> Answered {
    let mut session = Session::new();
    let mut answered = Answered {
        output: Vec::new(),
        consumed: 0,
        reports: 0,
        latest: None,
    };
    while answered.output.len() < max_output {
        let rest = &buf[answered.consumed..];
        if runs {
            let room = max_output - answered.output.len();
            if let Some(run) = Codec::Binary.ack_report_run(rest, room, &mut answered.output) {
                answered.consumed += run.bytes;
                answered.reports += run.count;
                answered.latest = Some(run.last);
                continue;
            }
        }
        if !answer_one(rest, &mut session, &mut answered) {
            break;
        }
    }
    answered
}

fn encoded(msg: Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    Codec::Binary.encode(&msg, &mut out).expect("valid message");
    out
}

/// One frame: mostly canonical reports, some with percentages out of range, and every other
/// kind of frame that can interrupt a run.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let canonical = (0u8..=100, 0u8..=100, any::<u32>())
        .prop_map(|(cpu, mem, seq)| report_frame(cpu, mem, seq).unwrap().to_vec());
    prop_oneof![
        6 => canonical,
        1 => (0u8..=255, 0u8..=255, any::<u32>()).prop_map(|(cpu, mem, seq)| {
            let mut f = report_frame(0, 0, seq).unwrap().to_vec();
            (f[5], f[8]) = (cpu, mem);
            f
        }),
        1 => (0u8..=100, any::<u64>(), any::<u32>(), any::<bool>()).prop_map(
            |(cpu, ts, seq, named)| encoded(Message {
                sequence: Some(u64::from(seq)),
                body: Body::StatReport(Report {
                    cpu_percent: cpu,
                    mem_percent: cpu,
                    timestamp_ms: Some(ts),
                    node_id: named.then(|| "host-1".into()),
                }),
            })
        ),
        1 => any::<u32>().prop_map(|seq| encoded(Message::ack(Some(u64::from(seq))))),
        1 => Just(vec![0, 6, 0, 3, 1, 5]),
        1 => Just(vec![0, 3, 9]),
        1 => any::<u32>().prop_map(|seq| {
            let mut f = report_frame(1, 2, seq).unwrap().to_vec();
            f[2] = 7;
            f
        }),
    ]
}

proptest! {
    #[test]
    fn runs_answer_as_frame_by_frame(
        frames in vec(frame(), 0..60),
        tail in 0usize..15,
        max_output in prop_oneof![1usize..200, Just(usize::MAX)],
    ) {
        let mut buf: Vec<u8> = frames.concat();
        buf.extend_from_slice(&report_frame(3, 4, 5).unwrap()[..tail]);
        prop_assert_eq!(answer(&buf, max_output, true), answer(&buf, max_output, false));
    }
}

#[test]
fn a_run_stops_at_the_first_other_frame_and_at_the_room() {
    let reports: Vec<u8> = (0..4u32)
        .flat_map(|seq| report_frame(10, 20 + seq as u8, seq).unwrap())
        .collect();
    let mut buf = reports.clone();
    buf.extend_from_slice(&[0, 3, 1]);
    buf.extend_from_slice(&reports);

    let mut out = vec![0xAA];
    let run = Codec::Binary
        .ack_report_run(&buf, usize::MAX, &mut out)
        .expect("reports at the front");
    assert_eq!((run.count, run.bytes, run.last.mem_percent), (4, 60, 23));
    assert_eq!(out.len(), 1 + 4 * 9);
    assert_eq!(&out[1 + 27..], &[0, 9, 4, 6, 4, 0, 0, 0, 3]);

    // Room for 10 bytes of answers: the second ack starts before the bound, the third would not.
    let run = Codec::Binary.ack_report_run(&buf, 10, &mut Vec::new());
    assert_eq!(run.map(|r| r.count), Some(2));

    let mut out = Vec::new();
    assert_eq!(
        Codec::Binary.ack_report_run(&buf[60..], usize::MAX, &mut out),
        None
    );
    assert_eq!(
        Codec::Binary.ack_report_run(&buf[..14], usize::MAX, &mut out),
        None
    );
    assert_eq!(Codec::Json.ack_report_run(&buf, usize::MAX, &mut out), None);
    assert!(out.is_empty(), "nothing written when there is no run");
}
