//! End to end against an avpd node started in this process, on each transport: exact counts.

use avp_endpoint::{Endpoint, Scheme};
use avp_loadgen::embedded;
use avp_loadgen::mix::Mix;
use avp_loadgen::report::RunReport;
use avp_loadgen::run::{run, RunConfig};
use avp_testkit::tls::Pki;
use avp_tls::ServerTls;
use avpd_node::{Config, Node};
use std::sync::Arc;
use std::time::Duration;

/// Reports with some PAUSE and RESUME among them.
const COMMANDS_MIX: &str = "report=98,pause=1,resume=1";

fn exact_run(scheme: Scheme, requests: u64, mix: &str) {
    let (node, target) = embedded::start(scheme, 1).expect("embedded node starts");
    exact_run_against(node, target, None, requests, mix);
}

/// Runs `requests` of `mix` against `node` at `target` (reached with `tls` when given) and
/// checks that every one was sent and answered right.
fn exact_run_against(
    node: Node,
    target: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
    requests: u64,
    mix: &str,
) {
    let scheme = target.scheme;
    let cfg = RunConfig {
        tls,
        threads: 2,
        connections: 8,
        pipeline: 4,
        mix: mix.parse::<Mix>().unwrap(),
        timeout: Duration::from_secs(30),
        requests: Some(requests),
        ..RunConfig::new(target)
    };
    let out = run(&cfg, &mut ()).expect("run completes");
    let report = RunReport::new(&cfg, &out);
    node.shutdown();
    assert_eq!(report.sent, requests, "{scheme:?}");
    assert_eq!(report.answered, requests, "{scheme:?}: {:?}", report.errors);
    assert_eq!(report.ok, requests, "{scheme:?}: {:?}", report.errors);
    assert_eq!(report.errors_total, 0, "{scheme:?}: {:?}", report.errors);
    assert_eq!(report.latency.corrected.count, requests);
    assert_eq!(report.latency.uncorrected.count, requests);
    // The mix really sent what it says, and every request was answered as it should be.
    for kind in ["pause", "resume"] {
        assert_eq!(report.sent_by_kind[kind] > 0, mix.contains(kind), "{kind}");
    }
    assert_eq!(report.sent_by_kind.values().sum::<u64>(), requests);
}

#[test]
fn tcp_exact_counts() {
    exact_run(Scheme::Tcp, 20_000, COMMANDS_MIX);
}

#[test]
fn json_tcp_exact_counts() {
    exact_run(Scheme::JsonTcp, 5_000, COMMANDS_MIX);
}

#[test]
fn tls_exact_counts_with_a_client_certificate() {
    let pki = Pki::new("loadgen");
    let server = pki.server();
    let ca = pki.ca();
    let mut config = Config {
        listen: vec!["tls://127.0.0.1:0".parse().unwrap()],
        workers: 1,
        tls: Some(ServerTls::from_files(&server.cert, &server.key, Some(&ca)).unwrap()),
        ..Config::default()
    };
    config.admin.listen.clear();
    let node = Node::start(config).expect("node starts");
    let target = Endpoint::new(Scheme::Tls, node.local_addr(Scheme::Tls).unwrap());
    let client = pki.client("loadgen");
    let tls = avp_tls::client_config(&ca, Some((&client.cert, &client.key))).unwrap();
    exact_run_against(node, target, Some(tls), 20_000, COMMANDS_MIX);
}

#[test]
fn udp_exact_counts() {
    // Loopback UDP at depth 4 x 8 sockets does not drop; a loss would show as a timeout.
    // Reports only: a UDP answer is never larger than its datagram, and the answer to a bare
    // PAUSE or RESUME would be.
    exact_run(Scheme::Udp, 5_000, "report=1");
}

#[test]
fn open_loop_sends_every_scheduled_slot() {
    let (node, target) = embedded::start(Scheme::Tcp, 1).expect("embedded node starts");
    let cfg = RunConfig {
        connections: 4,
        pipeline: 8,
        rate: Some(2_000.0),
        timeout: Duration::from_secs(30),
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(500),
        ..RunConfig::new(target)
    };
    let out = run(&cfg, &mut ()).expect("run completes");
    node.shutdown();
    // Slots every 0.5 ms: [0.5 s, 1.5 s) holds exactly 2,000 of them, all measured and sent;
    // the warmup [0, 0.5 s) holds 1,000, answered and counted apart.
    assert_eq!(out.stats.sent_total(), 2_000, "{:?}", out.stats.errors);
    assert_eq!(out.stats.ok, 2_000, "{:?}", out.stats.errors);
    assert_eq!(out.stats.warmup_answered, 1_000);
}
