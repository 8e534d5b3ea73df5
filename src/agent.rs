//! `avpd agent`: command-line options and start-up of the reporting agent, and what a SIGHUP
//! changes in it (the log filter and format, the interval, the timeouts and the key file; the
//! other options need a restart).

use crate::codec_arg::CodecArg;
use crate::config::{ConfigArgs, Setting};
use crate::signals::Signal;
use crate::{reload, Command, Invocation};
use anyhow::{bail, Context};
use avp_endpoint::Endpoint;
use avpd_agent::reporter::ReporterConfig;
use avpd_agent::run::{LiveSettings, SampleFeed, Spooled};
use avpd_agent::sampler::{host_name, HostSample, HostSampler};
use avpd_agent::spool::Spool;
use avpd_client::{Link, PeerLink};
use avpd_node::admin::{AdminConfig, AdminPlane};
use avpd_node::fleet::NodeReport;
use avpd_node::StartError;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Command-line options of `avpd agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Collector to report to: tcp://HOST:PORT, json+tcp://HOST:PORT for the text form, or
    /// tls://HOST:PORT (with --ca, and --cert and --key when the collector asks for a client
    /// certificate).
    /// Repeatable: on a connection failure or an answer timeout the agent moves to the next
    /// one, and back to the first as soon as it answers again.
    #[arg(long, default_value = "tcp://127.0.0.1:7700")]
    pub collector: Vec<Endpoint>,
    /// While reporting to another collector than the first, try the first this often.
    #[arg(long, default_value = "30s", value_parser = avp_units::parse_duration)]
    pub failback_after: Duration,
    /// How long an answer may take before the agent gives up on the connection (and moves
    /// to the next collector).
    #[arg(long, default_value = "30s", value_parser = avp_units::parse_duration)]
    pub answer_timeout: Duration,
    /// Keep unacknowledged reports and the agent's instance in this file, so that they
    /// survive a restart. Each report is synced to it before it is sent.
    #[arg(long, value_name = "PATH")]
    pub spool: Option<PathBuf>,
    /// Time between samples, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = avp_units::parse_duration)]
    pub interval: Duration,
    /// NODE_ID to report (default: the host name).
    #[arg(long)]
    pub node_id: Option<String>,
    /// Unacknowledged reports kept for resending after a reconnect; past it the oldest are
    /// dropped (and counted).
    #[arg(long, default_value_t = 3600)]
    pub buffer: usize,
    /// Also serve this host's reports to terminals that connect here (tcp:// or
    /// json+tcp://; repeatable), pushed every --interval.
    #[arg(long)]
    pub listen: Vec<Endpoint>,
    /// Let --listen bind an address other hosts can reach: its terminals are not
    /// authenticated, so without this only loopback addresses are accepted.
    #[arg(long)]
    pub listen_insecure: bool,
    /// Force the wire form, whatever the URL scheme says.
    #[arg(long, value_enum)]
    pub codec: Option<CodecArg>,
    /// Exit after this many reports, once the collector has acknowledged them all.
    #[arg(long)]
    pub count: Option<u64>,
    /// Sign every report with the secret this file holds (its contents, without a trailing
    /// line end): the collector's --agent-keys file gives the same secret to this NODE_ID.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Log filter (overrides RUST_LOG), e.g. info, debug, avpd_agent=trace.
    #[arg(long)]
    pub log: Option<String>,
    #[command(flatten)]
    pub tls: avp_tls::ClientFiles,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The keys a reload applies to the running agent; the others need a restart.
pub const LIVE: [&str; 6] = [
    "log",
    "log-format",
    "interval",
    "answer-timeout",
    "failback-after",
    "key-file",
];

/// Runs the agent until SIGINT/SIGTERM (or `--count`), then logs its totals; SIGHUP reads
/// `file` again. `settings` are the options in force.
pub fn run(
    args: AgentArgs,
    invocation: &Invocation,
    settings: Vec<Setting>,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    crate::logging::init(args.log.as_deref())?;
    let node_id = args.node_id.clone().unwrap_or_else(host_name);
    if !(1..=255).contains(&node_id.len()) {
        bail!("--node-id must be 1 to 255 bytes long");
    }
    let live = args.live_settings()?;
    if args.buffer == 0 {
        bail!("--buffer must be at least 1");
    }
    if args
        .collector
        .iter()
        .any(|c| c.scheme != args.collector[0].scheme)
    {
        bail!("every --collector must use the same scheme (they share one wire form)");
    }
    let collectors = args
        .collector
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let link = Link::with_tls(args.collector, args.failback_after, args.tls.config()?)?;
    let mut link = PeerLink::over(link, args.codec.map(Into::into), args.answer_timeout);
    if let Some(key) = live.key {
        link.sign_reports_with(key);
    }
    let (instance, first_seq, spooled) = match &args.spool {
        Some(path) => {
            let (spool, restored) = Spool::open(path, fastrand::u64(..))?;
            info!(
                "spool {}: instance {:016x}, {} unacknowledged reports from the last run",
                path.display(),
                restored.instance,
                restored.pending.len()
            );
            let spooled = Spooled {
                spool,
                pending: restored.pending,
            };
            (restored.instance, restored.next_seq, Some(spooled))
        }
        None => (fastrand::u64(..), 1, None),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (reload_tx, reloads) = std::sync::mpsc::channel();
    watch_signals(
        Arc::clone(&stop),
        reload_tx,
        invocation.clone(),
        settings,
        file,
    )?;
    let config = ReporterConfig {
        node_id,
        interval: args.interval,
        buffer: args.buffer,
        count: args.count,
        instance,
        first_seq,
        journal: spooled.is_some(),
    };
    let (plane, on_sample) = serve_terminals(&args.listen, args.listen_insecure, args.interval)?;
    let terminals = plane.as_ref().map_or(String::new(), |p| {
        let bound: Vec<String> = p.endpoints().iter().map(ToString::to_string).collect();
        format!(" terminals={}", bound.join(","))
    });
    info!(
        "agent started: avpd {} node={} instance={instance:016x} collector={collectors}{terminals} \
         interval={:?} buffer={}",
        env!("CARGO_PKG_VERSION"),
        config.node_id,
        args.interval,
        args.buffer
    );
    crate::notify::ready();
    let mut sampler = HostSampler::new()?;
    let t = avpd_agent::run::run(
        config,
        link,
        &mut sampler,
        on_sample,
        spooled,
        &reloads,
        &stop,
    );
    crate::notify::stopping();
    if let Some(plane) = plane {
        plane.shutdown();
    }
    info!(
        "agent stopped: sampled={} acked={} resent={} refused={} unauthorized={} dropped={} \
         unacked={} unsolicited={}",
        t.sampled,
        t.acked,
        t.resent,
        t.refused,
        t.unauthorized,
        t.dropped,
        t.unacked,
        t.unsolicited
    );
    Ok(())
}

/// The key of the secret file at `path`.
pub fn read_key(path: &std::path::Path) -> anyhow::Result<avp_proto::auth::Key> {
    let contents =
        std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    avp_proto::auth::Key::from_secret_file(&contents)
        .with_context(|| format!("key file {} holds no secret", path.display()))
}

impl AgentArgs {
    /// The settings a reload may change, checked: a positive interval, a key file that holds
    /// a secret.
    fn live_settings(&self) -> anyhow::Result<LiveSettings> {
        if self.interval.is_zero() {
            bail!("--interval must be above zero");
        }
        Ok(LiveSettings {
            interval: self.interval,
            answer_timeout: self.answer_timeout,
            failback_after: self.failback_after,
            key: self.key_file.as_deref().map(read_key).transpose()?,
        })
    }
}

/// Handles signals on a thread of its own: SIGINT and SIGTERM set `stop`, SIGHUP reads `file`
/// (and the key file) again and sends what changes live to `reloads`.
fn watch_signals(
    stop: Arc<AtomicBool>,
    reloads: Sender<LiveSettings>,
    invocation: Invocation,
    mut running: Vec<Setting>,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let signals = crate::signals::listen()?;
    std::thread::Builder::new()
        .name("avpd-agent-signals".into())
        .spawn(move || {
            for signal in signals {
                match signal {
                    Signal::Stop(_) => stop.store(true, Ordering::Release),
                    Signal::Reload => {
                        crate::notify::reloading();
                        running = reload_config(&invocation, running, file.as_deref(), &reloads);
                        crate::notify::ready();
                    }
                }
            }
        })?;
    Ok(())
}

/// Reads the configuration `file` (if any) and the key file again, applies the log settings
/// and sends the other live ones to the reporting loop; returns the settings in force
/// afterwards (`running` when the file is refused).
fn reload_config(
    invocation: &Invocation,
    running: Vec<Setting>,
    file: Option<&Path>,
    reloads: &Sender<LiveSettings>,
) -> Vec<Setting> {
    let checked = invocation
        .parse()
        .map_err(anyhow::Error::from)
        .and_then(|parsed| {
            let Command::Agent(args) = &parsed.cli.command else {
                unreachable!("the same command line parses to the same subcommand");
            };
            let logs = crate::logging::prepare(args.log.as_deref(), parsed.cli.log_format)?;
            let live = args.live_settings()?;
            if let Some(path) = &args.key_file {
                tracing::info!("SIGHUP: key file {} read again", path.display());
            }
            Ok((parsed.settings, logs, live))
        });
    match checked {
        Ok((read, logs, live)) => {
            // Said before it is done, so that the lines come out under the filter they name.
            match file {
                Some(path) => reload::log(&reload::changes(&running, &read, &LIVE), path),
                None => tracing::info!("SIGHUP: no --config file to read again"),
            }
            if let Err(e) = logs.apply() {
                tracing::error!("{e:#}");
            }
            // The reporting loop is gone only when the agent is stopping.
            let _ = reloads.send(live);
            reload::applied(&running, &read, &LIVE)
        }
        Err(e) => {
            let what = file.map_or("the key file".into(), |p| p.display().to_string());
            tracing::error!("reload of {what} refused, configuration unchanged: {e}");
            running
        }
    }
}

/// Starts the `--listen` management plane (when asked for) and returns it with the feed that
/// hands it every sample.
fn serve_terminals(
    listen: &[Endpoint],
    insecure: bool,
    interval: Duration,
) -> anyhow::Result<(Option<AdminPlane>, SampleFeed)> {
    if listen.is_empty() {
        return Ok((None, Box::new(|_, _| {})));
    }
    // Bounded: when the plane lags, a sample is skipped, never queued without end.
    let (tx, rx) = crossbeam_channel::bounded(64);
    let config = AdminConfig {
        listen: listen.to_vec(),
        report_interval: interval,
        insecure,
        ..AdminConfig::default()
    };
    let plane = AdminPlane::start(config, rx).map_err(|e| match e {
        StartError::Unprotected(endpoint) => anyhow::anyhow!(
            "protected mode: --listen {endpoint} is reachable from other hosts and its terminals \
             are not authenticated; bind it to a loopback address, or add --listen-insecure"
        ),
        e => e.into(),
    })?;
    let feed = Box::new(move |node: &str, s: HostSample| {
        let _ = tx.try_send(vec![NodeReport {
            node: node.to_string(),
            cpu_percent: s.cpu_percent,
            mem_percent: s.mem_percent,
            timestamp_ms: s.timestamp_ms,
            received_ms: s.timestamp_ms,
            collector: None,
        }]);
    });
    Ok((Some(plane), feed))
}
