//! The cost of checking signed reports: full reports (CPU, MEM, TIMESTAMP, NODE_ID, INSTANCE,
//! SEQUENCE) from 1,000 nodes, 16 at a time per connection's session, round robin as a worker
//! meets them under a 1000x16 load, unsigned against signed and checked by the node's
//! [`WorkerVerifier`] (its key ring and replay ledger). No sockets: each batch is copied into
//! an input buffer, as a read would, and handed to its session.
//!
//! Run with `cargo bench -p avpd-node --bench signed`; figures go to docs/CAPACITY.md.

use avp_proto::auth::{Key, Verifier};
use avp_proto::peer::Transport;
use avp_proto::server::{Acceptance, AcceptedReport, ReportSink, Role, ServerConfig, Tally};
use avp_proto::{Codec, PeerSession, Report, ServerSession};
use avpd_node::auth::{AgentKeys, WorkerVerifier};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 1_000;
const DEPTH: usize = 16;
/// Batches of DEPTH reports prepared per node; a pass over them all ends with a fresh ledger.
const ROUNDS: usize = 64;
const SECRET: &str = "bench secret";
const NOW_MS: u64 = 1_700_000_000_000;

/// Acknowledges every report, after the verifier when there is one.
struct AckAll<'a> {
    verifier: Option<&'a mut WorkerVerifier>,
}

impl ReportSink for AckAll<'_> {
    fn on_report(&mut self, _: &AcceptedReport<'_>) -> Acceptance {
        Acceptance::Ack
    }
    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        self.verifier.as_deref_mut().map(|v| v as &mut dyn Verifier)
    }
}

fn node_id(i: usize) -> String {
    format!("loadgen-{i:05}")
}

/// Per node, ROUNDS x DEPTH reports as its agent would send them; all of one length.
fn frames(signed: bool) -> (Vec<Vec<u8>>, usize) {
    let now = Instant::now();
    let mut len = None;
    let all = (0..NODES)
        .map(|i| {
            let mut peer: PeerSession =
                PeerSession::new(Codec::Binary, Transport::Stream, Duration::from_secs(60));
            if signed {
                peer.sign_reports_with(Key::new(SECRET.as_bytes()));
            }
            let report = Report {
                cpu_percent: 30,
                mem_percent: 53,
                timestamp_ms: Some(NOW_MS),
                node_id: Some(node_id(i).into()),
                instance: Some(7),
                fleet: None,
            };
            let mut out = Vec::new();
            peer.send_reports(now, &report, (ROUNDS * DEPTH) as u32, (), &mut out)
                .expect("encode reports");
            let one = out.len() / (ROUNDS * DEPTH);
            assert_eq!(out.len(), one * ROUNDS * DEPTH, "frames of one length");
            assert_eq!(*len.get_or_insert(one), one, "every node's of one length");
            out
        })
        .collect();
    (all, len.unwrap())
}

fn keys_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("keys.toml");
    let text: String = (0..NODES)
        .map(|i| format!("\"{}\" = \"{SECRET}\"\n", node_id(i)))
        .collect();
    std::fs::write(&path, text).expect("write the key file");
    path
}

fn sessions(now: Instant) -> Vec<ServerSession> {
    let config = Arc::new(ServerConfig::new(Codec::Binary, Role::Data, now));
    (0..NODES)
        .map(|_| ServerSession::new(config.clone(), now))
        .collect()
}

fn reports(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let keys = keys_file(&dir);
    let mut g = c.benchmark_group("full_reports_1000_nodes");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(DEPTH as u64));
    for signed in [false, true] {
        let (frames, len) = frames(signed);
        let batch = DEPTH * len;
        let name = if signed { "signed" } else { "unsigned" };
        g.bench_function(format!("{name}_{len}B_x{DEPTH}"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut done = 0u64;
                let mut out = Vec::with_capacity(64 * DEPTH);
                let mut input = Vec::with_capacity(batch);
                while done < iters {
                    // A fresh pass: new sessions and, signed, a new ledger.
                    let now = Instant::now();
                    let mut sessions = sessions(now);
                    let mut verifier = signed.then(|| {
                        let shared = AgentKeys::load(&keys, Duration::from_secs(60))
                            .expect("load the key file");
                        let mut v = WorkerVerifier::new(Arc::new(shared));
                        v.refresh(now, NOW_MS);
                        v
                    });
                    let mut tally = Tally::default();
                    let pass = (iters - done).min((NODES * ROUNDS) as u64) as usize;
                    let start = Instant::now();
                    for i in 0..pass {
                        let (node, round) = (i % NODES, i / NODES);
                        // Copied in as a read from the socket would: the session reads
                        // bytes that are in the cache.
                        input.clear();
                        input.extend_from_slice(&frames[node][round * batch..(round + 1) * batch]);
                        let mut sink = AckAll {
                            verifier: verifier.as_mut(),
                        };
                        let used = sessions[node]
                            .handle_input(now, &input, &mut out, usize::MAX, &mut sink, &mut tally)
                            .expect("valid frames");
                        assert_eq!(used, batch);
                        out.clear();
                    }
                    elapsed += start.elapsed();
                    assert_eq!(tally.answers, (pass * DEPTH) as u64, "{tally:?}");
                    assert_eq!(tally.unauthorized, 0, "{tally:?}");
                    done += pass as u64;
                }
                elapsed
            })
        });
    }
    g.finish();
}

criterion_group!(benches, reports);
criterion_main!(benches);
