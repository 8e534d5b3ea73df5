//! `avpd serve` as a process: bound-address log lines, SIGTERM, restart on the same port.

mod client_support;

use avp_proto::{Codec, Message};
use client_support::{report, Peer, WAIT};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    fn start(listen: &str) -> (Serve, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_avpd"))
            .args([
                "serve",
                "--workers",
                "2",
                "--no-admin",
                "--listen",
                listen,
                "--log",
                "info",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .expect("avpd starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Serve { child, lines };
        let line = serve.wait_for("(data)");
        let url = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let addr = url.trim_start_matches("tcp://").parse().unwrap();
        (serve, addr)
    }

    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let started = Instant::now();
        self.wait_for("shutting down");
        let (tx, exited) = mpsc::channel();
        let mut child = self.child;
        std::thread::spawn(move || tx.send(child.wait()));
        let status = exited
            .recv_timeout(WAIT)
            .expect("avpd exits after SIGTERM")
            .unwrap();
        eprintln!("exited {:?} after SIGTERM", started.elapsed());
        status
    }
}

#[test]
fn serve_answers_exits_zero_on_sigterm_and_restarts_on_the_same_port() {
    let (serve, addr) = Serve::start("tcp://127.0.0.1:0");
    let mut c = Peer::connect(addr, Codec::Binary);
    c.send(&report(1));
    assert_eq!(c.expect(), Message::ack(Some(1)));
    assert!(serve.terminate().success(), "exit status 0");
    assert_eq!(c.recv(), None, "connection closed by the shutdown");

    let (again, same) = Serve::start(&format!("tcp://{addr}"));
    assert_eq!(same, addr);
    let mut c = Peer::connect(addr, Codec::Binary);
    c.send(&report(2));
    assert_eq!(c.expect(), Message::ack(Some(2)));
    assert!(again.terminate().success());
}

#[test]
fn a_second_node_on_a_busy_port_fails_clearly() {
    let (serve, addr) = Serve::start("tcp://127.0.0.1:0");
    let out = Command::new(env!("CARGO_BIN_EXE_avpd"))
        .args(["serve", "--no-admin", "--listen", &format!("tcp://{addr}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is another node running?"), "{stderr}");
    assert!(serve.terminate().success());
}
