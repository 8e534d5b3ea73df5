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

#[test]
fn an_agent_plane_other_hosts_can_reach_needs_listen_insecure() {
    let refused = |extra: &[&str]| {
        let mut args = vec![
            "agent",
            "--collector",
            "tcp://127.0.0.1:1",
            "--listen",
            "tcp://0.0.0.0:0",
        ];
        args.extend_from_slice(extra);
        avpd(&args)
    };
    let mut agent = refused(&[]);
    assert_ne!(agent.wait_exit(), 0);
    let line = agent.stderr.wait_contains("protected mode");
    assert!(line.contains("--listen-insecure"), "{line}");
    let mut agent = refused(&["--listen-insecure"]);
    let line = agent.stderr.wait_contains("(admin)");
    assert!(line.contains("listening on tcp://0.0.0.0:"), "{line}");
}
