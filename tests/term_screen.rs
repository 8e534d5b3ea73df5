//! The full-screen `avpd term`, checked as a person would see it: run under tmux, read with
//! `tmux capture-pane -p`. Needs tmux installed (CI installs it).

mod client_support;

use avp_proto::{Body, Codec, Message};
use client_support::{pushed_report, unix_millis, Peer, Tmux};
use std::net::TcpListener;

#[test]
fn the_table_shows_the_nodes_and_the_keys_work() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let tmux = Tmux::start(&format!(
        "{} term --connect {url}",
        env!("CARGO_BIN_EXE_avpd")
    ));
    let mut peer = Peer::new(l.accept().unwrap().0, Codec::Binary);
    let now = unix_millis();
    peer.send_msg(&pushed_report(1, "web-1", 42, 61, now));
    peer.send_msg(&pushed_report(2, "db-7", 87, 23, now));
    for seq in 1..=2 {
        assert_eq!(peer.expect().sequence, Some(seq), "every report acked");
    }
    let screen = tmux.wait_screen("both nodes", |s| s.contains("web-1") && s.contains("db-7"));
    assert!(screen.contains("2 nodes · sorted by cpu"), "{screen}");
    assert!(screen.contains(&format!("{url}  connected")), "{screen}");
    let row = |name: &str| {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .to_string()
    };
    assert!(
        row("web-1").contains(" 42%") && row("web-1").contains(" 61%"),
        "{screen}"
    );
    assert!(
        row("db-7").contains(" 87%") && row("db-7").contains(" 23%"),
        "{screen}"
    );
    let pos = |s: &str, name: &str| s.find(name).unwrap();
    assert!(
        pos(&screen, "db-7") < pos(&screen, "web-1"),
        "busiest CPU first"
    );

    tmux.keys(&["m"]);
    let screen = tmux.wait_screen("memory order", |s| s.contains("sorted by memory"));
    assert!(pos(&screen, "web-1") < pos(&screen, "db-7"), "{screen}");

    tmux.keys(&["p", "7", "Enter"]);
    let msg = peer.expect();
    assert_eq!(
        msg.body,
        Body::Pause {
            target: None,
            duration_secs: 7
        }
    );
    peer.send_msg(&Message::command_response(
        msg.sequence,
        200,
        "paused for 7 s",
    ));
    tmux.wait_screen("the pause", |s| {
        s.contains("PAUSED") && s.contains("200 paused for 7 s")
    });

    // Stop listening too, or the kernel would accept the reconnection at once.
    let addr = l.local_addr().unwrap();
    drop((peer, l));
    tmux.wait_screen("the lost link", |s| s.contains("reconnecting in"));
    let l = TcpListener::bind(addr).unwrap();
    let _again = l.accept().unwrap();
    tmux.wait_screen("the link back", |s| {
        s.contains(&format!("{url}  connected"))
    });

    tmux.keys(&["q"]);
    tmux.wait_screen("the shell after quitting", |s| !s.contains("avpd term ·"));
}
