//! Signed reports over real sockets: a node with agent keys against impersonators and
//! replays, watched through a terminal on its management plane.

mod common;

use avp_endpoint::{Endpoint, Scheme};
use avp_proto::auth::{self, Key};
use avp_proto::{result_code, Body, Codec, Message, Report};
use avpd_node::auth::AgentKeys;
use avpd_node::{Config, Node};
use common::{command_response, unix_millis, Peer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A key file in a fresh directory, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new(name: &str, text: &str) -> KeyFile {
        let dir = std::env::temp_dir().join(format!("avpd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent-keys.toml");
        std::fs::write(&path, text).unwrap();
        KeyFile(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

/// A node with one worker (so that the fleet view sees reports in the order they arrive),
/// agent keys from `keys`, and a management plane pushing every 20 ms.
fn start(keys: &KeyFile) -> Node {
    let mut config = Config {
        listen: vec!["tcp://127.0.0.1:0".parse::<Endpoint>().unwrap()],
        workers: 1,
        agent_keys: Some(Arc::new(
            AgentKeys::load(&keys.0, Duration::from_secs(60)).unwrap(),
        )),
        ..Config::default()
    };
    config.admin.listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
    config.admin.report_interval = Duration::from_millis(20);
    Node::start(config).expect("node starts")
}

fn report(node: &str, seq: u64, cpu: u8, ts: u64) -> Message<'static> {
    Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            cpu_percent: cpu,
            mem_percent: 50,
            timestamp_ms: Some(ts),
            node_id: Some(node.to_string().into()),
            instance: Some(1),
            fleet: None,
        }),
    }
}

fn signed(msg: &Message<'_>, key: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    auth::sign(Codec::Binary, &mut out, 0, key).unwrap();
    out
}

/// A terminal: reads pushed rows until `node` shows `cpu`, and returns every (node, cpu) it
/// saw on the way.
fn rows_until(terminal: &mut Peer, node: &str, cpu: u8) -> Vec<(String, u8)> {
    let mut seen = Vec::new();
    loop {
        let msg = terminal.expect();
        if let Body::StatReport(r) = &msg.body {
            let row = (
                r.node_id.as_deref().unwrap_or("").to_string(),
                r.cpu_percent,
            );
            let done = row == (node.to_string(), cpu);
            seen.push(row);
            terminal.send_msg(&Message::ack(msg.sequence));
            if done {
                return seen;
            }
        }
    }
}

#[test]
fn impersonators_and_replays_are_answered_401_and_change_no_row() {
    let keys = KeyFile::new("auth", "ws-1 = \"secret one\"\nws-2 = \"secret two\"\n");
    let node = start(&keys);
    let data = node.local_addr(Scheme::Tcp).unwrap();
    let mut terminal = Peer::connect(node.admin_addr(Scheme::Tcp).unwrap(), Codec::Binary);
    let (one, two) = (Key::new(b"secret one"), Key::new(b"secret two"));
    let now = unix_millis();

    let mut agent = Peer::connect(data, Codec::Binary);
    let genuine = signed(&report("ws-1", 1, 10, now), &one);
    agent.send(&genuine);
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    rows_until(&mut terminal, "ws-1", 10);

    let mut attacker = Peer::connect(data, Codec::Binary);
    let mut unsigned = Vec::new();
    report("ws-1", 2, 99, now).encode(&mut unsigned).unwrap();
    let attacks = [
        (unsigned, "no AUTHENTICATOR"),
        (signed(&report("ws-1", 3, 99, now), &two), "does not match"),
        (
            signed(&report("ws-1", 4, 99, now - 120_000), &one),
            "window",
        ),
        (genuine.clone(), "seen already"),
    ];
    for (frame, why) in &attacks {
        attacker.send(frame);
        let answer = attacker.expect();
        let info = command_response(&answer, result_code::UNAUTHORIZED, answer.sequence);
        assert!(info.contains(why), "{info:?} says {why:?}");
    }
    // The replay on the agent's own connection too.
    agent.send(&genuine);
    let answer = agent.expect();
    command_response(&answer, result_code::UNAUTHORIZED, Some(1));

    // Markers from another node, twice so that a whole push round passes after the attacks:
    // had any attack reached the view, ws-1 at 99 would be among the rows seen.
    let mut other = Peer::connect(data, Codec::Binary);
    for (seq, cpu) in [(1, 20), (2, 21)] {
        other.send(&signed(&report("ws-2", seq, cpu, now), &two));
        assert_eq!(other.expect(), Message::ack(Some(seq)));
        let rows = rows_until(&mut terminal, "ws-2", cpu);
        assert!(
            !rows.contains(&("ws-1".to_string(), 99)),
            "an attack changed ws-1's row: {rows:?}"
        );
    }
    drop(node);
}

#[test]
fn a_rotated_key_is_taken_on_reload_and_the_old_one_refused() {
    let keys = KeyFile::new("rotate", "ws-1 = \"old\"\n");
    let agent_keys = Arc::new(AgentKeys::load(&keys.0, Duration::from_secs(60)).unwrap());
    let mut config = common::config();
    config.workers = 1;
    config.agent_keys = Some(agent_keys.clone());
    let node = Node::start(config).unwrap();
    let mut agent = common::connect(&node, Scheme::Tcp);
    let now = unix_millis();
    agent.send(&signed(&report("ws-1", 1, 10, now), &Key::new(b"old")));
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    std::fs::write(&keys.0, "ws-1 = \"new\"\n").unwrap();
    assert_eq!(agent_keys.reload().unwrap(), 1);
    // The worker takes the new keys with its next event.
    agent.send(&signed(&report("ws-1", 2, 10, now), &Key::new(b"old")));
    command_response(&agent.expect(), result_code::UNAUTHORIZED, Some(2));
    agent.send(&signed(&report("ws-1", 3, 10, now), &Key::new(b"new")));
    assert_eq!(agent.expect(), Message::ack(Some(3)));
}

#[test]
fn signed_datagrams_are_checked_too() {
    let keys = KeyFile::new("udp", "ws-1 = \"s\"\n");
    let mut config = common::config();
    config.agent_keys = Some(Arc::new(
        AgentKeys::load(&keys.0, Duration::from_secs(60)).unwrap(),
    ));
    let node = Node::start(config).unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(common::WAIT)).unwrap();
    socket
        .connect(node.local_addr(Scheme::Udp).unwrap())
        .unwrap();
    let genuine = signed(&report("ws-1", 1, 10, unix_millis()), &Key::new(b"s"));
    let mut buf = [0u8; 2048];
    for want in [None, Some(result_code::UNAUTHORIZED)] {
        socket.send(&genuine).unwrap();
        let n = socket.recv(&mut buf).unwrap();
        assert!(n <= genuine.len());
        let Ok(avp_proto::Status::Complete((avp_proto::Decoded::Message(m), _))) =
            Codec::Binary.decode(&buf[..n])
        else {
            panic!("an answer")
        };
        match want {
            None => assert_eq!(m, Message::ack(Some(1))),
            Some(code) => {
                command_response(&m, code, Some(1));
            }
        }
    }
}
