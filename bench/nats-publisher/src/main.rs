//! `avp-bench-nats`: publishes the records `avpd serve --store` stores (the same envelope
//! around the same full-report frames, the same subjects and message ids, into a stream of the
//! same settings) from one current-thread runtime with many publishes in flight, as fast as
//! the server acknowledges them, and prints the rate as one JSON line. This is the broker's
//! own limit that docs/CAPACITY.md compares the node's store path with. With `--rate` it
//! publishes on a schedule instead and adds the latency from each record's scheduled time to
//! its acknowledgement (corrected for coordinated omission): the broker's own share of the
//! latency that storing adds.

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use avp_proto::{Body, Message, Report};
use avpd_store::{envelope, subject};
use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use std::future::IntoFuture;
use std::time::Duration;

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
    /// Publish this many records per second on a schedule (open loop) and report the latency.
    #[arg(long)]
    rate: Option<f64>,
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
    // Microseconds from a record's scheduled time (its send, without `--rate`) to its ack.
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut sent, mut acked) = (0u64, 0u64);
    let start = tokio::time::Instant::now();
    let due = |n: u64| match args.rate {
        Some(rate) => start + Duration::from_secs_f64(n as f64 / rate),
        None => start,
    };
    while acked < args.messages {
        while sent < args.messages
            && acks.len() < args.in_flight
            && tokio::time::Instant::now() >= due(sent)
        {
            let (node, subject) = &nodes[(sent % args.nodes) as usize];
            let seq = sent / args.nodes + 1;
            let message = jetstream::message::PublishMessage::build()
                .payload(record(node, seq).into())
                .message_id(format!("{subject}:{:016x}:{seq}", 1));
            let scheduled = match args.rate {
                Some(_) => due(sent),
                None => tokio::time::Instant::now(),
            };
            let ack = js.send_publish(subject.clone(), message).await?;
            // Outside tokio's cooperative budget, as in avpd's store (see its pipeline).
            acks.push(tokio::task::unconstrained(async move {
                (scheduled, ack.into_future().await)
            }));
            sent += 1;
        }
        // On a schedule with room in flight, the next send is due later: wait for it or for
        // an ack. Otherwise only an ack can let the loop go on.
        let next_due = (args.rate.is_some() && sent < args.messages && acks.len() < args.in_flight)
            .then(|| due(sent));
        tokio::select! {
            Some((scheduled, ack)) = acks.next(), if !acks.is_empty() => {
                ack.context("a publish was not acknowledged")?;
                let us = scheduled.elapsed().as_micros() as u64;
                latency.saturating_record(us.max(1));
                acked += 1;
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or(start)), if next_due.is_some() => {}
            else => anyhow::bail!("nothing in flight and nothing due (--in-flight 0?)"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "messages": acked,
        "secs": secs,
        "rate": acked as f64 / secs,
        "in_flight": args.in_flight,
        "nodes": args.nodes,
        "p50_us": latency.value_at_quantile(0.5),
        "p99_us": latency.value_at_quantile(0.99),
        "p99_9_us": latency.value_at_quantile(0.999),
        "max_us": latency.max(),
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
