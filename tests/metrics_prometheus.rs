//! `avpd serve --metrics` scraped by a real Prometheus (the Debian `prometheus` package):
//! the scrape job and the alert rules of docs/OPERATIONS.md, the report counter and a
//! per-node gauge read back through Prometheus's query API, `promtool check metrics` on a
//! scrape, and `promtool test rules` firing both alert rules. Skipped, with a note, where
//! prometheus or promtool is not installed.

mod client_support;

use avp_proto::{Body, Codec, Message, Report};
use client_support::{avpd, started_addr, Peer, Program, WAIT};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The fenced yaml block under `heading` in docs/OPERATIONS.md.
fn documented_yaml(heading: &str) -> String {
    let doc = include_str!("../docs/OPERATIONS.md");
    let section = &doc[doc
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"))..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    section[start..][..section[start..].find("```").unwrap()].to_string()
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The body of `GET path` when the answer is 200 (HTTP/1.0: the answer is neither chunked nor
/// kept alive); `None` while nothing listens or the server is not ready.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    head[9..].starts_with("200").then(|| body.to_string())
}

/// The single value of an instant query, when Prometheus answers with one.
fn query(prometheus: SocketAddr, expr: &str) -> Option<String> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = get(prometheus, &format!("/api/v1/query?query={encoded}"))?;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "success", "{body}");
    let value = json["data"]["result"].get(0)?["value"][1].as_str()?;
    Some(value.to_string())
}

fn run(tool: &str, args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unit tests of the documented rules: each alert fires on the series it watches.
const RULE_TESTS: &str = r#"
rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'up{job="avpd", instance="collector-1:9464"}'
        values: '0x10'
      - series: 'avpd_fleet_stale_nodes{job="avpd", instance="collector-1:9464"}'
        values: '3x40'
    alert_rule_test:
      - eval_time: 2m
        alertname: AvpdNodeDown
        exp_alerts:
          - exp_labels: {severity: page, job: avpd, instance: "collector-1:9464"}
            exp_annotations: {summary: "avpd node collector-1:9464 is down"}
      - eval_time: 6m
        alertname: AvpdStaleWorkstations
        exp_alerts:
          - exp_labels: {severity: ticket, job: avpd, instance: "collector-1:9464"}
            exp_annotations: {summary: "3 workstations stopped reporting to collector-1:9464"}
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn report(seq: u64) -> Message<'static> {
    Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            cpu_percent: 37,
            mem_percent: 61,
            timestamp_ms: None,
            node_id: Some("prom-ws-1".into()),
            instance: None,
            fleet: None,
        }),
    }
}

/// Starts the node: one worker, a management plane pushing every 100 ms, per-node metrics.
fn serve() -> (Program, SocketAddr, SocketAddr) {
    let mut node = avpd(&[
        "serve",
        "--workers",
        "1",
        "--listen",
        "tcp://127.0.0.1:0",
        "--admin",
        "tcp://127.0.0.1:0",
        "--report-interval",
        "100ms",
        "--metrics",
        "tcp://127.0.0.1:0",
        "--metrics-per-node",
    ]);
    let line = node.stderr.wait_contains("serving: data tcp://");
    let (data, metrics) = (
        started_addr(&line, "data tcp://"),
        started_addr(&line, "metrics http://"),
    );
    (node, data, metrics)
}

#[test]
fn prometheus_scrapes_the_reports_and_the_documented_rules_fire() {
    if !installed("prometheus") || !installed("promtool") {
        avp_testkit::skip_without("prometheus or promtool (Debian package prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = documented_yaml("### Alert rules");
    std::fs::write(dir.path().join("rules.yml"), &rules).unwrap();
    std::fs::write(dir.path().join("rules_test.yml"), RULE_TESTS).unwrap();
    let rules_path = dir.path().join("rules.yml");
    run(
        "promtool",
        &["check", "rules", rules_path.to_str().unwrap()],
        None,
    );
    let tests_path = dir.path().join("rules_test.yml");
    run(
        "promtool",
        &["test", "rules", tests_path.to_str().unwrap()],
        None,
    );

    let (mut node, data, metrics) = serve();
    let mut peer = Peer::connect(data, Codec::Binary);
    for seq in 1..=5 {
        peer.send_msg(&report(seq));
        assert_eq!(peer.expect(), Message::ack(Some(seq)));
    }
    let scrape = get(metrics, "/metrics").expect("a scrape");
    run("promtool", &["check", "metrics"], Some(&scrape));
    // From here on, every request the node logs is one of Prometheus's scrapes.
    node.stderr
        .wait_contains("metrics request method=GET path=/metrics");

    let job = documented_yaml("### Scrape job").replace(
        "['collector-1:9464', 'collector-2:9464']",
        &format!("['{metrics}']"),
    );
    assert!(
        job.contains(&metrics.to_string()),
        "the documented job names its targets"
    );
    let config = format!("global:\n  scrape_interval: 1s\nrule_files: [rules.yml]\n{job}");
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    run(
        "promtool",
        &["check", "config", config_path.to_str().unwrap()],
        None,
    );
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut prometheus = Command::new("prometheus");
    prometheus
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"));
    let mut prometheus = Program::spawn(prometheus);

    // Each scrape of the node is an event; after each one, ask Prometheus what it has.
    let reports = r#"sum(avpd_messages_received_total{job="avpd",kind="report"})"#;
    let cpu = r#"avpd_node_cpu_ratio{job="avpd",node="prom-ws-1"}"#;
    let deadline = Instant::now() + 2 * WAIT;
    loop {
        node.stderr
            .wait_contains("metrics request method=GET path=/metrics");
        let seen = (
            query(web, reports),
            query(web, cpu),
            query(web, r#"up{job="avpd"}"#),
        );
        if seen == (Some("5".into()), Some("0.37".into()), Some("1".into())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the reports: {seen:?}\n{}",
            prometheus.stderr.tail()
        );
    }
    prometheus.kill();
    node.terminate();
    assert_eq!(node.wait_exit(), 0);
}
