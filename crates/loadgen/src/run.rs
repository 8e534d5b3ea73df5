//! One load run: split the connections over worker threads, start them, print the live
//! progress line every second, and merge what the workers measured.

use crate::clock::{nanos, Clock, NANOS_PER_SEC};
use crate::conn::Conn;
use crate::error::Error;
use crate::mix::Mix;
use crate::pacing::{Pacing, Schedule};
use crate::report::{fmt_latency, group};
use crate::request::{ReportFields, RequestWriter};
use crate::stats::{new_histogram, Interval, Stats};
use crate::worker::{run_worker, Ctx, WorkerPlan, SCRATCH_LEN};
use avp_endpoint::{Endpoint, Scheme};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

/// Everything that defines a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where to send load.
    pub target: Endpoint,
    /// Worker threads.
    pub threads: usize,
    /// Connections (UDP: sockets), spread over the threads.
    pub connections: usize,
    /// New connections per second over the whole run; `None` connects all at once.
    pub connect_rate: Option<f64>,
    /// Most requests outstanding per connection.
    pub pipeline: usize,
    /// Open-loop rate in messages per second over all connections; `None` for closed loop.
    pub rate: Option<f64>,
    /// Message mix.
    pub mix: Mix,
    /// Attributes carried by each report.
    pub report_fields: ReportFields,
    /// How long to wait for an answer.
    pub timeout: Duration,
    /// How long to send after the warmup (ignored when `requests` is set).
    pub duration: Duration,
    /// Stop after this many measured requests.
    pub requests: Option<u64>,
    /// Excluded from the results.
    pub warmup: Duration,
    /// Print the live progress line on stderr.
    pub progress: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// All workers' figures merged.
    pub stats: Stats,
    /// Length of the measurement window in seconds (the send period for `--duration`, up to
    /// the last answer for `--requests`).
    pub window_secs: f64,
    /// The address the target resolved to.
    pub target_addr: SocketAddr,
}

/// Runs the load described by `cfg` to completion.
pub fn run(cfg: &RunConfig) -> Result<RunOutcome, Error> {
    let target_addr = cfg
        .target
        .resolve_first()
        .map_err(|source| Error::Resolve {
            target: cfg.target.clone(),
            source,
        })?;
    let threads = cfg.threads.clamp(1, cfg.connections.max(1));
    let clock = Clock::start();
    let measure_start = nanos(cfg.warmup);
    let send_end = match cfg.requests {
        Some(_) => u64::MAX,
        None => measure_start.saturating_add(nanos(cfg.duration)),
    };
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let plan = plan_worker(cfg, t, threads, target_addr, clock, measure_start, send_end);
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || run_worker(plan, tx))
            .map_err(Error::Worker)?;
        handles.push(handle);
    }
    drop(tx);
    report_progress(rx, threads, measure_start, cfg.progress);
    let mut stats = Stats::default();
    for h in handles {
        let worker = h
            .join()
            .map_err(|_| Error::WorkerPanicked)?
            .map_err(Error::Worker)?;
        stats.merge(&worker);
    }
    let window_ns = match cfg.requests {
        Some(_) => stats.last_done.saturating_sub(measure_start),
        None => send_end - measure_start,
    };
    Ok(RunOutcome {
        stats,
        window_secs: window_ns.max(1) as f64 / NANOS_PER_SEC as f64,
        target_addr,
    })
}

#[allow(clippy::too_many_arguments)]
fn plan_worker(
    cfg: &RunConfig,
    t: usize,
    threads: usize,
    target: SocketAddr,
    clock: Clock,
    measure_start: u64,
    send_end: u64,
) -> WorkerPlan {
    // --requests N: thread t sends N / threads, the first N % threads one more.
    let remaining = cfg.requests.map(|n| {
        let (share, extra) = (n / threads as u64, n % threads as u64);
        share + u64::from((t as u64) < extra)
    });
    let ctx = Ctx {
        clock,
        codec: cfg.target.scheme.codec(),
        scheme_is_udp: cfg.target.scheme == Scheme::Udp,
        target,
        depth: cfg.pipeline.max(1),
        timeout: nanos(cfg.timeout),
        measure_start,
        send_end,
        remaining,
        outstanding: 0,
        open: 0,
        stats: Stats::default(),
        open_loop: cfg.rate.is_some(),
        interval: Interval::new(1),
        warmup_latency: new_histogram(),
        queued: Vec::new(),
        scratch: vec![0; SCRATCH_LEN],
        inbox: (cfg.target.scheme == Scheme::Udp).then(avp_udp::Inbox::default),
        outbox: avp_udp::Outbox::default(),
    };
    let conns = (t..cfg.connections)
        .step_by(threads)
        .map(|i| {
            let connect_at = cfg
                .connect_rate
                .map_or(0, |r| (i as f64 * NANOS_PER_SEC as f64 / r) as u64);
            let pacing = match cfg.rate {
                Some(rate) => Pacing::Open(Schedule::new(0, i, cfg.connections, rate)),
                None => Pacing::Closed,
            };
            let writer = RequestWriter::new(cfg.report_fields, i);
            Conn::new(connect_at, &ctx, pacing, cfg.mix.cursor(), writer)
        })
        .collect();
    WorkerPlan { ctx, conns }
}

/// Collects the workers' per-second intervals and prints one line per second once every
/// worker has reported it; returns when all workers have finished.
fn report_progress(rx: mpsc::Receiver<Interval>, threads: usize, measure_start: u64, print: bool) {
    let mut pending: BTreeMap<u64, (usize, Interval)> = BTreeMap::new();
    for iv in rx {
        let tick = iv.tick;
        let entry = pending
            .entry(tick)
            .or_insert_with(|| (0, Interval::new(tick)));
        entry.0 += 1;
        entry.1.merge(&iv);
        if entry.0 == threads {
            if let Some((_, iv)) = pending.remove(&tick) {
                if print {
                    let warm = tick * NANOS_PER_SEC <= measure_start;
                    eprintln!("{}", progress_line(&iv, warm));
                }
            }
        }
    }
    let _ = std::io::stderr().flush();
}

/// The live progress line for one second.
pub fn progress_line(iv: &Interval, warmup: bool) -> String {
    let q = |p| fmt_latency(iv.latency.value_at_quantile(p));
    format!(
        "[{:>4}s] sent {:>10}/s  answered {:>10}/s  p50 {:>9}  p99 {:>9}  errors {:>6}  conns {:>6}{}",
        iv.tick,
        group(iv.sent as f64),
        group(iv.answered as f64),
        if iv.answered > 0 { q(0.5) } else { "-".into() },
        if iv.answered > 0 { q(0.99) } else { "-".into() },
        group(iv.errors as f64),
        group(iv.open as f64),
        if warmup { "  (warmup)" } else { "" },
    )
}
