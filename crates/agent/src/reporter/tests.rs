//! The agent's logic on a fake clock: the schedule, PAUSE and RESUME, resending, the bound.

use super::*;
use avp_proto::peer::{PeerSession, RequestKind, Sent, Transport};
use avp_proto::{Body, Codec, Message};

/// Samples with a recognisable CPU figure: 1, 2, 3...
struct Script(u8);

impl Sampler for Script {
    fn sample(&mut self) -> HostSample {
        self.0 += 1;
        HostSample {
            cpu_percent: self.0,
            mem_percent: 50,
            timestamp_ms: 1_700_000_000_000 + u64::from(self.0),
        }
    }
}

const INTERVAL: Duration = Duration::from_secs(1);

fn config(buffer: usize, count: Option<u64>) -> ReporterConfig {
    ReporterConfig {
        node_id: "ws-17".into(),
        interval: INTERVAL,
        buffer,
        count,
        instance: 0xabc,
        first_seq: 1,
        journal: false,
    }
}

fn reporter(buffer: usize, count: Option<u64>, t0: Instant) -> Reporter {
    Reporter::new(config(buffer, count), t0)
}

fn seqs(out: &[Outgoing]) -> Vec<u32> {
    out.iter().map(|o| o.pending.seq).collect()
}

/// The agent's side of a connection, as the link runs it: what the reporter sends goes through
/// the session, what the collector sends comes back as events.
struct Wire {
    session: PeerSession,
    to_collector: Vec<u8>,
}

impl Wire {
    fn new() -> Wire {
        Wire {
            session: PeerSession::new(Codec::Binary, Transport::Stream, Duration::from_secs(30)),
            to_collector: Vec::new(),
        }
    }

    fn send(&mut self, r: &Reporter, now: Instant, out: &[Outgoing]) {
        for o in out {
            self.session
                .send_with_sequence(
                    now,
                    o.pending.seq,
                    &r.request(&o.pending),
                    (),
                    &mut self.to_collector,
                )
                .unwrap();
        }
    }

    /// The collector sends `msg`; every event goes to the reporter.
    fn receive(&mut self, r: &mut Reporter, now: Instant, msg: &Message<'_>) {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes).unwrap();
        let mut answers = Vec::new();
        self.session
            .handle_input(now, &bytes, &mut answers, &mut |e| {
                r.on_event(now, &ClientEvent::Peer(e))
            })
            .unwrap();
        self.to_collector.extend(answers);
    }

    fn timers(&mut self, r: &mut Reporter, now: Instant) {
        self.session
            .handle_timeout(now, &mut |e| r.on_event(now, &ClientEvent::Peer(e)));
    }
}

#[test]
fn one_report_per_interval_and_count_ends_after_the_acks() {
    let t0 = Instant::now();
    let mut r = reporter(10, Some(3), t0);
    let mut wire = Wire::new();
    let mut s = Script(0);
    for i in 0..3u32 {
        let at = t0 + INTERVAL * i;
        assert_eq!(r.wake_at(None), Some(at));
        let before = r.due(at - Duration::from_millis(1), None, true, &mut s);
        assert!(before.1.is_empty() || i == 0, "nothing before its time");
        let (sample, out) = r.due(at, None, true, &mut s);
        assert_eq!(sample.map(|s| s.cpu_percent), Some(i as u8 + 1));
        assert_eq!(seqs(&out), [i + 1]);
        wire.send(&r, at, &out);
    }
    assert_eq!(r.wake_at(None), None, "count reached");
    assert!(!r.finished(), "not acknowledged yet");
    for seq in 1..=3 {
        wire.receive(&mut r, t0, &Message::ack(Some(seq)));
    }
    assert!(r.finished());
    assert_eq!(
        (r.totals().sampled, r.totals().acked, r.totals().unacked),
        (3, 3, 0)
    );
}

#[test]
fn a_new_interval_applies_from_the_next_sample_on() {
    let t0 = Instant::now();
    let mut r = reporter(10, None, t0);
    let mut s = Script(0);
    r.due(t0, None, true, &mut s);
    assert_eq!(r.wake_at(None), Some(t0 + INTERVAL));
    let reload = t0 + Duration::from_millis(100);
    let short = Duration::from_millis(250);
    r.set_interval(reload, short);
    assert_eq!(
        r.wake_at(None),
        Some(reload + short),
        "sooner than the old schedule"
    );
    r.due(reload + short, None, true, &mut s);
    assert_eq!(r.wake_at(None), Some(reload + short * 2));
    r.set_interval(reload + short, Duration::from_secs(60));
    assert_eq!(
        r.wake_at(None),
        Some(reload + short * 2),
        "a longer interval starts after the sample due"
    );
}

#[test]
fn a_pause_stops_sampling_for_its_duration_and_resume_ends_it_early() {
    let t0 = Instant::now();
    let mut r = reporter(10, None, t0);
    let mut wire = Wire::new();
    let mut s = Script(0);
    let (_, out) = r.due(t0, None, true, &mut s);
    wire.send(&r, t0, &out);
    // PAUSE 2 s arrives half a second in: answered 200 by the session, nothing sampled until
    // it ends.
    let pause_at = t0 + Duration::from_millis(500);
    wire.receive(
        &mut r,
        pause_at,
        &Message {
            sequence: Some(9),
            body: Body::Pause {
                target: None,
                duration_secs: 2,
            },
        },
    );
    let until = wire.session.paused_until().expect("paused");
    assert_eq!(until, pause_at + Duration::from_secs(2));
    assert_eq!(r.wake_at(Some(until)), Some(until));
    for ms in [1000, 1500, 2000, 2499] {
        let (sample, out) = r.due(t0 + Duration::from_millis(ms), Some(until), true, &mut s);
        assert!(
            sample.is_none() && out.is_empty(),
            "sampled while paused at {ms} ms"
        );
    }
    wire.timers(&mut r, until);
    assert_eq!(wire.session.paused_until(), None);
    let (sample, out) = r.due(until, None, true, &mut s);
    assert!(
        sample.is_some(),
        "the pause is over: sampling again at once"
    );
    assert_eq!(seqs(&out), [2]);

    // PAUSE 60 s, then RESUME 3 s later: sampling again at the RESUME.
    let at = until + Duration::from_secs(1);
    wire.receive(
        &mut r,
        at,
        &Message {
            sequence: None,
            body: Body::Pause {
                target: None,
                duration_secs: 60,
            },
        },
    );
    let resume_at = at + Duration::from_secs(3);
    assert!(r
        .due(resume_at, wire.session.paused_until(), true, &mut s)
        .0
        .is_none());
    wire.receive(
        &mut r,
        resume_at,
        &Message {
            sequence: None,
            body: Body::Resume { target: None },
        },
    );
    assert_eq!(wire.session.paused_until(), None);
    assert_eq!(r.wake_at(None), Some(resume_at));
    assert!(r.due(resume_at, None, true, &mut s).0.is_some());
}

#[test]
fn unacked_reports_are_resent_oldest_first_after_a_reconnect() {
    let t0 = Instant::now();
    let mut r = reporter(10, None, t0);
    let mut s = Script(0);
    let mut sent = Vec::new();
    for i in 0..4u32 {
        sent.extend(seqs(&r.due(t0 + INTERVAL * i, None, true, &mut s).1));
    }
    assert_eq!(sent, [1, 2, 3, 4]);
    // Acks for 1 and 2 (one event for both), then the connection drops; while it is down 5
    // is sampled.
    r.on_event(
        t0,
        &ClientEvent::Peer(PeerEvent::Answered {
            sent: Sent {
                first_seq: 1,
                count: 2,
                kind: RequestKind::Report,
                sent_at: t0,
                tag: (),
            },
            verdict: Verdict::Ok,
            response: None,
        }),
    );
    r.on_event(
        t0,
        &ClientEvent::Down {
            reason: "gone".into(),
            retry_in: INTERVAL,
        },
    );
    let (sample, out) = r.due(t0 + INTERVAL * 4, None, false, &mut s);
    assert!(
        sample.is_some() && out.is_empty(),
        "sampled, kept, not sent"
    );
    r.on_event(t0, &ClientEvent::Up);
    let (sample, out) = r.due(t0 + INTERVAL * 4, None, true, &mut s);
    assert!(sample.is_none());
    assert_eq!(seqs(&out), [3, 4, 5]);
    assert!(out.iter().all(|o| o.resend));
    assert_eq!(r.totals().resent, 3);
}

#[test]
fn a_refused_report_is_sent_again_with_the_next_one() {
    let t0 = Instant::now();
    let mut r = reporter(10, None, t0);
    let mut wire = Wire::new();
    let mut s = Script(0);
    let (_, out) = r.due(t0, None, true, &mut s);
    wire.send(&r, t0, &out);
    wire.receive(
        &mut r,
        t0,
        &Message::command_response(Some(1), 503, "store full"),
    );
    assert_eq!(r.totals().refused, 1);
    // Not at once: the collector said it cannot take reports now.
    let soon = t0 + RETRY_REFUSED_AFTER / 2;
    assert!(r.due(soon, None, true, &mut s).1.is_empty());
    assert_eq!(r.wake_at(None), Some(t0 + RETRY_REFUSED_AFTER));
    let (_, out) = r.due(t0 + RETRY_REFUSED_AFTER.max(INTERVAL), None, true, &mut s);
    assert_eq!(seqs(&out), [1, 2]);
}

#[test]
fn reports_carry_the_instance_and_sequences_go_on_from_the_first() {
    let t0 = Instant::now();
    let mut r = Reporter::new(
        ReporterConfig {
            first_seq: u32::MAX - 1,
            ..config(10, None)
        },
        t0,
    );
    let mut s = Script(0);
    let mut ids = Vec::new();
    for i in 0..3u32 {
        for o in r.due(t0 + INTERVAL * i, None, true, &mut s).1 {
            let Request::Report(report) = r.request(&o.pending) else {
                panic!("a report")
            };
            ids.push((report.instance, o.pending.seq));
        }
    }
    // Past the last SEQUENCE the agent reports as the next instance, from 1.
    assert_eq!(
        ids,
        [
            (Some(0xabc), u32::MAX - 1),
            (Some(0xabd), 1),
            (Some(0xabd), 2)
        ]
    );
}

#[test]
fn the_journal_lists_reports_taken_and_gone_and_restored_ones_are_sent_first() {
    let t0 = Instant::now();
    let mut r = Reporter::new(
        ReporterConfig {
            journal: true,
            first_seq: 8,
            ..config(2, None)
        },
        t0,
    );
    let restored = |seq| Pending {
        instance: 0xabc,
        seq,
        sample: HostSample {
            cpu_percent: 9,
            mem_percent: 9,
            timestamp_ms: 9,
        },
    };
    r.restore(vec![restored(6), restored(7)]);
    let mut wire = Wire::new();
    let mut s = Script(0);
    let (_, out) = r.due(t0, None, true, &mut s);
    // The buffer holds two: restoring two and taking one drops the oldest.
    assert_eq!(seqs(&out), [7, 8]);
    wire.send(&r, t0, &out);
    wire.receive(&mut r, t0, &Message::ack(Some(7)));
    let j = r.take_journal();
    assert_eq!(j.sampled.iter().map(|p| p.seq).collect::<Vec<_>>(), [8]);
    assert_eq!(j.removed, [(0xabc, 6), (0xabc, 7)]);
    assert_eq!(r.take_journal(), Journal::default());
    let (next, pending) = r.spool_state();
    assert_eq!((next, pending.len(), pending[0].seq), ((0xabc, 9), 1, 8));
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let t0 = Instant::now();
    let mut r = reporter(3, None, t0);
    let mut s = Script(0);
    for i in 0..5u32 {
        r.due(t0 + INTERVAL * i, None, false, &mut s);
    }
    r.on_event(t0, &ClientEvent::Up);
    let (_, out) = r.due(t0 + INTERVAL * 5, None, true, &mut s);
    assert_eq!(seqs(&out), [4, 5, 6]);
    assert_eq!((r.totals().dropped, r.totals().unacked), (3, 3));
}

#[test]
fn a_late_wake_up_does_not_burst() {
    let t0 = Instant::now();
    let mut r = reporter(10, None, t0);
    let mut s = Script(0);
    r.due(t0, None, true, &mut s);
    // Suspended for ten intervals: one sample, then the schedule starts again from now.
    let late = t0 + INTERVAL * 10;
    assert_eq!(r.due(late, None, true, &mut s).1.len(), 1);
    assert!(r.due(late, None, true, &mut s).1.is_empty());
    assert_eq!(r.wake_at(None), Some(late + INTERVAL));
}
