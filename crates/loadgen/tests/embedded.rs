//! End to end against an avpd node started in this process, on each transport: exact counts.

use avp_endpoint::Scheme;
use avp_loadgen::embedded;
use avp_loadgen::mix::Mix;
use avp_loadgen::report::RunReport;
use avp_loadgen::run::{run, RunConfig};
use std::time::Duration;

/// Reports with some PAUSE and RESUME among them.
const COMMANDS_MIX: &str = "report=98,pause=1,resume=1";

fn exact_run(scheme: Scheme, requests: u64, mix: &str) {
    let (node, target) = embedded::start(scheme, 1).expect("embedded node starts");
    let cfg = RunConfig {
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
