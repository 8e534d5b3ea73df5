//! The whole monitoring system over loopback: `avpd agent`s report to `avpd serve`, and
//! `avpd term --plain` watches its management plane.

mod client_support;

use client_support::{avpd, field, port, serve, NodeProc, Program, WAIT};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Starts `avpd serve` on the given ports (0: any).
fn start_node(data_port: u16, admin_port: u16) -> Node {
    let node = serve(&[
        "--listen",
        &format!("tcp://127.0.0.1:{data_port}"),
        "--admin",
        &format!("tcp://127.0.0.1:{admin_port}"),
        "--report-interval",
        "100ms",
        "--workers",
        "1",
    ]);
    Node {
        admin: node.admin.clone().expect("a management plane"),
        data: node.data.clone(),
        proc: node,
    }
}

/// A node with its management plane.
struct Node {
    proc: NodeProc,
    data: String,
    admin: String,
}

fn start_agent(collector: &str, name: &str, interval: &str, count: Option<&str>) -> Program {
    let mut args = vec![
        "agent",
        "--collector",
        collector,
        "--interval",
        interval,
        "--node-id",
        name,
    ];
    if let Some(c) = count {
        args.extend_from_slice(&["--count", c]);
    }
    avpd(&args)
}

fn start_term(admin: &str) -> Program {
    avpd(&["term", "--plain", "--connect", admin])
}

#[test]
fn every_agent_reaches_the_terminal_with_its_values() {
    let node = start_node(0, 0);
    let names = ["agent-1", "agent-2", "agent-3"];
    let mut agents: Vec<Program> = names
        .iter()
        .map(|n| start_agent(&node.data, n, "100ms", None))
        .collect();
    let mut term = start_term(&node.admin);
    for (name, agent) in names.iter().zip(agents.iter_mut()) {
        let line = term.stdout.wait_contains(&format!("node={name} "));
        assert_eq!(field(&line, "link"), Some(node.admin.as_str()));
        // The agent logs each report before sending it: find the one the terminal shows.
        let ts = field(&line, "ts").unwrap().to_string();
        let sent = agent.stderr.wait_contains(&format!("ts={ts}")).to_string();
        assert!(sent.contains("report seq="), "{sent}");
        assert_eq!(field(&sent, "cpu"), field(&line, "cpu"), "{sent} / {line}");
        assert_eq!(field(&sent, "mem"), field(&line, "mem"), "{sent} / {line}");
    }
}

/// Waits for the terminal's answer line to a command typed on its stdin.
fn command(term: &mut Program, line: &str) -> Instant {
    term.type_line(line);
    let answer = term.stdout.wait_contains("response ");
    assert!(answer.contains("code=200"), "{answer}");
    Instant::now()
}

#[test]
fn pause_stops_the_pushes_for_its_duration_and_resume_ends_it_early() {
    let node = start_node(0, 0);
    let _agent = start_agent(&node.data, "paused-agent", "100ms", None);
    let mut term = start_term(&node.admin);
    term.stdout.wait_contains("node=paused-agent ");

    let paused = command(&mut term, "freeze 2");
    let quiet = Duration::from_millis(1_500);
    let next = term.stdout.next_within(WAIT).expect("pushes resume");
    let gap = paused.elapsed();
    assert!(field(&next, "node").is_some(), "{next}");
    assert!(
        gap >= quiet,
        "a report came {gap:?} into a 2 s pause: {next}"
    );

    // A pause far longer than any wait of this test: a push before it ends is RESUME's doing.
    command(&mut term, "freeze 1h");
    assert_eq!(term.stdout.next_within(Duration::from_secs(1)), None);
    command(&mut term, "unfreeze");
    let next = term.stdout.next_within(WAIT);
    assert!(
        next.as_deref().is_some_and(|l| field(l, "node").is_some()),
        "no push within {WAIT:?} of RESUME in an hour's pause: {next:?}"
    );
}

/// The `acked seq=N` numbers in an agent's log, each one counted.
fn acked(agent: &Program) -> Vec<u64> {
    agent
        .stderr
        .seen
        .iter()
        .filter_map(|l| l[l.find("acked seq=")? + "acked seq=".len()..].parse().ok())
        .collect()
}

#[test]
fn a_node_restart_loses_nothing_and_everyone_reconnects() {
    const COUNT: u64 = 60;
    let node = start_node(0, 0);
    let (data_port, admin_port) = (port(&node.data), port(&node.admin));
    let names = ["steady-1", "steady-2"];
    let mut agents: Vec<Program> = names
        .iter()
        .map(|n| start_agent(&node.data, n, "50ms", Some(&COUNT.to_string())))
        .collect();
    let mut term = start_term(&node.admin);
    term.stdout.wait_contains("node=steady-1 ");

    // Mid-stream: some reports acknowledged, then the node dies.
    for agent in &mut agents {
        agent.stderr.wait_contains("acked seq=10");
    }
    let mut node = node;
    node.proc.proc.kill();
    for agent in &mut agents {
        agent.stderr.wait_contains("down:");
    }
    term.stderr.wait_contains("link down");
    // Let every agent buffer a few reports while the node is away.
    for agent in &mut agents {
        let down_at: u64 = agent.stderr.wait_for("report during the outage", |l| {
            field(l, "seq")
                .filter(|_| l.contains("report seq="))?
                .parse()
                .ok()
        });
        agent.stderr.wait_for("three more reports", |l| {
            let seq: u64 = field(l, "seq")
                .filter(|_| l.contains("report seq="))?
                .parse()
                .ok()?;
            (seq >= (down_at + 3).min(COUNT)).then_some(())
        });
    }

    let node = start_node(data_port, admin_port);
    for (name, agent) in names.iter().zip(agents.iter_mut()) {
        let totals = agent.stderr.wait_contains("agent stopped:");
        assert_eq!(agent.wait_exit(), 0, "{name}");
        let count = COUNT.to_string();
        assert_eq!(field(&totals, "sampled"), Some(count.as_str()), "{totals}");
        assert_eq!(field(&totals, "acked"), Some(count.as_str()), "{totals}");
        assert_eq!(field(&totals, "dropped"), Some("0"), "{totals}");
        assert_eq!(field(&totals, "unacked"), Some("0"), "{totals}");
        let seqs = acked(agent);
        assert_eq!(seqs.len() as u64, COUNT, "each report acknowledged once");
        assert_eq!(
            seqs.iter().copied().collect::<BTreeSet<_>>(),
            (1..=COUNT).collect::<BTreeSet<_>>(),
            "{name}: every report acknowledged"
        );
        assert!(agent.stderr.seen.iter().any(|l| l.contains("resending")));
        // The terminal came back by itself and shows the agent's last report.
        let last = agent
            .stderr
            .seen
            .iter()
            .find(|l| l.contains(&format!("report seq={COUNT} ")))
            .cloned()
            .unwrap();
        let ts = field(&last, "ts").unwrap();
        term.stdout.wait_contains(&format!(
            "node={name} cpu={} mem={} ts={ts} ",
            field(&last, "cpu").unwrap(),
            field(&last, "mem").unwrap()
        ));
    }
    assert!(term.stderr.seen.iter().any(|l| l.contains("connected")));
    drop(node);
}
