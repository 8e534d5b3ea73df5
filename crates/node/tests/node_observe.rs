//! What the node shows of itself while it runs: the observer's figures (worker counters, the
//! fleet view) and live reconfiguration.

mod common;

use avp_endpoint::Scheme;
use avp_proto::{Body, Message};
use avpd_node::live::Live;
use avpd_node::observe::FleetFiguresConfig;
use avpd_node::stats::{Counters, WorkerKind};
use avpd_node::Node;
use common::{command_response, config, connect, report, WAIT};
use crossbeam_channel::Receiver;
use std::net::UdpSocket;
use std::time::Duration;

/// A binary report from `node` with `cpu` and `mem`.
fn named(seq: u64, node: &str, cpu: u8, mem: u8) -> Vec<u8> {
    let mut out = Vec::new();
    avp_testkit::named_report(seq, node, cpu, mem)
        .encode(&mut out)
        .unwrap();
    out
}

/// A node config whose status lines are announced on the returned channel, every `interval`.
fn with_status_lines(interval: Duration) -> (avpd_node::Config, Receiver<()>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut cfg = config();
    cfg.status_interval = interval;
    cfg.on_status = Some(Box::new(move |_| {
        let _ = tx.send(());
    }));
    (cfg, rx)
}

/// Waits status line by status line until `f` holds for the node's observation.
fn wait_until(
    lines: &Receiver<()>,
    node: &Node,
    what: &str,
    f: impl Fn(&avpd_node::observe::Observation) -> bool,
) {
    let deadline = std::time::Instant::now() + WAIT;
    while !f(&node.observer().latest()) {
        lines
            .recv_deadline(deadline)
            .unwrap_or_else(|_| panic!("never observed {what}: {:?}", node.observer().latest()));
    }
}

fn totals(o: &avpd_node::observe::Observation, kind: WorkerKind) -> Counters {
    let mut total = Counters::default();
    for (s, _) in o.workers.iter().filter(|(s, _)| s.kind == kind) {
        total.add(&s.counters);
    }
    total
}

#[test]
fn the_observer_keeps_every_workers_counters_and_the_fleets_figures() {
    let (mut cfg, lines) = with_status_lines(Duration::from_millis(20));
    cfg.admin.listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
    cfg.admin.report_interval = Duration::from_millis(20);
    cfg.fleet_figures = Some(FleetFiguresConfig { per_node: true });
    let node = Node::start(cfg).unwrap();
    let mut tcp = connect(&node, Scheme::Tcp);
    for seq in 1..=3 {
        tcp.send(&named(seq, "obs-1", 42, 17));
        assert_eq!(tcp.expect(), Message::ack(Some(seq)));
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(WAIT)).unwrap();
    let frame = named(4, "obs-2", 5, 6);
    udp.send_to(&frame, node.local_addr(Scheme::Udp).unwrap())
        .unwrap();
    let mut answer = [0u8; 64];
    let n = udp.recv(&mut answer).unwrap();

    wait_until(&lines, &node, "every report", |o| {
        totals(o, WorkerKind::DataTcp).tally.reports == 3
            && totals(o, WorkerKind::DataUdp).tally.reports == 1
    });
    let o = node.observer().latest();
    let tcp_totals = totals(&o, WorkerKind::DataTcp);
    assert_eq!(
        tcp_totals.bytes_in,
        3 * named(1, "obs-1", 42, 17).len() as u64
    );
    assert_eq!(tcp_totals.bytes_out, 3 * 9, "three acks of 9 bytes");
    let udp_totals = totals(&o, WorkerKind::DataUdp);
    assert_eq!(
        (udp_totals.bytes_in, udp_totals.bytes_out),
        (frame.len() as u64, n as u64)
    );
    assert!(o.store.is_none(), "no store configured");

    wait_until(&lines, &node, "both nodes in the fleet", |o| {
        o.fleet.as_ref().is_some_and(|f| f.nodes == 2)
    });
    let fleet = node.observer().latest().fleet.unwrap();
    assert_eq!(fleet.stale, 0);
    let row = fleet.reports.iter().find(|r| r.node == "obs-1").unwrap();
    assert_eq!((row.cpu_percent, row.mem_percent), (42, 17));

    drop(tcp);
    wait_until(&lines, &node, "the peer's close", |o| {
        totals(o, WorkerKind::DataTcp).peer_closed == 1
    });
}

#[test]
fn reconfigure_bounds_new_connections_and_retimes_the_status_line() {
    let (mut cfg, lines) = with_status_lines(Duration::from_secs(3600));
    // One worker: each takes a change at its own next tick, and with two a connection made
    // after the first refusal could still reach the one that has not taken it yet.
    cfg.workers = 1;
    let before = Live::of(&cfg);
    let node = Node::start(cfg).unwrap();
    let mut first = connect(&node, Scheme::Tcp);
    first.send(&report(1));
    assert_eq!(first.expect(), Message::ack(Some(1)));

    node.reconfigure(Live {
        max_connections: 1,
        status_interval: Duration::from_millis(20),
        ..before
    });
    lines
        .recv_timeout(WAIT)
        .expect("a status line within the new interval");
    // Workers take the change at their next tick; until then a second connection is served.
    let deadline = std::time::Instant::now() + WAIT;
    for seq in 2.. {
        let mut c = connect(&node, Scheme::Tcp);
        c.send(&report(seq));
        match c.expect() {
            Message {
                body: Body::CommandResponse { .. },
                ..
            } => break,
            ack => assert_eq!(ack, Message::ack(Some(seq))),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new bound never applied"
        );
    }
    let mut extra = connect(&node, Scheme::Tcp);
    assert_eq!(
        command_response(&extra.expect(), 503, None),
        "too many connections"
    );
    first.send(&report(2));
    assert_eq!(
        first.expect(),
        Message::ack(Some(2)),
        "open connections stay"
    );
}
