//! The fleet view's rules on a running node, as a terminal sees them: a silent node turns
//! stale and is then removed, a report stamped far in the future is flagged as clock skew
//! without pinning its row, a reporter without NODE_ID keeps one row across reconnects, and
//! nodes past `max_nodes` are left out and counted.

mod common;

use avp_endpoint::{Endpoint, Scheme};
use avp_proto::{Body, Codec, Message, NodeState};
use avpd_node::Node;
use common::{config, connect, named_report, report, unix_millis, wait_for_counters, Peer};
use std::time::Duration;

/// A node whose view turns a row stale after 300 ms of silence and removes it after 1 s,
/// holds 3 rows, and flags TIMESTAMPs over 1 min off; it pushes every 50 ms.
fn node() -> Node {
    let mut c = config();
    c.admin.listen = vec!["tcp://127.0.0.1:0".parse::<Endpoint>().unwrap()];
    c.admin.report_interval = Duration::from_millis(50);
    c.admin.fleet.stale_after = Some(Duration::from_millis(300));
    c.admin.fleet.node_ttl = Duration::from_secs(1);
    c.admin.fleet.max_nodes = 3;
    c.admin.fleet.max_clock_skew = Duration::from_secs(60);
    Node::start(c).expect("node starts")
}

/// Reads pushed rows (acknowledging each) until `node`'s row is in `state`.
fn wait_state(term: &mut Peer, node: &str, state: NodeState) -> Message<'static> {
    loop {
        let msg = term.expect();
        term.send_msg(&Message::ack(msg.sequence));
        if let Body::StatReport(r) = &msg.body {
            let shown = r.fleet.as_ref().map(|f| f.state);
            if r.node_id.as_deref() == Some(node) && shown == Some(state) {
                return msg;
            }
        }
    }
}

#[test]
fn a_silent_node_turns_stale_then_is_removed() {
    let node = node();
    let mut term = Peer::connect(node.admin_addr(Scheme::Tcp).unwrap(), Codec::Binary);
    let mut agent = connect(&node, Scheme::Tcp);
    agent.send_msg(&named_report(1, "ws-1", 10, 20));
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    wait_state(&mut term, "ws-1", NodeState::Ok);
    wait_state(&mut term, "ws-1", NodeState::Stale);
    wait_state(&mut term, "ws-1", NodeState::Removed);
    // It comes back as a new row when it reports again.
    agent.send_msg(&named_report(2, "ws-1", 11, 20));
    assert_eq!(agent.expect(), Message::ack(Some(2)));
    wait_state(&mut term, "ws-1", NodeState::Ok);
}

#[test]
fn a_future_timestamp_is_flagged_and_does_not_pin_the_row() {
    let node = node();
    let mut term = Peer::connect(node.admin_addr(Scheme::Tcp).unwrap(), Codec::Binary);
    let mut agent = connect(&node, Scheme::Tcp);
    let mut skewed = named_report(1, "ws-2", 10, 20);
    if let Body::StatReport(r) = &mut skewed.body {
        r.timestamp_ms = Some(unix_millis() + 3_600_000);
    }
    agent.send_msg(&skewed);
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    wait_state(&mut term, "ws-2", NodeState::ClockSkew);
    // A later report with a true clock replaces it, whatever the earlier TIMESTAMP said.
    let mut fixed = named_report(2, "ws-2", 55, 20);
    if let Body::StatReport(r) = &mut fixed.body {
        r.timestamp_ms = Some(unix_millis());
    }
    agent.send_msg(&fixed);
    assert_eq!(agent.expect(), Message::ack(Some(2)));
    let row = wait_state(&mut term, "ws-2", NodeState::Ok);
    assert!(matches!(row.body, Body::StatReport(r) if r.cpu_percent == 55));
}

#[test]
fn an_unnamed_reporter_keeps_one_row_and_nodes_past_the_bound_are_counted() {
    let node = node();
    let mut term = Peer::connect(node.admin_addr(Scheme::Tcp).unwrap(), Codec::Binary);
    // Without NODE_ID, from three source ports one after the other: one row, by address.
    for seq in 0..3 {
        let mut anonymous = connect(&node, Scheme::Tcp);
        anonymous.send(&report(seq));
        assert_eq!(anonymous.expect(), Message::ack(Some(seq)));
    }
    wait_state(&mut term, "127.0.0.1", NodeState::Ok);
    // Two named nodes fill the view (3 rows); a third is left out, counted, still answered.
    let mut agent = connect(&node, Scheme::Tcp);
    for (seq, name) in ["ws-a", "ws-b", "ws-c"].into_iter().enumerate() {
        agent.send_msg(&named_report(seq as u64, name, 10, 20));
        assert_eq!(agent.expect(), Message::ack(Some(seq as u64)));
    }
    wait_for_counters(&node, |c| c.fleet_dropped == 1);
    let mut seen = std::collections::HashSet::new();
    while !(seen.contains("ws-a") && seen.contains("ws-b")) {
        let msg = term.expect();
        term.send_msg(&Message::ack(msg.sequence));
        if let Body::StatReport(r) = msg.body {
            let name = r.node_id.as_deref().unwrap_or("").to_string();
            assert_ne!(name, "ws-c", "a node past the bound is not shown");
            assert!(
                !name.starts_with("127.0.0.1:"),
                "one row per address, not per port: {name}"
            );
            seen.insert(name);
        }
    }
}
