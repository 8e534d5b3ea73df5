//! Codec benchmarks: the hot path of a worker (decode + parse a report, encode its ack), a
//! pipelined buffer decoded frame by frame, and the JSON text codec.
//!
//! Run with `cargo bench --bench codec`; figures go to docs/CAPACITY.md with the machine.

use avp_proto::{Body, Codec, Decoded, Message, Report, Status};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// The report the load tools send: CPU 30, MEM 53, SEQUENCE in 4 bytes (15 bytes).
const LOADGEN_REPORT: [u8; 15] = [
    0x00, 0x0F, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35, 0x06, 0x04, 0x00, 0x00, 0x00, 0x07,
];

/// The seed report in the JSON text form.
const JSON_SEED_REPORT: &[u8] =
    b"62\n{\"type\":\"report\",\"info\":{\"CPU Usage\":\"30%\",\"Mem usage\":\"53%\"}}";

/// Decodes one complete valid frame, or panics: benchmarks must measure the success path.
fn decode(codec: Codec, bytes: &[u8]) -> (Message<'_>, usize) {
    match codec.decode(bytes) {
        Ok(Status::Complete((Decoded::Message(msg), used))) => (msg, used),
        other => panic!("benchmark input did not decode: {other:?}"),
    }
}

fn binary(c: &mut Criterion) {
    let mut g = c.benchmark_group("binary");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_parse_report_15B", |b| {
        b.iter(|| decode(Codec::Binary, black_box(&LOADGEN_REPORT)))
    });

    let full = Message {
        sequence: Some(7),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: 30,
            mem_percent: 53,
            timestamp_ms: Some(1_700_000_000_000),
            node_id: Some("ws-0042.example.net".into()),
            instance: None,
        }),
    };
    let mut full_bytes = Vec::new();
    full.encode(&mut full_bytes).unwrap();
    g.bench_function(
        format!("decode_parse_report_node_ts_{}B", full_bytes.len()),
        |b| b.iter(|| decode(Codec::Binary, black_box(&full_bytes))),
    );

    let mut out = Vec::with_capacity(64);
    g.bench_function("encode_ack_reused_vec", |b| {
        b.iter(|| {
            out.clear();
            Message::ack(black_box(Some(7))).encode(&mut out).unwrap()
        })
    });
    g.bench_function("encode_report_node_ts_reused_vec", |b| {
        b.iter(|| {
            out.clear();
            black_box(&full).encode(&mut out).unwrap()
        })
    });
    let ack = [0x00, 0x09, 0x04, 0x06, 0x04, 0x00, 0x00, 0x00, 0x07];
    g.bench_function("decode_parse_ack_9B", |b| {
        b.iter(|| decode(Codec::Binary, black_box(&ack)))
    });
    g.finish();
}

fn pipelined(c: &mut Criterion) {
    const FRAMES: usize = 1_000;
    let buf: Vec<u8> = LOADGEN_REPORT.repeat(FRAMES);
    let mut g = c.benchmark_group("pipelined");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("decode_1000_reports", |b| {
        b.iter(|| {
            let mut rest = black_box(&buf[..]);
            let mut n = 0usize;
            while let Ok(Status::Complete((decoded, used))) = Codec::Binary.decode(rest) {
                if let Decoded::Message(msg) = decoded {
                    n += usize::from(msg.sequence.is_some());
                }
                rest = &rest[used..];
            }
            assert_eq!(n, FRAMES);
            n
        })
    });
    g.finish();
}

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_parse_seed_report", |b| {
        b.iter(|| decode(Codec::Json, black_box(JSON_SEED_REPORT)))
    });
    let (msg, _) = decode(Codec::Json, JSON_SEED_REPORT);
    let msg = msg.into_owned();
    let mut out = Vec::with_capacity(128);
    g.bench_function("encode_seed_report_reused_vec", |b| {
        b.iter(|| {
            out.clear();
            Codec::Json.encode(black_box(&msg), &mut out).unwrap()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = binary, pipelined, json
}
criterion_main!(benches);
