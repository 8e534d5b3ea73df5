//! `avpd term` in plain mode and its one-shot commands, against a node played by the test: a
//! listener the terminal connects to, pushing rows and answering commands with each node's
//! result and then the command's answer.

mod client_support;

use avp_proto::{Body, Codec, FleetState, NodeState};
use avpd_term::clock::iso_utc;
use client_support::{
    accept, avpd, field, frame, listener, pushed_report, pushed_row, unix_millis, FakeNode, Lines,
    Peer, Program, WAIT,
};
use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;

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
fn a_row_line_has_stable_fields_in_order() {
    let (l, addr) = listener();
    let url = format!("tcp://{addr}");
    let mut term = avpd(&["term", "--plain", "--connect", &url]);
    let mut peer = accept(&l, Codec::Binary);
    let before = iso_utc(unix_millis());
    let paused = FleetState {
        state: NodeState::Paused,
        received_ms: Some(1_700_000_000_500),
        paused_until_ms: Some(1_700_000_090_000),
    };
    peer.send_msg(&pushed_row(1, "ws-17", 7, 8, 1_700_000_000_000, paused));
    let line = term.stdout.wait_contains("node=ws-17 ");
    let after = iso_utc(unix_millis());
    let (time, rest) = line.split_once(' ').unwrap();
    let time = time.strip_prefix("time=").expect(&line);
    assert!(
        before.as_str() <= time && time <= after.as_str(),
        "{time} between {before} and {after}"
    );
    assert_eq!(
        rest,
        format!(
            "node=ws-17 cpu=7 mem=8 ts=1700000000000 state=paused received=1700000000500 \
             paused_until=1700000090000 link={url}"
        )
    );
    for (seq, state, word) in [
        (2, NodeState::Ok, "ok"),
        (3, NodeState::Stale, "stale"),
        (4, NodeState::ClockSkew, "clock-skew"),
        (5, NodeState::Removed, "removed"),
    ] {
        let fleet = FleetState {
            state,
            received_ms: Some(1_700_000_000_000 + seq),
            paused_until_ms: None,
        };
        peer.send_msg(&pushed_row(seq, "ws-17", 7, 8, 1_700_000_000_000, fleet));
        let line = term.stdout.wait_contains("node=ws-17 ");
        assert_eq!(field(&line, "state"), Some(word), "{line}");
        assert_eq!(
            field(&line, "received"),
            Some((1_700_000_000_000 + seq).to_string().as_str())
        );
        assert_eq!(field(&line, "paused_until"), None, "{line}");
    }
}

#[test]
fn a_node_id_with_escape_codes_is_refused_never_printed() {
    let (l, addr) = listener();
    let mut term = avpd(&["term", "--plain", "--connect", &format!("tcp://{addr}")]);
    let mut peer = accept(&l, Codec::Binary);
    // Built by hand: the encoder refuses a NODE_ID with control characters, as every decoder
    // does (answered 400), the terminal's among them.
    let node = b"evil\x1b[2J\x07 x";
    let mut body = vec![
        1, 1, 1, 2, 1, 2, 6, 4, 0, 0, 0, 1, 7, 8, 0, 0, 0, 0, 0, 0, 0, 3,
    ];
    body.extend_from_slice(&[8, node.len() as u8]);
    body.extend_from_slice(node);
    peer.send(&frame(3, &body));
    match peer.expect().body {
        Body::CommandResponse { code, .. } => assert_eq!(code, 400),
        other => panic!("the forged row was answered {other:?}"),
    }
    peer.send_msg(&pushed_report(2, "ws-2", 1, 2, 3));
    term.stdout.wait_for("for ws-2", |line| {
        assert!(
            !line.contains("evil") && !line.chars().any(char::is_control),
            "{line:?}"
        );
        line.contains(" node=ws-2 ").then_some(())
    });
}

#[test]
fn plain_mode_counts_100000_distinct_rows() {
    const ROWS: usize = 100_000;
    const BATCH: usize = 10_000;
    let (l, addr) = listener();
    let mut term = avpd(&["term", "--plain", "--connect", &format!("tcp://{addr}")]);
    let peer = accept(&l, Codec::Binary);
    // Acks are read as they come, or both sides would block on full socket buffers.
    let mut acks = Peer::new(peer.stream.try_clone().unwrap(), Codec::Binary);
    let counter = std::thread::spawn(move || {
        (0..ROWS)
            .filter(|_| acks.expect().body == Body::StatReportAck)
            .count()
    });
    let mut stream = peer.stream;
    let mut batch = Vec::new();
    for first in (0..ROWS).step_by(BATCH) {
        batch.clear();
        for i in first..first + BATCH {
            let row = pushed_report(i as u64, &format!("node-{i:06}"), 1, 2, 3);
            Codec::Binary.encode(&row, &mut batch).unwrap();
        }
        stream.write_all(&batch).unwrap();
    }
    let mut nodes = HashSet::new();
    while nodes.len() < ROWS {
        let node = term
            .stdout
            .wait_for("with a row", |line| field(line, "node").map(str::to_string));
        nodes.insert(node);
    }
    assert_eq!(counter.join().unwrap(), ROWS, "every row acknowledged");
    assert!(nodes.contains("node-000000") && nodes.contains("node-099999"));
}

#[test]
fn stdin_commands_are_sent_and_answers_printed() {
    let (l, addr) = listener();
    let url = format!("tcp://{addr}");
    let mut term = avpd(&["term", "--plain", "--connect", &url]);
    let mut node = FakeNode::accept(&l);

    term.type_line("freeze 2");
    let msg = node.command();
    assert_eq!(
        msg.body,
        Body::Pause {
            target: None,
            duration_secs: 2
        }
    );
    node.answer(&msg, &[], 200, "paused for 2 s");
    let line = term.stdout.wait_contains(" response ");
    assert!(
        line.ends_with(&format!("response link={url} code=200 info=paused for 2 s")),
        "{line}"
    );
    term.type_line("unfreeze");
    let msg = node.command();
    assert_eq!(msg.body, Body::Resume { target: None });
    node.answer(&msg, &[], 200, "resumed");
    term.stdout.wait_contains("code=200 info=resumed");

    term.type_line("pause ws-17 90s");
    let msg = node.command();
    assert_eq!(
        msg.body,
        Body::Pause {
            target: Some("ws-17".into()),
            duration_secs: 90
        }
    );
    node.answer(
        &msg,
        &[("ws-17", 200, "paused for 90 s")],
        200,
        "paused 1 of 1 nodes",
    );
    let line = term.stdout.wait_contains(" result ");
    assert!(
        line.ends_with(&format!(
            "result link={url} node=ws-17 code=200 info=paused for 90 s"
        )),
        "{line}"
    );
    term.stdout.wait_contains("response link=");

    term.type_line("pause nonsense");
    term.stderr.wait_contains("is no command");
    term.type_line("resume --match lab-*");
    let msg = node.command();
    assert_eq!(
        msg.body,
        Body::Resume {
            target: Some("lab-*".into())
        }
    );
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

/// What a node played by the test answers to a targeted command: each node's result, then
/// the command's own answer.
struct Answer<'a> {
    results: &'a [(&'a str, u16, &'a str)],
    code: u16,
    info: &'a str,
}

/// Runs a one-shot command against nodes played by the test (one per answer); returns the
/// command each node received, the exit code, stdout and stderr.
fn one_shot(args: &[&str], answers: &[Answer<'_>]) -> (Body<'static>, i32, String, String) {
    let listeners: Vec<(TcpListener, String)> = answers.iter().map(|_| listener()).collect();
    let mut full = vec!["term".to_string()];
    for (_, addr) in &listeners {
        full.extend(["--connect".to_string(), format!("tcp://{addr}")]);
    }
    full.extend(args.iter().map(|a| a.to_string()));
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let mut term = avpd(&full);
    let mut bodies = Vec::new();
    for ((l, _), answer) in listeners.iter().zip(answers) {
        let mut node = FakeNode::accept(l);
        let msg = node.command();
        node.answer(&msg, answer.results, answer.code, answer.info);
        bodies.push(msg.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let exit = term.wait_exit();
    let drain = |lines: &mut Lines| {
        while lines.next_within(WAIT).is_some() {}
        lines.seen.join("\n")
    };
    let out = drain(&mut term.stdout);
    let err = drain(&mut term.stderr);
    (bodies.remove(0), exit, out, err)
}

#[test]
fn one_shot_pause_of_one_node() {
    let answer = Answer {
        results: &[("ws-17", 200, "paused for 200 s")],
        code: 200,
        info: "paused 1 of 1 nodes",
    };
    let (body, exit, out, err) = one_shot(&["pause", "ws-17", "200"], &[answer]);
    assert_eq!(
        body,
        Body::Pause {
            target: Some("ws-17".into()),
            duration_secs: 200
        }
    );
    assert_eq!(exit, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "ws-17: 200 paused for 200 s");
    assert!(lines[1].ends_with(": 200 paused 1 of 1 nodes"), "{out}");
    assert!(lines[1].starts_with("tcp://127.0.0.1:"), "{out}");
}

#[test]
fn one_shot_pause_of_a_set_fails_when_a_node_is_not_reached() {
    let answer = Answer {
        results: &[
            ("lab-3-1", 200, "paused for 600 s"),
            ("lab-3-2", 404, "not connected to any collector"),
        ],
        code: 404,
        info: "paused 1 of 2 nodes",
    };
    let (body, exit, out, err) = one_shot(&["pause", "--match", "lab-3-*", "10m"], &[answer]);
    assert_eq!(
        body,
        Body::Pause {
            target: Some("lab-3-*".into()),
            duration_secs: 600
        }
    );
    assert_eq!(exit, 1, "{out}\n{err}");
    assert!(out.contains("lab-3-1: 200 paused for 600 s"), "{out}");
    assert!(
        out.contains("lab-3-2: 404 not connected to any collector"),
        "{out}"
    );
    assert!(
        err.contains("pause --match lab-3-* 10m: 1 of 2 nodes did not answer 200"),
        "{err}"
    );
}

#[test]
fn one_shot_pause_and_resume_of_the_fleet() {
    let answer = || Answer {
        results: &[("a", 200, "ok"), ("b", 200, "ok")],
        code: 200,
        info: "done 2 of 2 nodes",
    };
    let (body, exit, out, _) = one_shot(&["pause", "--all", "60"], &[answer()]);
    assert_eq!(
        (body, exit),
        (
            Body::Pause {
                target: Some("*".into()),
                duration_secs: 60
            },
            0
        ),
        "{out}"
    );
    let (body, exit, out, _) = one_shot(&["resume", "--all"], &[answer()]);
    assert_eq!(
        (body, exit),
        (
            Body::Resume {
                target: Some("*".into())
            },
            0
        ),
        "{out}"
    );
}

#[test]
fn one_shot_resume_of_one_node_and_of_a_set() {
    let ok = Answer {
        results: &[("ws-17", 200, "resumed")],
        code: 200,
        info: "resumed 1 of 1 nodes",
    };
    let (body, exit, out, _) = one_shot(&["resume", "ws-17"], &[ok]);
    assert_eq!(
        body,
        Body::Resume {
            target: Some("ws-17".into())
        }
    );
    assert_eq!(exit, 0, "{out}");
    assert!(out.starts_with("ws-17: 200 resumed\n"), "{out}");

    let late = Answer {
        results: &[("lab-1", 504, "no answer within 5 s")],
        code: 504,
        info: "resumed 0 of 1 nodes",
    };
    let (body, exit, out, _) = one_shot(&["resume", "--match", "lab-*"], &[late]);
    assert_eq!(
        body,
        Body::Resume {
            target: Some("lab-*".into())
        }
    );
    assert_eq!(exit, 1, "{out}");
    assert!(out.contains("lab-1: 504 no answer within 5 s"), "{out}");
}

#[test]
fn one_shot_with_no_node_matching_fails() {
    let none = Answer {
        results: &[],
        code: 404,
        info: "no node matches lab-9-*",
    };
    let (_, exit, out, err) = one_shot(&["resume", "--match", "lab-9-*"], &[none]);
    assert_eq!(exit, 1, "{out}");
    assert!(out.ends_with(": 404 no node matches lab-9-*"), "{out}");
    assert!(err.contains("no node matched"), "{err}");
}

#[test]
fn one_shot_over_two_nodes_takes_the_best_result_per_agent() {
    let here = Answer {
        results: &[("ws-17", 200, "paused for 60 s")],
        code: 200,
        info: "paused 1 of 1 nodes",
    };
    let elsewhere = Answer {
        results: &[("ws-17", 404, "not connected to any collector")],
        code: 404,
        info: "paused 0 of 1 nodes",
    };
    let (_, exit, out, err) = one_shot(&["pause", "ws-17", "60"], &[elsewhere, here]);
    assert_eq!(exit, 0, "{out}\n{err}");
    assert!(
        out.contains("ws-17: 404 not connected") && out.contains("ws-17: 200 paused"),
        "{out}"
    );
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
        "--all",
    ]);
    assert_eq!(term.wait_exit(), 1);
    let out = term.stdout.wait_contains("not connected within");
    assert!(out.contains("connect failed"), "{out}");
}

#[test]
fn one_shot_without_an_answer_fails_at_the_timeout() {
    let (l, addr) = listener();
    let mut term = avpd(&[
        "term",
        "--connect",
        &format!("tcp://{addr}"),
        "--timeout",
        "1s",
        "pause",
        "ws-17",
        "60",
    ]);
    let mut node = FakeNode::accept(&l);
    node.command();
    assert_eq!(term.wait_exit(), 1);
    term.stdout.wait_contains("no answer within 1s");
}

#[test]
fn unusable_command_lines_are_refused_before_connecting() {
    for (args, says) in [
        (
            &["pause", "ws-17", "0"][..],
            "a pause lasts whole seconds, 1s to 7d",
        ),
        (&["pause", "ws*1", "60"], "holds * or ?"),
        (&["pause", "60"], "is no command"),
        (
            &["freeze", "200"],
            "acts on the pushes to a running terminal",
        ),
        (&["unfreeze"], "acts on the pushes to a running terminal"),
    ] {
        let mut full = vec!["term", "--connect", "tcp://127.0.0.1:9"];
        full.extend_from_slice(args);
        let mut term = avpd(&full);
        assert_eq!(term.wait_exit(), 2, "{args:?}");
        term.stderr.wait_contains(says);
    }
}
