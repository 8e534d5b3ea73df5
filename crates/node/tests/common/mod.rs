//! Shared harness for the node's integration tests: an in-process node on ephemeral loopback
//! ports, and blocking peers (from `avp-testkit`) connected to it.
#![allow(dead_code)] // each test binary uses a different subset

use avp_endpoint::{Endpoint, Scheme};
pub use avp_testkit::*;
use avpd_node::{Config, Node};

/// A node config on ephemeral loopback ports (tcp, udp, json+tcp), no admin plane.
pub fn config() -> Config {
    let listen = [
        "tcp://127.0.0.1:0",
        "udp://127.0.0.1:0",
        "json+tcp://127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.parse::<Endpoint>().unwrap())
    .collect();
    let mut config = Config {
        listen,
        workers: 2,
        ..Config::default()
    };
    config.admin.listen.clear();
    config
}

/// Starts a node with the defaults of [`config`].
pub fn start() -> Node {
    Node::start(config()).expect("node starts")
}

/// A blocking peer connected to `node`'s first data-plane endpoint with `scheme`.
pub fn connect(node: &Node, scheme: Scheme) -> Peer {
    Peer::connect(
        node.local_addr(scheme).expect("endpoint bound"),
        scheme.codec(),
    )
}

/// Polls `ok` every 10 ms until it holds; panics with `what()` after [`WAIT`].
pub fn wait_until(mut ok: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + WAIT;
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits until the node's counters, as its workers last reported them, satisfy `ok`; panics
/// after [`WAIT`]. Workers report every tick, so this polls.
pub fn wait_for_counters(
    node: &Node,
    ok: impl Fn(&avpd_node::stats::Counters) -> bool,
) -> avpd_node::stats::Counters {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let counters = node.counters();
        if ok(&counters) {
            return counters;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the counters never got there: {counters:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A UDP socket on loopback, connected to `node`'s UDP endpoint, whose reads wait [`WAIT`].
pub fn udp_client(node: &Node) -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket
        .connect(node.local_addr(Scheme::Udp).unwrap())
        .unwrap();
    socket
}
