//! `avpd agent` against a collector played by the test: what it sends, resending after a
//! reconnect, failing over when a collector does not answer, the bounded buffer,
//! PAUSE/RESUME, and the JSON form.

mod client_support;

use avp_proto::{Body, Codec, Message, Report};
use client_support::{accept, avpd, field, listener, unix_millis, Peer, Program};

/// The next STAT_REPORT's sequence and content, skipping nothing else.
fn next_report(peer: &mut Peer) -> (u64, Report<'static>) {
    let msg = peer.expect();
    match msg.body {
        Body::StatReport(r) => (msg.sequence.expect("SEQUENCE"), r),
        other => panic!("expected STAT_REPORT, got {other:?}"),
    }
}

fn totals(agent: &mut Program) -> String {
    agent.stderr.wait_contains("agent stopped:")
}

/// Starts `avpd agent` reporting to `collector` every `interval`, with `extra` arguments.
fn start_agent(collector: &str, interval: &str, extra: &[&str]) -> Program {
    let mut args = vec!["agent", "--collector", collector, "--interval", interval];
    args.extend_from_slice(extra);
    avpd(&args)
}

#[test]
fn reports_carry_every_field_and_count_ends_after_the_acks() {
    let (l, addr) = listener();
    let mut agent = start_agent(
        &format!("tcp://{addr}"),
        "50ms",
        &["--node-id", "ws-17", "--count", "5"],
    );
    let mut peer = accept(&l, Codec::Binary);
    let before = unix_millis();
    for expected in 1..=5 {
        let (seq, r) = next_report(&mut peer);
        assert_eq!(seq, expected);
        assert_eq!(r.node_id.as_deref(), Some("ws-17"));
        assert!(r.cpu_percent <= 100 && r.mem_percent <= 100 && r.mem_percent > 0);
        let ts = r.timestamp_ms.expect("TIMESTAMP");
        assert!(ts + 60_000 > before, "timestamp {ts} is not now");
        peer.send_msg(&Message::ack(Some(seq)));
    }
    let line = totals(&mut agent);
    assert_eq!(field(&line, "sampled"), Some("5"), "{line}");
    assert_eq!(field(&line, "acked"), Some("5"), "{line}");
    assert_eq!(agent.wait_exit(), 0);
}

#[test]
fn unacked_reports_are_resent_oldest_first_after_a_reconnect() {
    let (l, addr) = listener();
    let mut agent = start_agent(
        &format!("tcp://{addr}"),
        "50ms",
        &["--node-id", "a", "--count", "12"],
    );
    let mut first = accept(&l, Codec::Binary);
    for _ in 1..=4 {
        let (seq, _) = next_report(&mut first);
        if seq <= 2 {
            first.send_msg(&Message::ack(Some(seq)));
        }
    }
    // Make sure acks 1 and 2 were taken in before the collector "crashes".
    agent.stderr.wait_contains("acked seq=2");
    drop(first);
    let mut second = accept(&l, Codec::Binary);
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let (seq, _) = next_report(&mut second);
        seen.push(seq);
        second.send_msg(&Message::ack(Some(seq)));
    }
    assert_eq!(
        seen,
        (3..=12).collect::<Vec<_>>(),
        "resent oldest first, no gap"
    );
    let line = totals(&mut agent);
    assert_eq!(field(&line, "acked"), Some("12"), "{line}");
    assert_eq!(field(&line, "dropped"), Some("0"), "{line}");
    assert_eq!(agent.wait_exit(), 0);
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let (l, addr) = listener();
    let mut agent = start_agent(
        &format!("tcp://{addr}"),
        "20ms",
        &["--node-id", "a", "--buffer", "3", "--count", "10"],
    );
    let mut first = accept(&l, Codec::Binary);
    // Never acknowledge on the first connection.
    while next_report(&mut first).0 < 6 {}
    agent.stderr.wait_contains("buffer full: dropped");
    drop(first);
    let mut second = accept(&l, Codec::Binary);
    let mut seen = Vec::new();
    loop {
        let (seq, _) = next_report(&mut second);
        second.send_msg(&Message::ack(Some(seq)));
        seen.push(seq);
        if seq == 10 {
            break;
        }
    }
    let oldest = seen[0];
    assert!(oldest >= 4, "at most 3 reports kept, got {seen:?}");
    assert_eq!(seen, (oldest..=10).collect::<Vec<_>>());
    let line = totals(&mut agent);
    let count = |name| -> u64 { field(&line, name).unwrap().parse().unwrap() };
    let (dropped, acked, unsolicited) = (count("dropped"), count("acked"), count("unsolicited"));
    // Dropped: the reports older than the first one resent, plus any resent report that new
    // samples pushed out of the full buffer before its ack came back (that ack is unsolicited).
    assert_eq!(dropped, oldest - 1 + unsolicited, "{line}");
    assert_eq!(acked + dropped, 10, "{line}");
    assert_eq!(agent.wait_exit(), 0);
}

/// Answers every report until the COMMAND_RESPONSE to the command sent as `seq` arrives, and
/// checks it is 200.
fn until_answered(peer: &mut Peer, seq: u64) {
    loop {
        let msg = peer.expect();
        match msg.body {
            Body::StatReport(_) => peer.send_msg(&Message::ack(msg.sequence)),
            Body::CommandResponse { code, .. } => {
                assert_eq!((code, msg.sequence), (200, Some(seq)));
                return;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The protocol exchange of PAUSE and RESUME with a real agent (how long a pause lasts is
/// checked on a fake clock in the agent crate's tests).
#[test]
fn pause_stops_sampling_and_resume_ends_it_early() {
    let (l, addr) = listener();
    let mut agent = start_agent(&format!("tcp://{addr}"), "50ms", &["--node-id", "a"]);
    let mut peer = accept(&l, Codec::Binary);
    let (seq, _) = next_report(&mut peer);
    peer.send_msg(&Message::ack(Some(seq)));

    // PAUSE 1 s: answered 200 with our SEQUENCE; the agent stops, then samples again.
    peer.send_msg(&Message {
        sequence: Some(77),
        body: Body::Pause {
            target: None,
            duration_secs: 1,
        },
    });
    until_answered(&mut peer, 77);
    agent
        .stderr
        .wait_contains("paused by the collector for 1 s");
    agent.stderr.wait_contains("pause over, sampling again");
    let (seq, _) = next_report(&mut peer);
    peer.send_msg(&Message::ack(Some(seq)));

    // PAUSE 60 s, then RESUME: reports come back long before the minute is over.
    peer.send_msg(&Message {
        sequence: Some(78),
        body: Body::Pause {
            target: None,
            duration_secs: 60,
        },
    });
    until_answered(&mut peer, 78);
    agent
        .stderr
        .wait_contains("paused: no sampling until the pause ends");
    peer.send_msg(&Message {
        sequence: Some(79),
        body: Body::Resume { target: None },
    });
    until_answered(&mut peer, 79);
    agent.stderr.wait_contains("pause over, sampling again");
    next_report(&mut peer);
}

#[test]
fn speaks_json_on_a_json_url() {
    let (l, addr) = listener();
    let mut agent = start_agent(
        &format!("json+tcp://{addr}"),
        "50ms",
        &["--node-id", "j", "--count", "2"],
    );
    let mut peer = accept(&l, Codec::Json);
    for expected in 1..=2 {
        let (seq, r) = next_report(&mut peer);
        assert_eq!((seq, r.node_id.as_deref()), (expected, Some("j")));
        peer.send_msg(&Message::ack(Some(seq)));
    }
    assert_eq!(agent.wait_exit(), 0);
}

#[test]
fn invalid_messages_are_answered_and_the_agent_goes_on() {
    let (l, addr) = listener();
    let _agent = start_agent(&format!("tcp://{addr}"), "50ms", &[]);
    let mut peer = accept(&l, Codec::Binary);
    use std::io::Write;
    // Unknown type 9 with SEQUENCE 5.
    peer.stream.write_all(&[0, 9, 9, 6, 4, 0, 0, 0, 5]).unwrap();
    loop {
        let msg = peer.expect();
        match msg.body {
            Body::StatReport(_) => peer.send_msg(&Message::ack(msg.sequence)),
            Body::CommandResponse { code, .. } => {
                assert_eq!((code, msg.sequence), (501, Some(5)));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    next_report(&mut peer);
}

#[test]
fn an_answer_timeout_fails_over_to_the_next_collector_which_gets_the_reports_again() {
    let (silent, silent_addr) = listener();
    let (l, addr) = listener();
    let next = format!("tcp://{addr}");
    let mut agent = start_agent(
        &format!("tcp://{silent_addr}"),
        "50ms",
        &[
            "--collector",
            &next,
            "--node-id",
            "ws-9",
            "--count",
            "3",
            "--answer-timeout",
            "300ms",
            "--failback-after",
            "1h",
        ],
    );
    // The first collector takes the reports and never answers.
    let mut mute = accept(&silent, Codec::Binary);
    assert_eq!(next_report(&mut mute).0, 1);
    agent.stderr.wait_contains("no answer in time");
    let mut second = accept(&l, Codec::Binary);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (seq, _) = next_report(&mut second);
        if !seen.contains(&seq) {
            seen.push(seq);
        }
        second.send_msg(&Message::ack(Some(seq)));
    }
    assert_eq!(seen, [1, 2, 3], "every report again, oldest first");
    let line = totals(&mut agent);
    assert_eq!(field(&line, "acked"), Some("3"), "{line}");
    assert_eq!(field(&line, "unacked"), Some("0"), "{line}");
    assert_eq!(agent.wait_exit(), 0);
    drop(mute);
}
