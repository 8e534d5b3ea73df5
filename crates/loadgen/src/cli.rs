//! Command-line interface: flags, their defaults and their parsing.

use avp_endpoint::Endpoint;
use avp_loadgen::fleet;
use avp_loadgen::mix::Mix;
use avp_loadgen::request::{NodeNames, ReportFields};
use avp_loadgen::run::RunConfig;
use avp_loadgen::source::SourceAddrs;
use avp_loadgen::sweep::{Slo, SweepConfig};
use avp_proto::auth::Key;
use avp_units::parse_duration;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// avp-loadgen: capacity tests for avpd with honest latency.
#[derive(Debug, Parser)]
#[command(name = "avp-loadgen", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A subcommand; without one, runs load.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Load options.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show run reports (written by --json or merge) side by side, each with its ratio to the
    /// first, and the parameters that differ.
    Compare {
        /// The reports; the first is the baseline.
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Write a page overlaying the runs.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Plot the runs overlaid (.svg or .png, repeatable).
        #[arg(long, value_name = "FILE")]
        plot: Vec<PathBuf>,
    },
    /// Combine run reports made at the same time from several load hosts into one: counts
    /// summed, percentiles from the merged histograms, rates summed over the shared window.
    Merge {
        /// The reports (written by --json).
        #[arg(required = true, num_args = 2..)]
        reports: Vec<PathBuf>,
        /// Write the merged report as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the merged report as a page.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Plot the merged report (.svg or .png, repeatable).
        #[arg(long, value_name = "FILE")]
        plot: Vec<PathBuf>,
    },
}

/// Options of a load run or sweep.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target: tcp://HOST:PORT, udp://HOST:PORT, json+tcp://HOST:PORT or tls://HOST:PORT
    /// (with --ca, and --cert and --key when the target asks for a client certificate).
    #[arg(long, default_value = "tcp://127.0.0.1:7700")]
    pub target: Endpoint,
    /// Start an avpd node in this process on an ephemeral loopback port (with --target's
    /// scheme) and test it.
    #[arg(long)]
    pub embedded: bool,
    /// Worker threads of the --embedded node.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub node_workers: usize,
    /// Load threads, each with its own event loop.
    #[arg(long, default_value_t = 1, value_name = "T")]
    pub threads: usize,
    /// Connections (UDP: sockets), spread over the threads.
    #[arg(long, default_value_t = 10, value_name = "C")]
    pub connections: usize,
    /// Simulate a fleet of N agents: one connection each, one full report every --interval,
    /// spread evenly over it. With --sweep, the first step's agents.
    #[arg(long, value_name = "N", conflicts_with_all = ["connections", "rate", "mix", "report_fields", "node_ids", "sweep_start"])]
    pub agents: Option<usize>,
    /// An agent's reporting interval (e.g. 1s, 250ms): the pace of --agents, and for any run
    /// the interval its capacity in agents is stated at.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// NODE_IDs are <PREFIX>-<connection number>.
    #[arg(long, default_value = "loadgen", value_name = "PREFIX")]
    pub node_prefix: String,
    /// Cycle the reports' NODE_ID through K names (the next one at each report) instead of
    /// one per connection: at --rate K, each of K nodes reports once a second.
    #[arg(long, value_name = "K")]
    pub node_ids: Option<usize>,
    /// Open the connections from these local addresses, round-robin: a range
    /// (127.0.0.2-127.0.0.9) or a comma-separated list.
    #[arg(long, value_name = "ADDRS")]
    pub source_addrs: Option<SourceAddrs>,
    /// New connections per second (default: all at once).
    #[arg(long, value_name = "PER_SEC")]
    pub connect_rate: Option<f64>,
    /// Requests outstanding per connection: the depth in closed loop, the cap in open loop
    /// (1 to 1,000,000).
    #[arg(long, default_value_t = 1, value_name = "D", value_parser = parse_pipeline)]
    pub pipeline: usize,
    /// Open loop: messages per second over all connections, on a fixed schedule.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Message mix, e.g. report=98,pause=1,resume=1.
    #[arg(long, default_value = "report=1")]
    pub mix: Mix,
    /// Attributes of each report: full (CPU, MEM, SEQUENCE, TIMESTAMP, NODE_ID, INSTANCE) or minimal
    /// (CPU, MEM, SEQUENCE: the 15-byte report the C yardstick client sends).
    #[arg(long, value_enum, default_value_t = ReportFieldsArg::Full)]
    pub report_fields: ReportFieldsArg,
    /// Sign every report with the secret this file holds (its contents, without a trailing
    /// line end), as `avpd agent --key-file` does; the node's --agent-keys file must give it to
    /// every NODE_ID the run reports under.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// The key read from --key-file.
    #[arg(skip)]
    pub signer: Option<Key>,
    /// How long to wait for an answer (e.g. 5s, 250ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How long to send after the warmup.
    #[arg(long, default_value = "10s", value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Duration,
    /// Stop after this many measured requests instead of after --duration.
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Load sent first and excluded from the results.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Write every figure as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the corrected latency distribution in HdrHistogram's .hgrm text format.
    #[arg(long, value_name = "FILE", conflicts_with = "sweep")]
    pub hgrm: Option<PathBuf>,
    /// Write the time series as an HdrHistogram interval log (HistogramLogProcessor reads it).
    #[arg(long, value_name = "FILE", conflicts_with = "sweep")]
    pub hlog: Option<PathBuf>,
    /// Write a self-contained page with the parameters, the summary and the plots.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Plot (.svg or .png): the latency percentile spectrum and the time series, or with
    /// --sweep throughput against latency and the steps' time series (repeatable, e.g. once
    /// for each format).
    #[arg(long, value_name = "FILE")]
    pub plot: Vec<PathBuf>,
    /// Step the open-loop rate up geometrically until --slo or --error-budget breaks.
    #[arg(long, conflicts_with_all = ["rate", "requests"])]
    pub sweep: bool,
    /// Latency objectives for --sweep on corrected latency, e.g. p99=5ms (repeatable or
    /// comma-separated).
    #[arg(long, value_delimiter = ',', requires = "sweep")]
    pub slo: Vec<Slo>,
    /// First rate of --sweep, messages per second.
    #[arg(long, default_value_t = 1000.0, requires = "sweep")]
    pub sweep_start: f64,
    /// Rate multiplier between --sweep steps.
    #[arg(long, default_value_t = 1.5, requires = "sweep")]
    pub sweep_factor: f64,
    /// Most --sweep steps.
    #[arg(long, default_value_t = 30, requires = "sweep")]
    pub sweep_steps: usize,
    /// Largest tolerated fraction of failed requests in a --sweep step (0.001 = 0.1%).
    #[arg(long, default_value_t = 0.001, requires = "sweep")]
    pub error_budget: f64,
    /// No live view and no progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Plain progress lines on stderr even when stdout is a terminal (no live view).
    #[arg(long, conflicts_with = "quiet")]
    pub plain: bool,
    /// For a tls:// target: the CA to trust and the client certificate to present.
    #[command(flatten)]
    pub tls: avp_tls::ClientFiles,
}

impl LoadArgs {
    /// The run configuration against `target`; fails when the TLS files cannot be loaded.
    pub fn run_config(&self, target: Endpoint) -> Result<RunConfig, avp_tls::TlsError> {
        let mut cfg = RunConfig {
            tls: self.tls.config()?,
            threads: self.threads.max(1),
            connections: self.connections,
            connect_rate: self.connect_rate,
            pipeline: self.pipeline,
            rate: self.rate,
            mix: self.mix,
            report_fields: self.report_fields.into(),
            signer: self.signer.clone(),
            node_names: NodeNames {
                prefix: self.node_prefix.clone(),
                cycle: self.node_ids,
            },
            source_addrs: self.source_addrs.clone().unwrap_or_default(),
            interval: self.interval,
            timeout: self.timeout,
            duration: self.duration,
            requests: self.requests,
            warmup: self.warmup,
            ..RunConfig::new(target)
        };
        if let (Some(n), false) = (self.agents, self.sweep) {
            fleet::configure(&mut cfg, n);
        }
        Ok(cfg)
    }

    /// The sweep configuration.
    pub fn sweep_config(&self) -> SweepConfig {
        SweepConfig {
            start_rate: self.sweep_start,
            start_agents: self.agents,
            factor: self.sweep_factor,
            max_steps: self.sweep_steps,
            slo: self.slo.clone(),
            error_budget: self.error_budget,
        }
    }
}

/// `--report-fields`: which attributes each report carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFieldsArg {
    /// CPU, MEM, SEQUENCE, TIMESTAMP, NODE_ID and INSTANCE, as a real agent sends.
    Full,
    /// CPU, MEM and SEQUENCE only: the 15-byte minimal report.
    Minimal,
}

impl From<ReportFieldsArg> for ReportFields {
    fn from(a: ReportFieldsArg) -> ReportFields {
        match a {
            ReportFieldsArg::Full => ReportFields::Full,
            ReportFieldsArg::Minimal => ReportFields::Minimal,
        }
    }
}

/// Most requests one connection may have outstanding: far more than any target queues, and few
/// enough that a slot's requests always number in `u32`, like SEQUENCE.
const MAX_PIPELINE: usize = 1_000_000;

fn parse_pipeline(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(d) if (1..=MAX_PIPELINE).contains(&d) => Ok(d),
        _ => Err(format!("expected a depth from 1 to {MAX_PIPELINE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "avp-loadgen",
            "--sweep",
            "--slo",
            "p99=5ms,p50=1ms",
            "--mix",
            "report=98,pause=1,resume=1",
        ])
        .unwrap();
        assert_eq!(cli.load.slo.len(), 2);
        assert_eq!(cli.load.slo[0].limit_us, 5000.0);
        assert!(Cli::try_parse_from(["avp-loadgen", "--slo", "p99=5ms"]).is_err());
        for depth in ["0", "1000001", "x"] {
            assert!(Cli::try_parse_from(["avp-loadgen", "--pipeline", depth]).is_err());
        }
        assert!(
            Cli::try_parse_from(["avp-loadgen", "--requests", "5", "--duration", "1s"]).is_err()
        );
        let cli = Cli::try_parse_from(["avp-loadgen", "compare", "a.json", "b.json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Compare { .. })));
        assert!(Cli::try_parse_from(["avp-loadgen", "merge", "a.json"]).is_err());
        let cli =
            Cli::try_parse_from(["avp-loadgen", "merge", "a.json", "b.json", "c.json"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Merge { ref reports, .. }) if reports.len() == 3)
        );
        // A fleet sets its own connections and rate.
        let cli =
            Cli::try_parse_from(["avp-loadgen", "--agents", "500", "--interval", "250ms"]).unwrap();
        let cfg = cli
            .load
            .run_config("tcp://127.0.0.1:1".parse().unwrap())
            .unwrap();
        assert_eq!(
            (cfg.connections, cfg.rate, cfg.agents),
            (500, Some(2000.0), Some(500))
        );
        assert!(
            Cli::try_parse_from(["avp-loadgen", "--agents", "5", "--connections", "9"]).is_err()
        );
        assert!(Cli::try_parse_from(["avp-loadgen", "--interval", "1 s"]).is_err());
        assert!(
            Cli::try_parse_from(["avp-loadgen", "--source-addrs", "127.0.0.9-127.0.0.1"]).is_err()
        );
    }
}
