//! The full-screen `avpd term`, checked as a person would see it: run under tmux, read with
//! `tmux capture-pane -p`. Needs tmux installed (CI installs it).

mod client_support;

use avp_proto::{Body, Codec, Message};
use client_support::{pushed_report, unix_millis, Peer, WAIT};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux session (on its own server socket) that is killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!("avpd-test-{}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "130",
                "-y",
                "30",
                command,
            ])
            .status()
            .expect("tmux must be installed (apt-get install -y tmux)")
            .success();
        assert!(ok, "tmux new-session failed");
        Tmux { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-L", &self.socket, "send-keys"];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(args).status().unwrap().success());
    }

    /// Waits until the screen satisfies `ok`; returns it.
    fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{screen}"
            );
            // The screen has no event to wait on: look again shortly.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

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
    assert_eq!(msg.body, Body::Pause { duration_secs: 7 });
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
