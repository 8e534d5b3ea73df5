//! `avpd term` in plain mode and its one-shot commands, against a management endpoint played
//! by the test.

mod client_support;

use avp_proto::{Body, Codec, Message};
use client_support::{accept, avpd, field, listener, pushed_report, Peer, Program};

/// Pushes a report and checks that the terminal prints it and acknowledges it.
fn push_and_see(peer: &mut Peer, term: &mut Program, seq: u64, node: &str, cpu: u8, mem: u8) {
    peer.send_msg(&pushed_report(seq, node, cpu, mem, 1_700_000_000_000 + seq));
    let line = term.stdout.wait_contains(&format!("node={node} "));
    assert_eq!(
        field(&line, "cpu"),
        Some(cpu.to_string().as_str()),
        "{line}"
    );
    assert_eq!(
        field(&line, "mem"),
        Some(mem.to_string().as_str()),
        "{line}"
    );
    assert_eq!(
        field(&line, "ts"),
        Some((1_700_000_000_000 + seq).to_string().as_str())
    );
    let ack = peer.expect();
    assert_eq!((ack.body, ack.sequence), (Body::StatReportAck, Some(seq)));
}

#[test]
fn prints_and_acks_every_report_and_reconnects_by_itself() {
    let (l, addr) = listener();
    let url = format!("tcp://{addr}");
    let mut term = avpd(&["term", "--plain", "--connect", &url]);
    let mut peer = accept(&l, Codec::Binary);
    push_and_see(&mut peer, &mut term, 1, "alpha", 12, 34);
    push_and_see(&mut peer, &mut term, 2, "beta", 99, 1);
    let line = term.stdout.seen.last().unwrap().clone();
    assert_eq!(field(&line, "link"), Some(url.as_str()));

    drop(peer);
    term.stderr.wait_contains("link down");
    let mut peer = accept(&l, Codec::Binary);
    term.stderr.wait_contains(&format!("{url}: connected"));
    push_and_see(&mut peer, &mut term, 3, "alpha", 50, 50);
}

#[test]
fn stdin_commands_are_sent_and_answers_printed() {
    let (l, addr) = listener();
    let mut term = avpd(&["term", "--plain", "--connect", &format!("tcp://{addr}")]);
    let mut peer = accept(&l, Codec::Binary);
    term.type_line("pause 2");
    let msg = peer.expect();
    assert_eq!(
        msg.body,
        Body::Pause {
            target: None,
            duration_secs: 2
        }
    );
    peer.send_msg(&Message::command_response(
        msg.sequence,
        200,
        "paused for 2 s",
    ));
    let line = term.stdout.wait_contains("response ");
    assert!(line.contains("code=200 info=paused for 2 s"), "{line}");
    term.type_line("resume");
    let msg = peer.expect();
    assert_eq!(msg.body, Body::Resume { target: None });
}

#[test]
fn codec_json_talks_to_a_text_peer() {
    let (l, addr) = listener();
    let mut term = avpd(&[
        "term",
        "--plain",
        "--codec",
        "json",
        "--connect",
        &format!("tcp://{addr}"),
    ]);
    let mut peer = accept(&l, Codec::Json);
    push_and_see(&mut peer, &mut term, 1, "textual", 5, 6);
}

/// Runs a one-shot command against a peer that answers with `code`; returns the exit code
/// and stdout.
fn one_shot(args: &[&str], code: u16) -> (i32, String) {
    let (l, addr) = listener();
    let url = format!("tcp://{addr}");
    let mut full = vec!["term", "--connect", &url];
    full.extend_from_slice(args);
    let mut term = avpd(&full);
    let mut peer = accept(&l, Codec::Binary);
    let msg = peer.expect();
    peer.send_msg(&Message::command_response(
        msg.sequence,
        code,
        "as you wish",
    ));
    let exit = term.wait_exit();
    let out = term.stdout.wait_contains(&url);
    (exit, out)
}

#[test]
fn one_shot_commands_print_the_answer_and_exit_by_code() {
    let (exit, out) = one_shot(&["pause", "200"], 200);
    assert_eq!(exit, 0);
    assert!(out.ends_with(": 200 as you wish"), "{out}");
    let (exit, out) = one_shot(&["resume"], 200);
    assert_eq!(exit, 0, "{out}");
    let (exit, out) = one_shot(&["pause", "5"], 503);
    assert_ne!(exit, 0);
    assert!(out.ends_with(": 503 as you wish"), "{out}");
}

#[test]
fn one_shot_without_a_peer_fails_at_the_timeout() {
    let (l, addr) = listener();
    drop(l);
    let mut term = avpd(&[
        "term",
        "--connect",
        &format!("tcp://{addr}"),
        "--timeout",
        "1s",
        "resume",
    ]);
    assert_ne!(term.wait_exit(), 0);
    let out = term.stdout.wait_contains("not connected within");
    assert!(out.contains("connect failed"), "{out}");
}

#[test]
fn a_pause_out_of_range_is_refused_before_connecting() {
    let mut term = avpd(&["term", "--connect", "tcp://127.0.0.1:9", "pause", "0"]);
    assert_ne!(term.wait_exit(), 0);
    term.stderr
        .wait_contains("a pause lasts whole seconds, 1s to 7d");
}

#[test]
fn a_one_shot_pause_takes_a_duration() {
    let (l, addr) = listener();
    let url = format!("tcp://{addr}");
    let mut term = avpd(&["term", "--connect", &url, "pause", "1h30m"]);
    let mut peer = accept(&l, Codec::Binary);
    let msg = peer.expect();
    assert_eq!(
        msg.body,
        Body::Pause {
            target: None,
            duration_secs: 5_400
        }
    );
    peer.send_msg(&Message::command_response(msg.sequence, 200, "paused"));
    assert_eq!(term.wait_exit(), 0);
}
