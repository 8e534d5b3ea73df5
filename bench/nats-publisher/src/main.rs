//! `avp-bench-nats`: publishes the records `avpd serve --store` stores (the same envelope
//! around the same full-report frames, the same subjects and message ids, into a stream of the
//! same settings) from one current-thread runtime with many publishes in flight, as fast as
//! the server acknowledges them, and prints the rate as one JSON line. This is the broker's
//! own limit that docs/CAPACITY.md compares the node's store path with.

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use avp_proto::{Body, Message, Report};
use avpd_store::{envelope, subject};
use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::IntoFuture;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Publish avpd's stored records to JetStream as fast as it acknowledges them")]
struct Args {
    /// NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// Records to publish.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Publishes in flight at most (avpd keeps 8192).
    #[arg(long, default_value_t = 8192)]
    in_flight: usize,
    /// Distinct nodes the records are spread over (each its own subject).
    #[arg(long, default_value_t = 1000)]
    nodes: u64,
    /// The stream (created with avpd's settings when missing).
    #[arg(long, default_value = "AVP_REPORTS")]
    stream: String,
}

/// A stored record of report `seq` of `node`: what avpd publishes for it.
fn record(node: &str, seq: u64) -> Vec<u8> {
    let msg = Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            cpu_percent: (seq % 101) as u8,
            mem_percent: 42,
            timestamp_ms: Some(1_700_000_000_000 + seq),
            node_id: Some(node.into()),
            instance: Some(1),
            fleet: None,
        }),
    };
    let mut frame = Vec::new();
    msg.encode(&mut frame).expect("a valid report");
    let mut out = Vec::new();
    let peer = "127.0.0.1:40000".parse().expect("an address");
    envelope::encode(1_700_000_000_000 + seq, peer, "bench", &frame, &mut out);
    out
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = async_nats::connect(&args.server)
        .await
        .with_context(|| format!("connecting to {}", args.server))?;
    // As in avpd's store: the bound in flight is ours, so no publish waits for a permit that
    // only an acknowledgement polled by this same task would free.
    let js = jetstream::context::ContextBuilder::new()
        .max_ack_inflight(args.in_flight)
        .backpressure_on_inflight(false)
        .build(client);
    js.get_or_create_stream(stream::Config {
        name: args.stream.clone(),
        subjects: vec!["avp.reports.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .context("creating the stream")?;
    let nodes: Vec<(String, String)> = (0..args.nodes)
        .map(|i| {
            let node = format!("loadgen-{i:05}");
            let subject = format!("avp.reports.{}", subject::token(&node));
            (node, subject)
        })
        .collect();
    let mut acks = FuturesUnordered::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    let start = Instant::now();
    while acked < args.messages {
        while sent < args.messages && acks.len() < args.in_flight {
            let (node, subject) = &nodes[(sent % args.nodes) as usize];
            let seq = sent / args.nodes + 1;
            let message = jetstream::message::PublishMessage::build()
                .payload(record(node, seq).into())
                .message_id(format!("{subject}:{:016x}:{seq}", 1));
            let ack = js.send_publish(subject.clone(), message).await?;
            // Outside tokio's cooperative budget, as in avpd's store (see its pipeline).
            acks.push(tokio::task::unconstrained(ack.into_future()));
            sent += 1;
        }
        match acks.next().await {
            Some(ack) => {
                ack.context("a publish was not acknowledged")?;
                acked += 1;
            }
            None => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "messages": acked,
        "secs": secs,
        "rate": acked as f64 / secs,
        "in_flight": args.in_flight,
        "nodes": args.nodes,
    });
    println!("{line}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
