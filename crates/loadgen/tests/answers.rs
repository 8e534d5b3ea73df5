//! Every answer is checked, and each kind of bad answer is counted where it belongs.

mod common;

use avp_loadgen::run::run;
use avp_proto::Message;
use common::{config, correct_answer, spawn_server};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn bad_answers_are_counted_by_kind() {
    // Of every 10 requests: 6 right, one wrong SEQUENCE, one 400, one 503, one wrong type.
    let addr = spawn_server(Arc::new(|n, msg: &Message<'_>| {
        vec![match n % 10 {
            6 => Message::ack(msg.sequence.map(|s| s + 1000)),
            7 => Message::command_response(msg.sequence, 400, "bad"),
            8 => Message::command_response(msg.sequence, 503, "busy"),
            9 => Message::command_response(msg.sequence, 200, "not an ack"),
            _ => correct_answer(msg),
        }]
    }));
    let mut cfg = config(addr);
    cfg.requests = Some(1000);
    cfg.pipeline = 4;
    let out = run(&cfg, &mut ()).unwrap();
    let s = &out.stats;
    assert_eq!(s.sent_total(), 1000);
    assert_eq!(s.answered, 1000);
    assert_eq!(s.ok, 600);
    assert_eq!(s.errors.seq_mismatch, 100);
    assert_eq!(s.errors.status_4xx, 100);
    assert_eq!(s.errors.status_5xx, 100);
    assert_eq!(s.errors.wrong_type, 100);
    assert_eq!(s.errors.failed_requests(), 400);
    assert_eq!(s.corrected.len(), 1000);
}

#[test]
fn unanswered_requests_time_out_and_extra_answers_are_unsolicited() {
    // Request 3 is never answered; request 1 is answered twice.
    let addr = spawn_server(Arc::new(|n, msg: &Message<'_>| match n {
        3 => vec![],
        1 => vec![correct_answer(msg), correct_answer(msg)],
        _ => vec![correct_answer(msg)],
    }));
    let mut cfg = config(addr);
    cfg.requests = Some(4);
    cfg.pipeline = 1;
    cfg.timeout = Duration::from_millis(300);
    let out = run(&cfg, &mut ()).unwrap();
    let s = &out.stats;
    assert_eq!(s.sent_total(), 4);
    assert_eq!(s.answered, 3);
    assert_eq!(s.errors.timeouts, 1);
    // The duplicate is unsolicited when it arrives with the first copy (the usual case on
    // loopback); if TCP split them, it is taken for request 2 (a SEQUENCE mismatch) and
    // request 2's own answer is unsolicited. Either way it is counted, never dropped.
    assert_eq!(s.errors.unsolicited, 1, "{:?}", s.errors);
    assert_eq!(s.ok + s.errors.seq_mismatch, 3, "{:?}", s.errors);
}
