//! The cost of answering full reports as datagrams: the session of one UDP socket hears from
//! 1,000 nodes in turn, each report (CPU, MEM, TIMESTAMP, NODE_ID, INSTANCE, SEQUENCE) one
//! datagram, as a node's UDP worker hands them over. No sockets.
//!
//! Run with `cargo bench -p avp-proto --bench datagrams`; figures go to docs/CAPACITY.md.

use avp_proto::server::{Acceptance, AcceptedReport, ReportSink, Role, ServerConfig, Tally};
use avp_proto::{Body, Codec, Message, Report, ServerSession};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 1_000;

/// Acknowledges every report.
struct AckAll;

impl ReportSink for AckAll {
    fn on_report(&mut self, _: &AcceptedReport<'_>) -> Acceptance {
        Acceptance::Ack
    }
}

/// One full report from each node, as its agent sends it.
fn datagrams() -> Vec<Vec<u8>> {
    (0..NODES)
        .map(|i| {
            let report = Report {
                cpu_percent: 30,
                mem_percent: 53,
                timestamp_ms: Some(1_700_000_000_000),
                node_id: Some(format!("loadgen-{i:05}").into()),
                instance: Some(7),
                fleet: None,
            };
            let message = Message {
                sequence: Some(1_000 + i as u64),
                body: Body::StatReport(report),
            };
            let mut datagram = Vec::new();
            Codec::Binary
                .encode(&message, &mut datagram)
                .expect("encode a report");
            datagram
        })
        .collect()
}

fn full_reports(c: &mut Criterion) {
    let mut g = c.benchmark_group("datagrams");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(NODES as u64));
    let datagrams = datagrams();
    let now = Instant::now();
    let config = Arc::new(ServerConfig::new(Codec::Binary, Role::Data, now));
    let mut session = ServerSession::new(config, now);
    let mut tally = Tally::default();
    let mut out = Vec::with_capacity(64);
    g.bench_function(format!("full_reports_from_{NODES}_nodes"), |b| {
        b.iter(|| {
            for d in &datagrams {
                out.clear();
                session
                    .handle_datagram(now, d, &mut out, &mut AckAll, &mut tally)
                    .expect("a valid datagram");
            }
        })
    });
    assert_eq!(tally.answers, tally.reports, "{tally:?}");
    g.finish();
}

criterion_group!(benches, full_reports);
criterion_main!(benches);
