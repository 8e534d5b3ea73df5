//! `avpd serve` under a service manager: the test plays systemd's side of `sd_notify` with a
//! datagram socket of its own (NOTIFY_SOCKET) and a watchdog (WATCHDOG_USEC).

mod client_support;

use avp_proto::{Codec, Message};
use client_support::{report, Peer, Program, WAIT};
use std::os::unix::net::UnixDatagram;
use std::process::Command;

/// The service manager's end: every notification the node sends, in order.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    /// Waits for a notification with a line for which `f` holds, and returns that line.
    fn wait_for(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut buf).unwrap_or_else(|e| {
                panic!(
                    "no {what} within {WAIT:?} ({e}); received:\n{}",
                    self.seen.join("\n")
                )
            });
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            self.seen.push(text.clone());
            if let Some(line) = text.lines().find(|l| f(l)) {
                return line.to_string();
            }
        }
    }

    fn wait_line(&mut self, line: &str) {
        self.wait_for(line, |l| l == line);
    }
}

#[test]
fn serve_notifies_ready_status_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let mut manager = Manager {
        socket,
        seen: Vec::new(),
    };
    let config = dir.path().join("avpd.toml");
    std::fs::write(&config, "status-interval = \"50ms\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_avpd"));
    command
        .args([
            "serve",
            "--no-admin",
            "--workers",
            "1",
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID");
    let mut node = Program::spawn(command);

    manager.wait_line("READY=1");
    let line = node.stderr.wait_contains("serving: data tcp://");
    let addr = line
        .split("data tcp://")
        .nth(1)
        .unwrap()
        .split([',', ' '])
        .next()
        .unwrap();
    let mut peer = Peer::connect(addr.parse().unwrap(), Codec::Binary);
    peer.send(&report(1));
    assert_eq!(peer.expect(), Message::ack(Some(1)), "ready means serving");
    let status = manager.wait_for("a STATUS=", |l| l.starts_with("STATUS="));
    assert!(status.starts_with("STATUS=status: conns="), "{status}");
    manager.wait_line("WATCHDOG=1");

    node.signal("HUP");
    manager.wait_line("RELOADING=1");
    manager.wait_line("READY=1");
    node.stderr.wait_contains("nothing changed");

    node.terminate();
    manager.wait_line("STOPPING=1");
    assert_eq!(node.wait_exit(), 0, "{}", node.stderr.tail());
    let ready = manager
        .seen
        .iter()
        .position(|m| m.contains("READY=1"))
        .unwrap();
    let stopping = manager
        .seen
        .iter()
        .position(|m| m.contains("STOPPING=1"))
        .unwrap();
    assert!(ready < stopping);
}
