//! The fleet view at fleet size: 100,000 distinct nodes reported to a node all reach a
//! terminal, each once, and a second round of reports reaches it again as changes only.

mod common;

use avp_endpoint::{Endpoint, Scheme};
use avp_proto::{Body, Codec, Message, NodeState, Report};
use avpd_node::Node;
use common::{config, Peer};
use std::collections::HashMap;
use std::time::Duration;

const NODES: usize = 100_000;
/// Reporters, each sending its share of the nodes in one write.
const REPORTERS: usize = 4;

fn reports(first: usize, count: usize, cpu: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for i in first..first + count {
        let msg = Message {
            sequence: Some(i as u64),
            body: Body::StatReport(Report {
                cpu_percent: cpu,
                mem_percent: 1,
                timestamp_ms: Some(avp_testkit::unix_millis()),
                node_id: Some(format!("node-{i:06}").into()),
                instance: None,
                fleet: None,
            }),
        };
        msg.encode(&mut out).unwrap();
    }
    out
}

/// Every reporter sends its share with CPU `cpu` and reads all its acks.
fn report_all(node: &Node, cpu: u8) {
    let addr = node.local_addr(Scheme::Tcp).unwrap();
    let per = NODES / REPORTERS;
    let threads: Vec<_> = (0..REPORTERS)
        .map(|r| {
            std::thread::spawn(move || {
                let mut peer = Peer::connect(addr, Codec::Binary);
                peer.send(&reports(r * per, per, cpu));
                for _ in 0..per {
                    assert!(matches!(peer.expect().body, Body::StatReportAck));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a reporter");
    }
}

/// Reads pushed rows, acknowledging each, until every node's row has CPU `cpu`; returns how
/// many rows were pushed.
fn read_until_all(term: &mut Peer, rows: &mut HashMap<String, u8>, cpu: u8) -> usize {
    let mut pushed = 0;
    while rows.len() < NODES || rows.values().any(|&c| c != cpu) {
        let msg = term.expect();
        let Body::StatReport(r) = msg.body else {
            panic!("unexpected {msg:?}")
        };
        term.send_msg(&Message::ack(msg.sequence));
        assert_eq!(r.fleet.unwrap().state, NodeState::Ok);
        rows.insert(r.node_id.unwrap().into_owned(), r.cpu_percent);
        pushed += 1;
    }
    pushed
}

#[test]
fn a_hundred_thousand_nodes_reach_a_terminal() {
    let mut c = config();
    c.admin.listen = vec!["tcp://127.0.0.1:0".parse::<Endpoint>().unwrap()];
    c.admin.report_interval = Duration::from_millis(200);
    let node = Node::start(c).expect("node starts");
    let mut term = Peer::connect(node.admin_addr(Scheme::Tcp).unwrap(), Codec::Binary);
    let mut rows = HashMap::new();

    report_all(&node, 7);
    let first = read_until_all(&mut term, &mut rows, 7);
    assert_eq!(rows.len(), NODES);
    assert_eq!(first, NODES, "each row pushed once");

    // Every node reports again: every row reaches the terminal again, once each.
    report_all(&node, 9);
    let second = read_until_all(&mut term, &mut rows, 9);
    assert_eq!(second, NODES, "each changed row pushed once");
}
