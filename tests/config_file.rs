//! `--config FILE` as an operator uses it: the file under the flags, `--print-config`, a bad
//! file refused at start with its line and key, and SIGHUP: live changes applied, the others
//! announced for the next restart, a bad file refused while the node keeps serving.

mod client_support;

use avp_proto::{Body, Codec, Message};
use client_support::{accept, avpd, listener, report, started_addr, Peer, Program, WAIT};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts `avpd serve --config FILE` (one worker) and returns it with its data address.
fn serve(config: &Path) -> (Program, SocketAddr) {
    let mut node = avpd(&[
        "serve",
        "--workers",
        "1",
        "--config",
        config.to_str().unwrap(),
    ]);
    let line = node.stderr.wait_contains("serving: data tcp://");
    (node, started_addr(&line, "data tcp://"))
}

/// True when `program` has logged a line containing `needle` (among the lines read so far).
fn logged(program: &Program, needle: &str) -> bool {
    program.stderr.seen.iter().any(|l| l.contains(needle))
}

/// True when a new connection to `addr` is refused with a 503.
fn refused(addr: SocketAddr, seq: u64) -> bool {
    let mut c = Peer::connect(addr, Codec::Binary);
    c.send(&report(seq));
    matches!(c.expect().body, Body::CommandResponse { code: 503, .. })
}

#[test]
fn print_config_shows_the_file_under_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avpd.toml");
    std::fs::write(&file, "max-connections = 1000\nidle-timeout = \"5m\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_avpd"))
        .args([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--idle-timeout",
            "90s",
        ])
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\nmax-connections = 1000\n"), "{text}");
    assert!(text.contains("\nidle-timeout = \"90s\"\n"), "{text}");
    assert!(text.contains("\n# backlog = 4096 (default)\n"), "{text}");
}

#[test]
fn a_bad_file_stops_the_start_with_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avpd.toml");
    std::fs::write(&file, "workers = 1\nidle-timeout = \"soon\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_avpd"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}: line 2, key `idle-timeout`: invalid value 'soon'",
        file.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn sighup_applies_live_changes_and_keeps_the_running_configuration_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avpd.toml");
    let base = "listen = [\"tcp://127.0.0.1:0\"]\nno-admin = true\nlog = \"info\"\n";
    std::fs::write(&file, format!("{base}max-connections = 100\n")).unwrap();
    let (mut node, addr) = serve(&file);
    let mut first = Peer::connect(addr, Codec::Binary);
    first.send(&report(1));
    assert_eq!(first.expect(), Message::ack(Some(1)));

    std::fs::write(&file, format!("{base}max-connections = 1\nbacklog = 5\n")).unwrap();
    node.signal("HUP");
    // One line per change, in the order of the options: backlog comes first.
    node.stderr.wait_contains("max-connections: 100 -> 1");
    assert!(logged(
        &node,
        "backlog: 4096 -> 5 (takes effect at the next restart)"
    ));
    // The worker takes the bound at its next tick: connections until then are served.
    let deadline = Instant::now() + WAIT;
    let mut seq = 2;
    while !refused(addr, seq) {
        assert!(Instant::now() < deadline, "the new bound never applied");
        seq += 1;
    }

    std::fs::write(&file, format!("{base}idle-timeout = \"soon\"\n")).unwrap();
    node.signal("HUP");
    let line = node
        .stderr
        .wait_contains("refused, configuration unchanged");
    assert!(line.contains("line 4, key `idle-timeout`"), "{line}");
    assert!(refused(addr, 9000), "the bound of the last good file stays");
    first.send(&report(2));
    assert_eq!(first.expect(), Message::ack(Some(2)), "still serving");

    std::fs::write(&file, format!("{base}max-connections = 100\nbacklog = 5\n")).unwrap();
    node.signal("HUP");
    node.stderr.wait_contains("max-connections: 1 -> 100");
    let pending = "backlog: 4096 -> 5 (takes effect at the next restart)";
    let again = node
        .stderr
        .seen
        .iter()
        .filter(|l| l.contains(pending))
        .count();
    assert_eq!(
        again, 2,
        "a change waiting for a restart is announced at every reload"
    );
    node.terminate();
    assert_eq!(node.wait_exit(), 0);
}

/// True when a report datagram from `socket` to `addr` is answered (one try, 200 ms).
fn udp_answered(socket: &UdpSocket, addr: SocketAddr, seq: u64) -> bool {
    socket.send_to(&report(seq), addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut answer = [0u8; 512];
    socket.recv_from(&mut answer).is_ok()
}

#[test]
fn sighup_applies_the_memory_budget_and_the_udp_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avpd.toml");
    let base = "listen = [\"tcp://127.0.0.1:0\", \"udp://127.0.0.1:0\"]\nno-admin = true\n\
                log = \"info\"\nstatus-interval = \"100ms\"\n";
    std::fs::write(
        &file,
        format!("{base}max-buffer-memory = \"64MiB\"\nudp-allow = [\"10.0.0.0/8\"]\n"),
    )
    .unwrap();
    let (mut node, _) = serve(&file);
    let line = node
        .stderr
        .seen
        .iter()
        .find(|l| l.contains("serving: data"));
    let udp = started_addr(line.unwrap(), "udp://");
    node.stderr.wait_contains("buffered=0B/64MiB ");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&report(1), udp).unwrap();
    node.stderr.wait_contains("udp_refused=1 ");

    std::fs::write(&file, format!("{base}max-buffer-memory = \"32MiB\"\n")).unwrap();
    node.signal("HUP");
    node.stderr
        .wait_contains("max-buffer-memory: \"64MiB\" -> \"32MiB\"");
    node.stderr.wait_contains("buffered=0B/32MiB ");
    // UDP workers take the new allow-list at their next tick.
    let deadline = Instant::now() + WAIT;
    let mut seq = 2;
    while !udp_answered(&socket, udp, seq) {
        assert!(Instant::now() < deadline, "the allow-list never went");
        seq += 1;
    }
    node.terminate();
    assert_eq!(node.wait_exit(), 0);
}

#[test]
fn sighup_changes_the_agents_log_filter_and_announces_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    let (l, addr) = listener();
    let base = format!("collector = [\"tcp://{addr}\"]\ninterval = \"20ms\"\nnode-id = \"cfg\"\n");
    std::fs::write(&file, format!("{base}log = \"info\"\n")).unwrap();
    let mut agent = avpd(&["agent", "--config", file.to_str().unwrap()]);
    let mut collector = accept(&l, Codec::Binary);
    let acker = std::thread::spawn(move || {
        while let Some(msg) = collector.recv() {
            collector.send_msg(&Message::ack(msg.sequence));
        }
    });
    agent.stderr.wait_contains("agent started");
    std::fs::write(&file, format!("{base}log = \"debug\"\nbuffer = 10\n")).unwrap();
    agent.signal("HUP");
    agent.stderr.wait_contains("log: \"info\" -> \"debug\"");
    // One line per change, in the order of the options: buffer comes first.
    assert!(logged(
        &agent,
        "buffer: 3600 -> 10 (takes effect at the next restart)"
    ));
    assert!(
        !logged(&agent, "report seq="),
        "no debug lines before the reload"
    );
    agent.stderr.wait_contains("report seq=");
    agent.terminate();
    assert_eq!(agent.wait_exit(), 0, "{}", agent.stderr.tail());
    acker.join().unwrap();
}

#[test]
fn sighup_switches_the_log_format_live() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avpd.toml");
    let listen = "listen = [\"tcp://127.0.0.1:0\"]\nno-admin = true\n";
    std::fs::write(&file, format!("{listen}log-format = \"text\"\n")).unwrap();
    let (mut node, _) = serve(&file);
    std::fs::write(&file, format!("{listen}log-format = \"json\"\n")).unwrap();
    node.signal("HUP");
    // The reload's own lines come in the new form: one JSON object per line.
    let line = node.stderr.wait_for("a JSON line after the reload", |l| {
        l.starts_with('{').then(|| l.to_string())
    });
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert!(value.get("level").is_some(), "{line}");
}
