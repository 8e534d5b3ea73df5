//! ServerSession on a fake clock, and its fast paths against its general path.

use super::*;
use crate::canonical::{ack_frame, report_frame};
use proptest::collection::vec;
use proptest::prelude::*;

/// Every test session counts from one instant, taken before any test's own times.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A test's "now": never before the sessions' epoch.
fn start() -> Instant {
    epoch();
    Instant::now()
}

fn config(codec: Codec, role: Role) -> Arc<ServerConfig> {
    Arc::new(ServerConfig::new(codec, role, epoch()))
}

fn data() -> ServerSession {
    ServerSession::new(config(Codec::Binary, Role::Data), start())
}

/// The test clock of signed reports, ms since the Unix epoch.
const NOW_MS: u64 = 1_700_000_000_000;

/// What a node with keys gives its sessions: a key for "ws-17" only, a minute's window around
/// [`NOW_MS`], and its replay marks.
type Keys = auth::OneKey;

fn keys() -> Keys {
    auth::OneKey::new("ws-17", b"ws-17 secret", NOW_MS)
}

/// A sink that records every report and answers as told; with keys, it asks for signatures.
#[derive(Default)]
struct Recorder {
    reports: Vec<(Option<u64>, Report<'static>, Vec<u8>)>,
    decide: Vec<Acceptance>,
    next_ticket: u64,
    hold_all: bool,
    keys: Option<Keys>,
    failures: Vec<AuthFailure>,
}

impl ReportSink for Recorder {
    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        self.keys.as_mut().map(|k| k as &mut dyn Verifier)
    }

    fn on_unauthorized(&mut self, failure: AuthFailure) {
        self.failures.push(failure);
    }

    fn on_report(&mut self, r: &AcceptedReport<'_>) -> Acceptance {
        self.reports
            .push((r.sequence, r.report.clone().into_owned(), r.frame.to_vec()));
        if self.hold_all {
            self.next_ticket += 1;
            return Acceptance::Hold(self.next_ticket);
        }
        if self.decide.is_empty() {
            Acceptance::Ack
        } else {
            self.decide.remove(0)
        }
    }
}

fn encode(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

fn named_report(seq: u32, node: &str, cpu: u8, ts: u64) -> Vec<u8> {
    agent_report(seq, node, cpu, ts, None)
}

fn agent_report(seq: u32, node: &str, cpu: u8, ts: u64, instance: Option<u64>) -> Vec<u8> {
    encode(&Message {
        sequence: Some(u64::from(seq)),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: cpu,
            mem_percent: 40,
            timestamp_ms: Some(ts),
            node_id: Some(node.into()),
            instance,
        }),
    })
}

/// `frame` signed with the key [`Keys`] holds.
fn signed(mut frame: Vec<u8>) -> Vec<u8> {
    auth::sign(Codec::Binary, &mut frame, 0, &keys().key).unwrap();
    frame
}

/// The result code of each answer, 200 for an ack.
fn codes(answers: &[Message<'_>]) -> Vec<u16> {
    answers
        .iter()
        .map(|m| match m.body {
            Body::StatReportAck => 200,
            _ => code_and_info(m).0,
        })
        .collect()
}

/// Every message in `bytes`, decoded.
fn messages(bytes: &[u8]) -> Vec<Message<'static>> {
    let mut rest = bytes;
    let mut all = Vec::new();
    while !rest.is_empty() {
        match Codec::Binary.decode(rest).unwrap() {
            Status::Complete((Decoded::Message(m), used)) => {
                all.push(m.into_owned());
                rest = &rest[used..];
            }
            other => panic!("not a valid answer stream: {other:?}"),
        }
    }
    all
}

fn feed(s: &mut ServerSession, now: Instant, input: &[u8], sink: &mut Recorder) -> Vec<u8> {
    let mut out = Vec::new();
    let used = s
        .handle_input(
            now,
            input,
            &mut out,
            usize::MAX,
            sink,
            &mut Tally::default(),
        )
        .unwrap();
    assert_eq!(used, input.len());
    out
}

fn code_and_info(msg: &Message<'_>) -> (u16, String) {
    match &msg.body {
        Body::CommandResponse { code, info, .. } => (*code, info.as_deref().unwrap_or("").into()),
        other => panic!("expected a command response, got {other:?}"),
    }
}

#[test]
fn reports_are_acked_and_handed_over_in_order() {
    let mut s = data();
    let mut sink = Recorder::default();
    let mut input = report_frame(30, 53, 258).unwrap().to_vec();
    input.extend(named_report(7, "ws-17", 12, 1_700_000_000_000));
    input.extend(named_report(8, "ws-17", 13, 1_700_000_001_000));
    let out = feed(&mut s, start(), &input, &mut sink);
    assert_eq!(
        messages(&out),
        [258, 7, 8].map(|s| Message::ack(Some(s))).to_vec()
    );
    let seen: Vec<_> = sink
        .reports
        .iter()
        .map(|(seq, r, _)| {
            (
                *seq,
                r.cpu_percent,
                r.node_id.as_deref().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(258), 30, None),
            (Some(7), 12, Some("ws-17".to_string())),
            (Some(8), 13, Some("ws-17".to_string()))
        ]
    );
    assert_eq!(
        sink.reports[2].2,
        named_report(8, "ws-17", 13, 1_700_000_001_000)
    );
}

#[test]
fn invalid_and_unknown_frames_are_answered_and_answers_are_not() {
    let mut s = data();
    let mut sink = Recorder::default();
    let mut tally = Tally::default();
    let mut out = Vec::new();
    let input = [
        &[0u8, 9, 3, 1, 1, 130, 2, 1, 53][..],
        &[0, 6, 9, 6, 1, 7],
        &[0, 3, 4],
        &[0, 6, 2, 4, 1, 200],
        &[0, 5, 4, 1, 0],
    ]
    .concat();
    s.handle_input(start(), &input, &mut out, usize::MAX, &mut sink, &mut tally)
        .unwrap();
    let answers = messages(&out);
    assert_eq!(answers.len(), 2);
    assert_eq!(
        code_and_info(&answers[0]),
        (400, "CPU_USAGE 130 is out of range 0..=100".into())
    );
    assert_eq!(
        (code_and_info(&answers[1]), answers[1].sequence),
        ((501, "unsupported message type 9".into()), Some(7))
    );
    assert_eq!(
        (
            tally.invalid,
            tally.unsupported,
            tally.unsolicited,
            tally.answers
        ),
        (1, 1, 3, 2)
    );
    assert!(sink.reports.is_empty());
}

#[test]
fn a_framing_error_keeps_the_answers_owed_before_it() {
    let mut s = data();
    let mut out = Vec::new();
    let input = [&report_frame(1, 2, 3).unwrap()[..], &[0, 2, 3]].concat();
    let err = s.handle_input(
        start(),
        &input,
        &mut out,
        usize::MAX,
        &mut Recorder::default(),
        &mut Tally::default(),
    );
    assert_eq!(
        err,
        Err(CloseReason::Framing(FramingError::LengthTooSmall(2)))
    );
    assert_eq!(out, ack_frame(3));
}

#[test]
fn decoding_stops_at_the_output_bound_and_goes_on_after() {
    let mut s = data();
    let input: Vec<u8> = (0..10)
        .flat_map(|i| report_frame(1, 1, i).unwrap())
        .collect();
    let mut out = Vec::new();
    let mut sink = Recorder::default();
    let used = s
        .handle_input(
            start(),
            &input,
            &mut out,
            20,
            &mut sink,
            &mut Tally::default(),
        )
        .unwrap();
    assert_eq!(
        (used, out.len()),
        (3 * 15, 27),
        "stops once 20 bytes are reached"
    );
    out.clear();
    let used = s
        .handle_input(
            start(),
            &input[45..],
            &mut out,
            usize::MAX,
            &mut sink,
            &mut Tally::default(),
        )
        .unwrap();
    assert_eq!((used, sink.reports.len()), (7 * 15, 10));
}

#[test]
fn held_answers_keep_request_order_until_released() {
    let mut s = data();
    let mut sink = Recorder {
        decide: vec![Acceptance::Ack, Acceptance::Hold(5), Acceptance::Ack],
        ..Recorder::default()
    };
    let pause = encode(&Message {
        sequence: Some(9),
        body: Body::Pause {
            target: None,
            duration_secs: 3,
        },
    });
    let input = [
        &report_frame(1, 1, 1).unwrap()[..],
        &report_frame(1, 1, 2).unwrap(),
        &report_frame(1, 1, 3).unwrap(),
        &pause,
    ]
    .concat();
    let out = feed(&mut s, start(), &input, &mut sink);
    assert_eq!(
        out,
        ack_frame(1),
        "only the answer before the hold goes out"
    );
    assert!(s.held_len() > 0);
    let mut out = Vec::new();
    assert!(!s.release(4, &mut out), "ticket 5 is not confirmed yet");
    assert!(out.is_empty());
    assert!(s.release(5, &mut out));
    let answers = messages(&out);
    assert_eq!(answers[..2], [Message::ack(Some(2)), Message::ack(Some(3))]);
    assert_eq!(code_and_info(&answers[2]).0, 200);
    assert_eq!(s.held_len(), 0);
    // Nothing held: answers go straight out again.
    assert_eq!(
        feed(&mut s, start(), &report_frame(1, 1, 4).unwrap(), &mut sink),
        ack_frame(4)
    );
}

#[test]
fn runs_of_held_reports_release_up_to_the_confirmed_ticket() {
    let mut s = data();
    let mut sink = Recorder {
        hold_all: true,
        ..Recorder::default()
    };
    let first: Vec<u8> = (0..4)
        .flat_map(|i| report_frame(1, 1, i).unwrap())
        .collect();
    assert!(feed(&mut s, start(), &first, &mut sink).is_empty());
    // Another session took ticket 5: this one's next hold starts a new mark.
    sink.next_ticket = 5;
    let second: Vec<u8> = (4..6)
        .flat_map(|i| report_frame(1, 1, i).unwrap())
        .collect();
    assert!(feed(&mut s, start(), &second, &mut sink).is_empty());
    let mut out = Vec::new();
    assert!(!s.release(4, &mut out));
    assert_eq!(messages(&out).len(), 4);
    assert!(s.release(7, &mut out));
    assert_eq!(
        messages(&out),
        (0..6).map(|i| Message::ack(Some(i))).collect::<Vec<_>>()
    );
}

#[test]
fn a_fleet_command_on_a_plane_that_relays_none_is_answered_501() {
    let t0 = start();
    let mut s = ServerSession::new(config(Codec::Binary, Role::Management), t0);
    let mut sink = Recorder::default();
    let pause = encode(&Message {
        sequence: Some(5),
        body: Body::Pause {
            target: Some("ws-*".into()),
            duration_secs: 60,
        },
    });
    let out = feed(&mut s, t0, &pause, &mut sink);
    let answers = messages(&out);
    assert_eq!(
        (code_and_info(&answers[0]), answers[0].sequence),
        (
            (501, "this node does not relay commands to agents".into()),
            Some(5)
        )
    );
    assert!(s.push_credit(t0) > 0, "the pushes are not paused either");
}

#[test]
fn refused_reports_are_answered_503() {
    let mut s = data();
    let mut sink = Recorder {
        decide: vec![Acceptance::Refuse(Refusal::Overloaded)],
        ..Recorder::default()
    };
    let mut tally = Tally::default();
    let mut out = Vec::new();
    let input = [
        &report_frame(1, 1, 1).unwrap()[..],
        &named_report(2, "a", 1, 5),
    ]
    .concat();
    s.handle_input(start(), &input, &mut out, usize::MAX, &mut sink, &mut tally)
        .unwrap();
    let answers = messages(&out);
    assert_eq!(
        (code_and_info(&answers[0]).0, answers[0].sequence),
        (503, Some(1))
    );
    assert_eq!(answers[1], Message::ack(Some(2)));
    assert_eq!((tally.reports, tally.refused, tally.answers), (2, 1, 2));
}

#[test]
fn pause_gates_pushes_until_it_expires_or_resume() {
    let t0 = start();
    let mut s = ServerSession::new(config(Codec::Binary, Role::Management), t0);
    let mut sink = Recorder::default();
    assert_eq!(s.push_credit(t0), 65_536);
    let pause = encode(&Message {
        sequence: Some(5),
        body: Body::Pause {
            target: None,
            duration_secs: 2,
        },
    });
    let out = feed(&mut s, t0, &pause, &mut sink);
    assert_eq!(
        code_and_info(&messages(&out)[0]),
        (200, "paused for 2 s".into())
    );
    assert_eq!(s.push_credit(t0 + Duration::from_millis(1999)), 0);
    assert_eq!(
        s.poll_timeout(),
        t0 + Duration::from_secs(2),
        "the pause end is a timer"
    );
    assert!(
        s.push_credit(t0 + Duration::from_secs(2)) > 0,
        "pause expires"
    );
    feed(
        &mut s,
        t0,
        &encode(&Message {
            sequence: None,
            body: Body::Pause {
                target: None,
                duration_secs: 60,
            },
        }),
        &mut sink,
    );
    assert_eq!(s.push_credit(t0 + Duration::from_secs(3)), 0);
    let out = feed(&mut s, t0, &[0, 3, 1], &mut sink);
    assert_eq!(code_and_info(&messages(&out)[0]).1, "resumed");
    assert!(
        s.push_credit(t0 + Duration::from_secs(3)) > 0,
        "resume ends the pause early"
    );
    assert_eq!(data().push_credit(t0), 0, "the data plane never pushes");
}

#[test]
fn pushes_are_numbered_bounded_and_acked() {
    let t0 = start();
    let mut cfg = ServerConfig::new(Codec::Binary, Role::Management, epoch());
    cfg.max_unacked = 2;
    let mut s = ServerSession::new(Arc::new(cfg), t0);
    let mut tally = Tally::default();
    let mut out = Vec::new();
    let report = canonical::report(5, 6, Some(7), Some("n".into()), None);
    for _ in 0..2 {
        s.push_report(t0, &report, &mut out, &mut tally).unwrap();
    }
    let pushed = messages(&out);
    assert_eq!((pushed[0].sequence, pushed[1].sequence), (Some(0), Some(1)));
    assert_eq!(
        (s.push_credit(t0), s.unacked_pushes(), tally.pushes),
        (0, 2, 2)
    );
    let mut sink = Recorder::default();
    let mut tally = Tally::default();
    s.handle_input(
        t0,
        &ack_frame(0),
        &mut Vec::new(),
        usize::MAX,
        &mut sink,
        &mut tally,
    )
    .unwrap();
    assert_eq!((s.push_credit(t0), tally.push_acks), (1, 1));
}

#[test]
fn an_idle_session_times_out_from_its_last_input() {
    let t0 = start();
    let mut s = ServerSession::new(config(Codec::Binary, Role::Data), t0);
    let idle = s.config().idle_timeout;
    assert_eq!(s.poll_timeout(), t0 + idle);
    feed(
        &mut s,
        t0 + Duration::from_secs(100),
        &report_frame(1, 1, 1).unwrap(),
        &mut Recorder::default(),
    );
    assert_eq!(
        s.handle_timeout(t0 + idle),
        Ok(()),
        "the report was activity"
    );
    assert_eq!(s.poll_timeout(), t0 + Duration::from_secs(100) + idle);
    assert_eq!(
        s.handle_timeout(t0 + Duration::from_secs(100) + idle),
        Err(CloseReason::Idle)
    );
}

#[test]
fn a_frame_trickled_in_misses_its_deadline() {
    let t0 = start();
    let mut s = ServerSession::new(config(Codec::Binary, Role::Data), t0);
    let frame = named_report(1, "slow", 1, 1);
    let mut sink = Recorder::default();
    let mut tally = Tally::default();
    // One byte a second: each call sees a longer prefix, none completes.
    for n in 1..frame.len() {
        let at = t0 + Duration::from_secs(n as u64 - 1);
        assert_eq!(
            s.handle_input(
                at,
                &frame[..n],
                &mut Vec::new(),
                usize::MAX,
                &mut sink,
                &mut tally
            ),
            Ok(0)
        );
        if at < t0 + Duration::from_secs(10) {
            assert_eq!(s.handle_timeout(at), Ok(()));
        }
    }
    assert_eq!(s.poll_timeout(), t0 + Duration::from_secs(10));
    assert_eq!(
        s.handle_timeout(t0 + Duration::from_secs(10)),
        Err(CloseReason::FrameTimeout)
    );
    // A frame that completes clears the deadline.
    let mut s = ServerSession::new(config(Codec::Binary, Role::Data), t0);
    s.handle_input(
        t0,
        &frame[..5],
        &mut Vec::new(),
        usize::MAX,
        &mut sink,
        &mut tally,
    )
    .unwrap();
    s.handle_input(
        t0 + Duration::from_secs(9),
        &frame,
        &mut Vec::new(),
        usize::MAX,
        &mut sink,
        &mut tally,
    )
    .unwrap();
    assert_eq!(s.handle_timeout(t0 + Duration::from_secs(11)), Ok(()));
}

#[test]
fn a_terminal_that_never_acks_its_pushes_times_out() {
    let t0 = start();
    let mut s = ServerSession::new(config(Codec::Binary, Role::Management), t0);
    let mut tally = Tally::default();
    let report = canonical::report(5, 6, Some(7), Some("n".into()), None);
    s.push_report(t0, &report, &mut Vec::new(), &mut tally)
        .unwrap();
    s.push_report(
        t0 + Duration::from_secs(20),
        &report,
        &mut Vec::new(),
        &mut tally,
    )
    .unwrap();
    // An ack at 25 s shows the terminal is alive: the watchdog starts again from there.
    let mut sink = Recorder::default();
    s.handle_input(
        t0 + Duration::from_secs(25),
        &ack_frame(0),
        &mut Vec::new(),
        usize::MAX,
        &mut sink,
        &mut tally,
    )
    .unwrap();
    assert_eq!(s.handle_timeout(t0 + Duration::from_secs(40)), Ok(()));
    assert_eq!(s.poll_timeout(), t0 + Duration::from_secs(55));
    assert_eq!(
        s.handle_timeout(t0 + Duration::from_secs(55)),
        Err(CloseReason::AckTimeout)
    );
}

#[test]
fn a_signed_report_refused_503_is_accepted_when_resent() {
    let mut s = data();
    let mut sink = Recorder {
        keys: Some(keys()),
        decide: vec![
            Acceptance::Refuse(Refusal::Overloaded),
            Acceptance::Refuse(Refusal::Overloaded),
        ],
        ..Recorder::default()
    };
    let five = signed(agent_report(5, "ws-17", 10, NOW_MS, Some(7)));
    let six = signed(agent_report(6, "ws-17", 11, NOW_MS, Some(7)));
    // The second report of a learnt layout takes the fast path: both paths withdraw.
    let input = [five.clone(), six.clone(), five, six].concat();
    let mut tally = Tally::default();
    let mut out = Vec::new();
    s.handle_input(start(), &input, &mut out, usize::MAX, &mut sink, &mut tally)
        .unwrap();
    let codes: Vec<(u16, Option<u64>)> = messages(&out)
        .iter()
        .map(|m| match m.body {
            Body::StatReportAck => (200, m.sequence),
            _ => (code_and_info(m).0, m.sequence),
        })
        .collect();
    assert_eq!(
        codes,
        [
            (503, Some(5)),
            (503, Some(6)),
            (200, Some(5)),
            (200, Some(6))
        ]
    );
    assert!(sink.failures.is_empty(), "{:?}", sink.failures);
}

#[test]
fn with_keys_only_signed_fresh_new_reports_are_accepted() {
    let t0 = start();
    let mut s = data();
    let mut sink = Recorder {
        keys: Some(keys()),
        ..Recorder::default()
    };
    let first = signed(agent_report(5, "ws-17", 10, NOW_MS, Some(7)));
    let next = signed(agent_report(6, "ws-17", 11, NOW_MS + 1000, Some(7)));
    let mut forged = next.clone();
    forged[5] = 99;
    let input = [
        first.clone(),
        report_frame(1, 2, 3).unwrap().to_vec(),
        agent_report(9, "ws-17", 10, NOW_MS, Some(7)),
        signed(agent_report(9, "ws-18", 10, NOW_MS, Some(7))),
        forged,
        signed(agent_report(10, "ws-17", 10, NOW_MS - 61_000, Some(7))),
        first,
        next.clone(),
        next,
    ]
    .concat();
    let mut tally = Tally::default();
    let mut out = Vec::new();
    s.handle_input(t0, &input, &mut out, usize::MAX, &mut sink, &mut tally)
        .unwrap();
    let answers = messages(&out);
    assert_eq!(
        codes(&answers),
        [200, 401, 401, 401, 401, 401, 401, 200, 401]
    );
    assert_eq!(
        sink.failures,
        [
            AuthFailure::Unnamed,
            AuthFailure::Unsigned,
            AuthFailure::UnknownNode,
            AuthFailure::BadSignature,
            AuthFailure::Stale,
            AuthFailure::Replayed,
            AuthFailure::Replayed,
        ]
    );
    let cpus: Vec<u8> = sink.reports.iter().map(|r| r.1.cpu_percent).collect();
    assert_eq!(cpus, [10, 11], "only the authentic reports reach the sink");
    assert_eq!((tally.reports, tally.unauthorized), (2, 7));
    assert!(answers[1..7].iter().all(|m| m.sequence.is_some()));
}

#[test]
fn signed_reports_checked_together_each_keep_their_own_verdict() {
    // Ten reports of one layout, checked a few at a time: the forged ones (a changed CPU, the
    // layout kept) are refused wherever they fall in a group, and an output limit that stops
    // the input part way changes nothing.
    let forged_at = [2, 3, 7, 9];
    let frames: Vec<Vec<u8>> = (0..10u32)
        .map(|i| {
            let mut f = signed(agent_report(20 + i, "ws-17", 10, NOW_MS, Some(7)));
            if forged_at.contains(&i) {
                f[5] = 12;
            }
            f
        })
        .collect();
    let input = frames.concat();
    let want: Vec<u16> = (0..10)
        .map(|i| if forged_at.contains(&i) { 401 } else { 200 })
        .collect();
    for limit in [usize::MAX, 1, 3 * ACK_FRAME_LEN] {
        let t0 = start();
        let mut s = data();
        let mut sink = Recorder {
            keys: Some(keys()),
            ..Recorder::default()
        };
        let mut tally = Tally::default();
        let mut answers = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let mut out = Vec::new();
            pos += s
                .handle_input(t0, &input[pos..], &mut out, limit, &mut sink, &mut tally)
                .unwrap();
            answers.extend(messages(&out));
        }
        assert_eq!(codes(&answers), want, "limit {limit}");
        assert!(sink
            .failures
            .iter()
            .all(|f| *f == AuthFailure::BadSignature));
        assert_eq!((tally.reports, tally.unauthorized), (6, 4), "limit {limit}");
    }
}

#[test]
fn the_management_plane_does_not_take_reports() {
    let mut s = ServerSession::new(config(Codec::Binary, Role::Management), start());
    let mut sink = Recorder::default();
    let input = [
        report_frame(1, 2, 3).unwrap().to_vec(),
        named_report(4, "ws-17", 1, 2),
    ]
    .concat();
    let out = feed(&mut s, start(), &input, &mut sink);
    let answers = messages(&out);
    assert_eq!(answers.len(), 2);
    for a in &answers {
        assert_eq!(code_and_info(a).0, result_code::UNSUPPORTED_TYPE);
    }
    assert!(sink.reports.is_empty());
}

#[test]
fn control_characters_in_a_node_id_are_answered_400() {
    let mut s = data();
    let mut sink = Recorder::default();
    let mut frame = named_report(3, "ws-17", 1, 2);
    let at = frame.windows(5).position(|w| w == b"ws-17").unwrap();
    frame[at + 2] = 0x1b;
    let out = feed(&mut s, start(), &frame, &mut sink);
    let answers = messages(&out);
    let (code, info) = code_and_info(&answers[0]);
    assert_eq!((code, answers[0].sequence), (400, Some(3)));
    assert_eq!(info, "NODE_ID holds a control character");
    assert!(sink.reports.is_empty());
}

#[test]
fn datagram_answers_are_never_larger_than_the_datagram() {
    let mut s = data();
    let mut sink = Recorder::default();
    let mut tally = Tally::default();
    let now = start();
    let mut out = Vec::new();
    let report = report_frame(1, 2, 3).unwrap();
    assert_eq!(
        s.handle_datagram(now, &report, &mut out, &mut sink, &mut tally),
        Ok(DatagramAnswer::Now)
    );
    assert_eq!(out, ack_frame(3));
    // A 400 with its text would be far larger than this 15-byte datagram: it goes out bare.
    out.clear();
    let bad = [0u8, 15, 3, 1, 1, 130, 2, 1, 53, 6, 4, 0, 0, 0, 4];
    assert_eq!(
        s.handle_datagram(now, &bad, &mut out, &mut sink, &mut tally),
        Ok(DatagramAnswer::Now)
    );
    assert!(out.len() <= bad.len());
    assert_eq!(
        messages(&out),
        [Message {
            sequence: Some(4),
            body: Body::CommandResponse {
                node: None,
                code: 400,
                info: None
            }
        }]
    );
    // Even bare, an answer to a 6-byte datagram would not fit: dropped and counted.
    out.clear();
    assert_eq!(
        s.handle_datagram(now, &[0, 6, 9, 6, 1, 7], &mut out, &mut sink, &mut tally),
        Ok(DatagramAnswer::None)
    );
    assert!(out.is_empty());
    assert_eq!(tally.oversize_dropped, 1);
    // Not exactly one frame: dropped before anything is decoded.
    let mut two = report.to_vec();
    two.extend_from_slice(&report);
    assert!(s
        .handle_datagram(now, &two, &mut out, &mut sink, &mut tally)
        .is_err());
    assert!(s
        .handle_datagram(now, &report[..14], &mut out, &mut sink, &mut tally)
        .is_err());
    assert!(out.is_empty());
    assert_eq!(sink.reports.len(), 1, "only the first report was valid");
    // A held datagram answer carries its ticket.
    let mut sink = Recorder {
        hold_all: true,
        ..Recorder::default()
    };
    assert_eq!(
        s.handle_datagram(now, &report, &mut out, &mut sink, &mut tally),
        Ok(DatagramAnswer::Held(1))
    );
    assert_eq!(out, ack_frame(3));
}

#[test]
fn json_sessions_answer_in_text() {
    let mut s = ServerSession::new(config(Codec::Json, Role::Data), start());
    let body = r#"{"type":"report","info":{"CPU Usage":"30%","Mem usage":"53%"},"seq":4}"#;
    let input = format!("{}\n{body}", body.len());
    let mut out = Vec::new();
    let mut sink = Recorder::default();
    s.handle_input(
        start(),
        input.as_bytes(),
        &mut out,
        usize::MAX,
        &mut sink,
        &mut Tally::default(),
    )
    .unwrap();
    assert_eq!(out, b"29\n{\"type\":\"report-ack\",\"seq\":4}");
    assert_eq!(sink.reports[0].2, input.as_bytes());
}

/// One frame of an arbitrary mixed stream: mostly reports of the fast-path layouts (some
/// slightly off them), and every other kind of frame.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let minimal = (0u8..=100, 0u8..=100, any::<u32>())
        .prop_map(|(cpu, mem, seq)| report_frame(cpu, mem, seq).unwrap().to_vec());
    let named = (
        0u8..=110,
        prop_oneof![Just("ws-17"), Just("ws-18"), Just("é")],
        any::<u64>(),
        any::<u32>(),
        prop_oneof![
            Just(None),
            Just(Some(7)),
            Just(Some(u64::MAX)),
            any::<Option<u64>>()
        ],
    )
        .prop_map(|(cpu, node, ts, seq, instance)| {
            let mut f = agent_report(seq, node, cpu.min(100), ts, instance);
            f[5] = cpu; // sometimes out of range
            f
        });
    let signed_named = (
        0u8..=100,
        NOW_MS - 90_000..NOW_MS + 90_000,
        0u32..40,
        prop_oneof![Just(None), Just(Some(7))],
        any::<Option<(Index, u8)>>(),
    )
        .prop_map(|(cpu, ts, seq, instance, flip)| {
            let mut f = signed(agent_report(seq, "ws-17", cpu, ts, instance));
            if let Some((at, b)) = flip {
                let i = 3 + at.index(f.len() - 3);
                f[i] ^= b;
            }
            f
        });
    prop_oneof![
        4 => minimal,
        4 => named,
        4 => signed_named,
        1 => (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(cpu, mem, seq)| {
            let mut f = report_frame(0, 0, seq).unwrap().to_vec();
            (f[5], f[8]) = (cpu, mem);
            f
        }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| {
            let mut f = named_report(9, "ws-17", 20, 1_700_000_000_000);
            let i = 3 + at.index(f.len() - 3);
            f[i] = b;
            f
        }),
        1 => any::<u32>().prop_map(|seq| encode(&Message::ack(Some(u64::from(seq))))),
        1 => Just(vec![0, 6, 0, 3, 1, 5]),
        1 => Just(vec![0, 3, 1]),
        1 => Just(vec![0, 3, 9]),
    ]
}

use proptest::sample::Index;

/// Everything a session produced from a stream.
#[derive(Debug, PartialEq)]
struct Run {
    out: Vec<u8>,
    consumed: usize,
    tally: Tally,
    reports: Vec<(Option<u64>, Report<'static>, Vec<u8>)>,
    held: usize,
    error: Option<CloseReason>,
}

fn run_stream(
    s: ServerSession,
    input: &[u8],
    limit: usize,
    decide: &[Acceptance],
    keys: bool,
) -> Run {
    let mut s = s;
    let mut sink = Recorder {
        decide: decide.to_vec(),
        keys: keys.then(self::keys),
        ..Recorder::default()
    };
    let mut run = Run {
        out: Vec::new(),
        consumed: 0,
        tally: Tally::default(),
        reports: Vec::new(),
        held: 0,
        error: None,
    };
    // Like a connection: feed what is left whenever the output was written out.
    let mut sent = 0;
    loop {
        let mut out = Vec::new();
        match s.handle_input(
            start(),
            &input[run.consumed..],
            &mut out,
            limit,
            &mut sink,
            &mut run.tally,
        ) {
            Ok(used) => run.consumed += used,
            Err(e) => {
                run.error = Some(e);
                run.out.extend(out);
                break;
            }
        }
        let progressed = !out.is_empty();
        run.out.extend(out);
        if !progressed || run.out.len() == sent {
            break;
        }
        sent = run.out.len();
    }
    run.held = s.held_len();
    run.reports = sink.reports;
    run
}

fn decisions() -> impl Strategy<Value = Vec<Acceptance>> {
    vec(
        prop_oneof![
            6 => Just(Acceptance::Ack),
            1 => (1u64..1000).prop_map(Acceptance::Hold),
            1 => Just(Acceptance::Refuse(Refusal::Overloaded)),
        ],
        0..20,
    )
    .prop_map(|mut d| {
        // Tickets increase with every hold.
        let mut t = 0;
        for a in &mut d {
            if let Acceptance::Hold(x) = a {
                t += *x;
                *x = t;
            }
        }
        d
    })
}

proptest! {
    /// The fast paths give what the general path gives: the same bytes, the same frames
    /// consumed, the same counts, the same reports handed over, the same answers held.
    #[test]
    fn fast_paths_agree_with_the_general_path_on_streams(
        frames in vec(frame(), 0..40),
        tail in 0usize..20,
        limit in prop_oneof![1usize..300, Just(usize::MAX)],
        decide in decisions(),
        keys in any::<bool>(),
    ) {
        let mut input: Vec<u8> = frames.concat();
        input.extend_from_slice(&named_report(1, "ws-17", 1, 2)[..tail.min(20)]);
        let fast = run_stream(data(), &input, limit, &decide, keys);
        let general = run_stream(data().without_fast_paths(), &input, limit, &decide, keys);
        prop_assert_eq!(fast, general);
    }

    /// The same for datagrams, one frame each (and some that are not exactly one frame).
    #[test]
    fn fast_paths_agree_with_the_general_path_on_datagrams(
        frames in vec(frame(), 0..40),
        cut in any::<Index>(),
        decide in decisions(),
        keys in any::<bool>(),
    ) {
        let mut datagrams = frames;
        if let Some(d) = datagrams.first_mut() {
            let n = cut.index(d.len() + 1);
            d.truncate(n);
        }
        let answer_all = |mut s: ServerSession| {
            let mut sink = Recorder {
                decide: decide.clone(),
                keys: keys.then(self::keys),
                ..Recorder::default()
            };
            let mut tally = Tally::default();
            let mut outs = Vec::new();
            for d in &datagrams {
                let mut out = Vec::new();
                let answer = s.handle_datagram(start(), d, &mut out, &mut sink, &mut tally);
                assert!(out.len() <= d.len(), "an answer larger than its datagram");
                outs.push((answer, out));
            }
            (outs, tally, sink.reports, sink.failures)
        };
        prop_assert_eq!(answer_all(data()), answer_all(data().without_fast_paths()));
    }
}

/// A learnt report shape reads the values of a report like it, and declines one that differs
/// from it in any other byte: a header, an AVP header, the INSTANCE, and the NODE_ID unless
/// the shape takes any (a datagram's), which must then be printable ASCII.
#[test]
fn a_report_shape_reads_the_values_and_declines_any_other_change() {
    let report = |cpu, ts| Report {
        fleet: None,
        cpu_percent: cpu,
        mem_percent: 40,
        timestamp_ms: Some(ts),
        node_id: Some("ws-17".into()),
        instance: Some(7),
    };
    let ts = 1_700_000_000_000;
    for (sign, any_node) in [(false, false), (true, false), (false, true), (true, true)] {
        let case = format!("signed: {sign}, any node: {any_node}");
        let frame = |seq, node, cpu, ts| {
            let f = agent_report(seq, node, cpu, ts, Some(7));
            if sign {
                signed(f)
            } else {
                f
            }
        };
        let learnt = frame(5, "ws-17", 10, ts);
        let shape =
            ReportShape::learn(&learnt, &report(10, ts), Some(5), any_node).expect("a shape");
        let read = |f: &[u8]| Some((shape.read(f)?, shape.node_in(f)?.to_string()));
        let values = (99, 40, ts + 1, 9);
        let same = frame(9, "ws-17", 99, ts + 1);
        assert_eq!(read(&same), Some((values, "ws-17".into())), "{case}");
        let other = frame(9, "ws-18", 99, ts + 1);
        let want = any_node.then(|| (values, "ws-18".to_string()));
        assert_eq!(read(&other), want, "{case}");
        let node_value = TS_AT + shape.ts_width + AVP_HEADER_LEN..;
        let node_value = node_value.start..node_value.start + "ws-17".len();
        let seq_value = shape.seq_at..shape.seq_at + 4;
        let authenticator = shape.authenticator_at().map_or(learnt.len(), |at| at);
        let values = |i: usize| {
            i == CPU_AT
                || i == MEM_AT
                || (TS_AT..TS_AT + shape.ts_width).contains(&i)
                || seq_value.contains(&i)
                || i >= authenticator
                || any_node && node_value.contains(&i)
        };
        for i in 0..learnt.len() {
            let mut changed = learnt.clone();
            changed[i] ^= 0x01;
            let read = read(&changed);
            if values(i) {
                assert!(read.is_some(), "byte {i} is a value ({case})");
            } else {
                assert_eq!(read, None, "byte {i} is fixed ({case})");
            }
        }
        let mut control = learnt.clone();
        control[node_value.start] = 0x1B;
        assert_eq!(read(&control), None, "{case}");
    }
}
