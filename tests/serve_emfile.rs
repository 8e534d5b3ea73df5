//! A node out of file descriptors neither spins a core nor stops serving once fds free up.

mod client_support;

use avp_proto::{Codec, Message};
use client_support::{report, Peer, WAIT};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn accept_failures_back_off_instead_of_spinning() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        avp_testkit::skip_without("prlimit (Debian package util-linux)");
        return;
    }
    let mut child = Command::new("prlimit")
        .args(["--nofile=40:40", env!("CARGO_BIN_EXE_avpd")])
        .args([
            "serve",
            "--workers",
            "1",
            "--no-admin",
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "avpd exited early"
        );
        if let Some(rest) = line.split("listening on tcp://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep reading the log so the node never blocks on a full stderr pipe.
    let (tx, warnings) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("accept failed") {
                let _ = tx.send(line);
            }
        }
    });
    // Far more connections than fds: the kernel completes them in the backlog, accept fails
    // with EMFILE, and they wait there.
    let flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let warning = warnings
        .recv_timeout(WAIT)
        .expect("the node logs the accept failure");
    assert!(warning.contains("pausing accepts"), "{warning}");
    let pid = child.id();
    let before = cpu_seconds(pid);
    // Wait for an event that takes a known number of backoff periods: another warning is
    // logged at most once a second while accepts keep failing.
    let again = warnings.recv_timeout(WAIT).expect("accepts are retried");
    let used = cpu_seconds(pid) - before;
    assert!(again.contains("accept failed"));
    assert!(
        used < 0.5,
        "the node burned {used:.2} CPU seconds in about one second of EMFILE"
    );
    drop(flood);
    // With fds free again, the node serves new connections.
    let served = (0..50).any(|_| {
        let mut c = Peer::connect(addr, Codec::Binary);
        c.send(&report(1));
        c.recv() == Some(Message::ack(Some(1)))
    });
    assert!(served, "the node recovers once descriptors are free");
    child.kill().unwrap();
    child.wait().unwrap();
}
