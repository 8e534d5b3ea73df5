//! One load run: split the connections over worker threads, start them, hand each completed
//! second of the time series to the caller as it comes, and merge what the workers measured.

use crate::clock::{nanos, Clock, NANOS_PER_SEC};
use crate::conn::Conn;
use crate::error::Error;
use crate::mix::Mix;
use crate::observe::Observer;
use crate::pacing::{Pacing, Schedule};
use crate::request::{NodeNames, ReportFields, RequestWriter};
use crate::source::SourceAddrs;
use crate::stats::{new_histogram, Interval, Stats};
use crate::timeline::{Second, Seconds};
use crate::worker::{run_worker, Ctx, WorkerPlan, SCRATCH_LEN};
use avp_endpoint::{Endpoint, Scheme};
use avp_proto::auth::Key;
use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Everything that defines a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where to send load.
    pub target: Endpoint,
    /// The client TLS of a `tls://` target (required for one).
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
    /// The key reports are signed with, if any.
    pub signer: Option<Key>,
    /// The NODE_IDs reports carry.
    pub node_names: NodeNames,
    /// Local addresses the connections are opened from.
    pub source_addrs: SourceAddrs,
    /// The number of simulated agents when the run is a fleet (see [`crate::fleet`]).
    pub agents: Option<usize>,
    /// An agent's reporting interval: the fleet's pace, and for any run the interval its
    /// capacity in agents is stated at.
    pub interval: Duration,
    /// How long to wait for an answer.
    pub timeout: Duration,
    /// How long to send after the warmup (ignored when `requests` is set).
    pub duration: Duration,
    /// Stop after this many measured requests.
    pub requests: Option<u64>,
    /// Excluded from the results.
    pub warmup: Duration,
    /// Ends the run early when set (sending stops; what is outstanding is still awaited).
    pub stop: Stop,
}

impl RunConfig {
    /// A closed-loop run against `target`: 10 connections, one request outstanding on each,
    /// full reports, for ten seconds.
    pub fn new(target: Endpoint) -> Self {
        RunConfig {
            target,
            tls: None,
            threads: 1,
            connections: 10,
            connect_rate: None,
            pipeline: 1,
            rate: None,
            mix: Mix::default(),
            report_fields: ReportFields::Full,
            signer: None,
            node_names: NodeNames::default(),
            source_addrs: SourceAddrs::default(),
            agents: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            duration: Duration::from_secs(10),
            requests: None,
            warmup: Duration::ZERO,
            stop: Stop::default(),
        }
    }

    /// Checks that the settings make a run; the error says which one does not.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |text: &str| Err(Error::Config(text.into()));
        if self.connections == 0 || self.agents == Some(0) {
            return bad("a run needs at least one connection (or agent)");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return bad("--rate must be a positive number of messages per second");
        }
        if self
            .connect_rate
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return bad("--connect-rate must be a positive number of connections per second");
        }
        if self.interval.is_zero() {
            return bad("--interval must be longer than zero");
        }
        if self.node_names.cycle == Some(0) {
            return bad("--node-ids must be at least 1");
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be longer than zero");
        }
        if self.target.scheme == Scheme::Tls && self.tls.is_none() {
            return bad("a tls:// target needs the CA that issued its certificate: --ca FILE");
        }
        Ok(())
    }
}

/// A shared flag that ends a run (or a sweep) early; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks every run using this flag to stop sending.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once [`Stop::stop`] has been called.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// All workers' figures merged.
    pub stats: Stats,
    /// Length of the measurement window in seconds (the send period for `--duration`, up to
    /// the last answer for `--requests`, up to the stop when stopped early).
    pub window_secs: f64,
    /// The address the target resolved to.
    pub target_addr: SocketAddr,
    /// Milliseconds since the Unix epoch when the run's clock started.
    pub start_unix_ms: u64,
    /// One record per second of the run.
    pub timeline: Vec<Second>,
    /// True when [`RunConfig::stop`] ended the run before its planned end.
    pub stopped: bool,
}

/// Runs the load described by `cfg` to completion, handing `observer` each second of the time
/// series once every thread has reported it.
pub fn run(cfg: &RunConfig, observer: &mut dyn Observer) -> Result<RunOutcome, Error> {
    cfg.check()?;
    let target_addr = cfg
        .target
        .resolve_first()
        .map_err(|source| Error::Resolve {
            target: cfg.target.clone(),
            source,
        })?;
    let tls = match (&cfg.tls, cfg.target.scheme) {
        (Some(config), Scheme::Tls) => {
            let name = avp_tls::server_name(cfg.target.host())
                .map_err(|e| Error::Config(format!("{}: {e}", cfg.target)))?;
            Some((config.clone(), name))
        }
        _ => None,
    };
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
        let target = (target_addr, tls.clone());
        let plan = plan_worker(cfg, t, threads, target, clock, measure_start, send_end);
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || run_worker(plan, tx))
            .map_err(Error::Worker)?;
        handles.push(handle);
    }
    drop(tx);
    let timeline = collect_seconds(rx, threads, measure_start, observer);
    let mut stats = Stats::default();
    for h in handles {
        let worker = h
            .join()
            .map_err(|_| Error::WorkerPanicked)?
            .map_err(Error::Worker)?;
        stats.merge(&worker);
    }
    let stopped = stats.send_end < send_end && cfg.stop.is_stopped();
    let window_ns = match cfg.requests {
        Some(_) if !stopped => stats.last_done.saturating_sub(measure_start),
        _ => stats.send_end.min(send_end).saturating_sub(measure_start),
    };
    Ok(RunOutcome {
        stats,
        window_secs: window_ns.max(1) as f64 / NANOS_PER_SEC as f64,
        target_addr,
        start_unix_ms: clock.start_epoch_ms(),
        timeline,
        stopped,
    })
}

#[allow(clippy::too_many_arguments)]
fn plan_worker(
    cfg: &RunConfig,
    t: usize,
    threads: usize,
    (target, tls): (
        SocketAddr,
        Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    ),
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
        signer: cfg.signer.clone(),
        scheme_is_udp: cfg.target.scheme == Scheme::Udp,
        target,
        tls,
        depth: cfg.pipeline.max(1),
        timeout: nanos(cfg.timeout),
        measure_start,
        send_end,
        remaining,
        outstanding: 0,
        open: 0,
        stats: Stats::default(),
        open_loop: cfg.rate.is_some(),
        stop: cfg.stop.clone(),
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
                Some(rate) => {
                    Pacing::Open(Schedule::new(0, i, cfg.connections, rate).starting_at(connect_at))
                }
                None => Pacing::Closed,
            };
            let writer = RequestWriter::new(cfg.report_fields, &cfg.node_names, i, cfg.connections);
            let source = cfg.source_addrs.pick(i);
            Conn::new(connect_at, &ctx, pacing, cfg.mix.cursor(), writer, source)
        })
        .collect();
    WorkerPlan { ctx, conns }
}

/// Merges the workers' per-second intervals into the time series, handing each second to
/// `observer` as it completes; returns when all workers have finished.
fn collect_seconds(
    rx: mpsc::Receiver<Interval>,
    threads: usize,
    measure_start: u64,
    observer: &mut dyn Observer,
) -> Vec<Second> {
    let mut seconds = Seconds::new(threads, measure_start);
    let mut timeline = Vec::new();
    for iv in rx {
        seconds.push(iv, &mut |second, latency: Histogram<u64>| {
            observer.on_second(&second, &latency);
            timeline.push(second);
        });
    }
    timeline
}
