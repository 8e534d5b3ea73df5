//! `avpd serve` and `avpd agent` under a service manager: the test plays systemd's side of
//! `sd_notify` with a datagram socket of its own (NOTIFY_SOCKET) and, for the node, a
//! watchdog (WATCHDOG_USEC).

mod client_support;

use avp_proto::{Codec, Message};
use client_support::{report, started_addr, Peer, Program, WAIT};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
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

    /// A manager listening in `dir`, and the path to give as NOTIFY_SOCKET.
    fn bind(dir: &Path) -> (Manager, PathBuf) {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let manager = Manager {
            socket,
            seen: Vec::new(),
        };
        (manager, path)
    }

    /// True when READY=1 came before STOPPING=1.
    fn ready_before_stopping(&self) -> bool {
        let at = |what| self.seen.iter().position(|m| m.contains(what));
        matches!((at("READY=1"), at("STOPPING=1")), (Some(r), Some(s)) if r < s)
    }
}

#[test]
fn serve_notifies_ready_status_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (mut manager, path) = Manager::bind(dir.path());
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
    let version = concat!("avpd ", env!("CARGO_PKG_VERSION"), " serving: ");
    assert!(
        line.contains(version),
        "the start-up line names the version: {line}"
    );
    let mut peer = Peer::connect(started_addr(&line, "data tcp://"), Codec::Binary);
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
    assert!(manager.ready_before_stopping(), "{:?}", manager.seen);
}

#[test]
fn agent_notifies_ready_reloading_and_stopping_and_names_its_version_and_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let (mut manager, path) = Manager::bind(dir.path());
    // A collector that never answers: the agent runs (and keeps its reports) all the same.
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "log = \"info\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_avpd"));
    command
        .args([
            "agent",
            "--node-id",
            "ws-sd",
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .arg("--collector")
        .arg(format!("tcp://{}", collector.local_addr().unwrap()))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &path);
    let mut agent = Program::spawn(command);

    manager.wait_line("READY=1");
    let line = agent.stderr.wait_contains("agent started:");
    let version = format!("avpd {} node=ws-sd", env!("CARGO_PKG_VERSION"));
    assert!(line.contains(&version), "{line}");
    let terminals = line
        .split(" terminals=tcp://")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no bound terminal listener in {line}"));
    let port: u16 = terminals.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0, "the bound port, not the one asked for: {line}");

    agent.signal("HUP");
    manager.wait_line("RELOADING=1");
    manager.wait_line("READY=1");

    agent.terminate();
    manager.wait_line("STOPPING=1");
    assert_eq!(agent.wait_exit(), 0, "{}", agent.stderr.tail());
    assert!(manager.ready_before_stopping(), "{:?}", manager.seen);
}
