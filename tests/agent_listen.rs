//! `avpd agent --listen`: a terminal connects to the agent itself and sees its host.

mod client_support;

use avp_proto::{Body, Codec, Message};
use client_support::{avpd, field, Peer};
use std::net::TcpListener;

#[test]
fn a_terminal_watches_the_agent_directly() {
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut agent = avpd(&[
        "agent",
        "--collector",
        &format!("tcp://{}", collector.local_addr().unwrap()),
        "--interval",
        "100ms",
        "--node-id",
        "desk-9",
        "--listen",
        "tcp://127.0.0.1:0",
    ]);
    // Acknowledge what the agent sends, as a collector would.
    let (stream, _) = collector.accept().unwrap();
    std::thread::spawn(move || {
        let mut peer = Peer::new(stream, Codec::Binary);
        while let Some(msg) = peer.recv_within(client_support::WAIT) {
            if let Body::StatReport(_) = msg.body {
                peer.send_msg(&Message::ack(msg.sequence));
            }
        }
    });
    let admin = agent.stderr.wait_for("with the --listen address", |l| {
        let rest = &l[l.find("listening on ")? + "listening on ".len()..];
        rest.strip_suffix(" (admin)").map(str::to_string)
    });
    let mut term = avpd(&["term", "--plain", "--connect", &admin]);
    let line = term.stdout.wait_contains("node=desk-9 ");
    let ts = field(&line, "ts").unwrap().to_string();
    let sent = agent.stderr.wait_contains(&format!("ts={ts}"));
    assert_eq!(field(&sent, "cpu"), field(&line, "cpu"), "{sent} / {line}");
    assert_eq!(field(&sent, "mem"), field(&line, "mem"), "{sent} / {line}");
    assert_eq!(field(&line, "link"), Some(admin.as_str()));
}
