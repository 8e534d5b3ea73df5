//! PeerSession on a fake clock, alone and against a ServerSession in memory.

use super::*;
use crate::canonical::ack_frame;
use crate::server::{
    Acceptance, AcceptedReport, ReportSink, Role, ServerConfig, ServerSession, Tally,
};
use std::sync::Arc;

const TIMEOUT: Duration = Duration::from_secs(5);

fn stream() -> PeerSession<u8> {
    PeerSession::new(Codec::Binary, Transport::Stream, TIMEOUT)
}

fn report(cpu: u8) -> Report<'static> {
    Report {
        fleet: None,
        cpu_percent: cpu,
        mem_percent: 50,
        timestamp_ms: Some(1_700_000_000_000),
        node_id: Some("ws-1".into()),
        instance: None,
    }
}

fn encode(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

/// Feeds `input` and returns the events (owned) and what the session answered.
fn feed(
    s: &mut PeerSession<u8>,
    now: Instant,
    input: &[u8],
) -> (Vec<PeerEvent<'static, u8>>, Vec<u8>) {
    let mut events = Vec::new();
    let mut out = Vec::new();
    let used = s
        .handle_input(now, input, &mut out, &mut |e| events.push(owned(e)))
        .unwrap();
    assert_eq!(used, input.len());
    (events, out)
}

fn owned(e: PeerEvent<'_, u8>) -> PeerEvent<'static, u8> {
    match e {
        PeerEvent::Answered {
            sent,
            verdict,
            response,
        } => PeerEvent::Answered {
            sent,
            verdict,
            response: response.map(|r| Response {
                code: r.code,
                info: r.info.map(|i| Cow::Owned(i.into_owned())),
            }),
        },
        PeerEvent::Pushed { sequence, report } => PeerEvent::Pushed {
            sequence,
            report: report.into_owned(),
        },
        PeerEvent::Paused {
            duration_secs,
            until,
        } => PeerEvent::Paused {
            duration_secs,
            until,
        },
        PeerEvent::Resumed { was_paused } => PeerEvent::Resumed { was_paused },
        PeerEvent::PauseEnded => PeerEvent::PauseEnded,
        PeerEvent::NodeResult { node, code, info } => PeerEvent::NodeResult {
            node: Cow::Owned(node.into_owned()),
            code,
            info: info.map(|i| Cow::Owned(i.into_owned())),
        },
        PeerEvent::Invalid(e) => PeerEvent::Invalid(e),
        PeerEvent::Unsolicited { late } => PeerEvent::Unsolicited { late },
        PeerEvent::TimedOut { sent } => PeerEvent::TimedOut { sent },
        PeerEvent::Aborted { sent } => PeerEvent::Aborted { sent },
    }
}

fn answered(e: &PeerEvent<'_, u8>) -> (u32, u32, Verdict) {
    match e {
        PeerEvent::Answered { sent, verdict, .. } => (sent.first_seq, sent.count, *verdict),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn a_run_of_reports_is_one_record_and_its_acks_complete_it_in_order() {
    let t0 = Instant::now();
    let mut s = stream();
    let mut out = Vec::new();
    assert_eq!(s.send_reports(t0, &report(1), 128, 7, &mut out).unwrap(), 0);
    assert_eq!((s.outstanding(), s.runs.len()), (128, 1));
    // The run is exactly the reports sent one by one.
    let mut one_by_one = stream();
    let mut singly = Vec::new();
    for _ in 0..128 {
        one_by_one
            .send(t0, &Request::Report(report(1)), 7, &mut singly)
            .unwrap();
    }
    assert_eq!(out, singly);
    assert_eq!(one_by_one.runs.len(), 1, "same tag and time: one run");
    let acks: Vec<u8> = (0..100).flat_map(ack_frame).collect();
    let (events, answers) = feed(&mut s, t0, &acks);
    assert!(answers.is_empty());
    assert_eq!(
        events.iter().map(answered).collect::<Vec<_>>(),
        [(0, 100, Verdict::Ok)]
    );
    assert_eq!(s.outstanding(), 28);
    // An ack of the wrong SEQUENCE completes the oldest request with that verdict.
    let (events, _) = feed(&mut s, t0, &ack_frame(999));
    assert_eq!(answered(&events[0]), (100, 1, Verdict::SeqMismatch));
}

#[test]
fn a_run_of_any_length_is_the_reports_sent_one_by_one() {
    let t0 = Instant::now();
    for n in [1, 2, 5, 16, 33] {
        let (mut run, mut one_by_one) = (stream(), stream());
        let (mut out, mut singly) = (Vec::new(), Vec::new());
        run.send_reports(t0, &report(9), 1, 0, &mut out).unwrap();
        run.send_reports(t0, &report(9), n, 0, &mut out).unwrap();
        for _ in 0..=n {
            one_by_one
                .send(t0, &Request::Report(report(9)), 0, &mut singly)
                .unwrap();
        }
        assert_eq!(out, singly, "a run of {n}");
    }
}

#[test]
fn command_answers_carry_their_verdict_and_text() {
    let t0 = Instant::now();
    let mut s = stream();
    let mut out = Vec::new();
    let pause = s
        .send(
            t0,
            &Request::Pause {
                target: None,
                duration_secs: 9,
            },
            0,
            &mut out,
        )
        .unwrap();
    let report_seq = s
        .send(t0, &Request::Report(report(2)), 0, &mut out)
        .unwrap();
    let input = [
        encode(&Message::command_response(
            Some(u64::from(pause)),
            200,
            "paused for 9 s",
        )),
        encode(&Message::command_response(
            Some(u64::from(report_seq)),
            503,
            "overloaded",
        )),
    ]
    .concat();
    let (events, _) = feed(&mut s, t0, &input);
    assert_eq!(answered(&events[0]), (0, 1, Verdict::Ok));
    assert_eq!(answered(&events[1]), (1, 1, Verdict::Status5xx));
    let PeerEvent::Answered {
        response: Some(r), ..
    } = &events[1]
    else {
        panic!()
    };
    assert_eq!((r.code, r.info.as_deref()), (503, Some("overloaded")));
}

#[test]
fn what_the_other_side_sends_is_answered() {
    let t0 = Instant::now();
    let mut s = stream();
    let push = encode(&Message {
        sequence: Some(41),
        body: Body::StatReport(report(3)),
    });
    let (events, out) = feed(&mut s, t0, &push);
    assert_eq!(out, ack_frame(41));
    assert!(
        matches!(&events[0], PeerEvent::Pushed { sequence: Some(41), report } if report.cpu_percent == 3)
    );

    let pause = encode(&Message {
        sequence: Some(2),
        body: Body::Pause {
            target: None,
            duration_secs: 60,
        },
    });
    let (events, out) = feed(&mut s, t0, &pause);
    assert_eq!(
        events,
        [PeerEvent::Paused {
            duration_secs: 60,
            until: t0 + Duration::from_secs(60)
        }]
    );
    assert_eq!(
        crate::Codec::Binary.decode(&out).unwrap(),
        Status::Complete((
            Decoded::Message(Message::command_response(Some(2), 200, "paused for 60 s")),
            out.len()
        ))
    );
    assert_eq!(s.paused_until(), Some(t0 + Duration::from_secs(60)));
    let (events, _) = feed(&mut s, t0, &[0, 3, 1]);
    assert_eq!(events, [PeerEvent::Resumed { was_paused: true }]);
    assert_eq!(s.paused_until(), None);

    // Invalid: answered 400 (or 501), unless it is itself an answer.
    let (events, out) = feed(&mut s, t0, &[0, 9, 3, 1, 1, 130, 2, 1, 53]);
    assert!(matches!(&events[0], PeerEvent::Invalid(e) if e.result_code() == 400));
    assert!(!out.is_empty());
    let (events, out) = feed(&mut s, t0, &[0, 6, 4, 6, 0, 1]);
    assert_eq!(events, [PeerEvent::Unsolicited { late: false }]);
    assert!(out.is_empty(), "an invalid answer is never answered");
}

#[test]
fn a_pause_ends_by_itself_on_the_clock() {
    let t0 = Instant::now();
    let mut s = stream();
    feed(
        &mut s,
        t0,
        &encode(&Message {
            sequence: None,
            body: Body::Pause {
                target: None,
                duration_secs: 2,
            },
        }),
    );
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    let mut events = Vec::new();
    assert!(
        !s.handle_timeout(t0 + Duration::from_millis(1999), &mut |e| events
            .push(owned(e)))
    );
    assert!(events.is_empty());
    s.handle_timeout(t0 + Duration::from_secs(2), &mut |e| events.push(owned(e)));
    assert_eq!(events, [PeerEvent::PauseEnded]);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn an_overdue_answer_on_a_stream_times_out_everything_behind_it() {
    let t0 = Instant::now();
    let mut s = stream();
    let mut out = Vec::new();
    s.send_reports(t0, &report(1), 3, 0, &mut out).unwrap();
    s.send_reports(t0 + Duration::from_secs(1), &report(1), 2, 0, &mut out)
        .unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + TIMEOUT));
    let mut events = Vec::new();
    assert!(
        !s.handle_timeout(t0 + TIMEOUT - Duration::from_millis(1), &mut |e| events
            .push(owned(e)))
    );
    assert!(s.handle_timeout(t0 + TIMEOUT, &mut |e| events.push(owned(e))));
    let counts: Vec<u32> = events
        .iter()
        .map(|e| match e {
            PeerEvent::TimedOut { sent } => sent.count,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(counts, [3, 2]);
    assert_eq!(s.outstanding(), 0);
}

#[test]
fn datagram_answers_match_by_sequence_in_any_order_and_late_ones_are_told_apart() {
    let t0 = Instant::now();
    let mut s: PeerSession<u8> = PeerSession::new(Codec::Binary, Transport::Datagram, TIMEOUT);
    let mut out = Vec::new();
    s.send_reports(t0, &report(1), 4, 0, &mut out).unwrap();
    assert_eq!(out.len() % 4, 0, "frames of a run have one length");
    let mut events = Vec::new();
    let mut answers = Vec::new();
    for seq in [2u32, 0] {
        assert!(
            s.handle_datagram(t0, &ack_frame(seq), &mut answers, &mut |e| events
                .push(owned(e)))
        );
    }
    assert_eq!(
        events.iter().map(answered).collect::<Vec<_>>(),
        [(2, 1, Verdict::Ok), (0, 1, Verdict::Ok)]
    );
    events.clear();
    // 1 and 3 time out; 3's answer comes after that, and 99 was never sent.
    s.handle_timeout(t0 + TIMEOUT, &mut |e| events.push(owned(e)));
    assert_eq!(events.len(), 2);
    events.clear();
    s.handle_datagram(t0, &ack_frame(3), &mut answers, &mut |e| {
        events.push(owned(e))
    });
    s.handle_datagram(t0, &ack_frame(99), &mut answers, &mut |e| {
        events.push(owned(e))
    });
    assert_eq!(
        events,
        [
            PeerEvent::Unsolicited { late: true },
            PeerEvent::Unsolicited { late: false }
        ]
    );
    assert!(
        !s.handle_datagram(t0, &[0, 9, 4], &mut answers, &mut |_| ()),
        "not one frame"
    );
}

#[test]
fn a_lost_connection_aborts_what_is_outstanding_and_keeps_the_pause() {
    let t0 = Instant::now();
    let mut s = stream();
    let mut out = Vec::new();
    s.send_reports(t0, &report(1), 3, 0, &mut out).unwrap();
    feed(
        &mut s,
        t0,
        &encode(&Message {
            sequence: None,
            body: Body::Pause {
                target: None,
                duration_secs: 9,
            },
        }),
    );
    let mut events = Vec::new();
    s.reset(&mut |e| events.push(owned(e)));
    assert!(matches!(events[..], [PeerEvent::Aborted { sent }] if sent.count == 3));
    assert_eq!((s.outstanding(), s.paused_until().is_some()), (0, true));
}

/// A sink that acknowledges everything and counts.
struct Count(usize);

impl ReportSink for Count {
    fn on_report(&mut self, _: &AcceptedReport<'_>) -> Acceptance {
        self.0 += 1;
        Acceptance::Ack
    }
}

/// An agent-like peer and the node's session, wired together in memory on one fake clock.
#[test]
fn a_peer_and_a_server_talk_in_memory() {
    for codec in [Codec::Binary, Codec::Json] {
        let t0 = Instant::now();
        let mut peer: PeerSession<u8> = PeerSession::new(codec, Transport::Stream, TIMEOUT);
        let mut server = ServerSession::new(Arc::new(ServerConfig::new(codec, Role::Data, t0)), t0);
        let mut to_server = Vec::new();
        peer.send_reports(t0, &report(10), 50, 1, &mut to_server)
            .unwrap();
        peer.send(
            t0,
            &Request::Pause {
                target: None,
                duration_secs: 3,
            },
            2,
            &mut to_server,
        )
        .unwrap();
        peer.send(t0, &Request::Resume { target: None }, 3, &mut to_server)
            .unwrap();
        let mut sink = Count(0);
        let mut tally = Tally::default();
        let mut to_peer = Vec::new();
        // Byte by byte: every split point of the stream is exercised.
        let mut pending = Vec::new();
        for b in to_server {
            pending.push(b);
            let used = server
                .handle_input(
                    t0,
                    &pending,
                    &mut to_peer,
                    usize::MAX,
                    &mut sink,
                    &mut tally,
                )
                .unwrap();
            pending.drain(..used);
        }
        assert!(pending.is_empty());
        assert_eq!((sink.0, tally.commands, tally.answers), (50, 2, 52));
        let mut events = Vec::new();
        let mut pending = Vec::new();
        for b in to_peer {
            pending.push(b);
            let used = peer
                .handle_input(t0, &pending, &mut Vec::new(), &mut |e| {
                    events.push(owned(e))
                })
                .unwrap();
            pending.drain(..used);
        }
        let done: u32 = events
            .iter()
            .map(|e| {
                let (_, count, verdict) = answered(e);
                assert_eq!(verdict, Verdict::Ok, "{codec:?}");
                count
            })
            .sum();
        assert_eq!((done, peer.outstanding()), (52, 0), "{codec:?}");
    }
}
