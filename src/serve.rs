//! `avpd serve`: command-line options, and running a [`Node`] (with its metrics endpoint)
//! until told to stop: readiness, status and watchdog for the service manager, and SIGHUP
//! reloads of the configuration.

use crate::config::{ConfigArgs, Setting};
use crate::signals::Signal;
use crate::store_args::ServeStoreArgs;
use crate::{notify, reload, Command, Invocation};
use anyhow::{bail, Context as _};
use avp_endpoint::{Endpoint, Scheme};
use avp_tls::ServerTls;
use avpd_metrics::{MetricsConfig, MetricsServer};
use avpd_node::admin::AdminConfig;
use avpd_node::auth::AgentKeys;
use avpd_node::fleet::FleetRules;
use avpd_node::live::Live;
use avpd_node::observe::FleetFiguresConfig;
use avpd_node::{Config, Node};
use clap::Args;
use crossbeam_channel::RecvTimeoutError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The keys a reload applies to the running node; the others need a restart.
pub const LIVE: [&str; 18] = [
    "log",
    "log-format",
    "max-connections",
    "idle-timeout",
    "frame-timeout",
    "ack-timeout",
    "slow-peer-timeout",
    "report-interval",
    "status-interval",
    "max-output",
    "max-buffer-memory",
    "max-unacked",
    "stale-after",
    "node-ttl",
    "max-nodes",
    "max-clock-skew",
    "auth-window",
    "udp-allow",
];

/// A worker that sent no snapshot for this long is stuck: the watchdog is not fed.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// Command-line options of `avpd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data-plane endpoint, repeatable: tcp://, udp://, json+tcp:// or tls://HOST:PORT.
    #[arg(long = "listen", value_name = "URL",
          default_values = ["tcp://127.0.0.1:7700", "udp://127.0.0.1:7700", "json+tcp://127.0.0.1:7703"])]
    pub listen: Vec<Endpoint>,
    /// Management-plane endpoint for terminals, repeatable: tcp://, json+tcp:// or tls://.
    /// Protected mode: an address other hosts can reach needs tls:// with --tls-client-ca,
    /// or --admin-insecure.
    #[arg(long = "admin", value_name = "URL", default_values = ["tcp://127.0.0.1:7701"])]
    pub admin: Vec<Endpoint>,
    /// Run without a management plane.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
    /// Protected mode off: allow --admin on an address other hosts can reach without TLS
    /// client authentication (any terminal there can pause the fleet).
    #[arg(long)]
    pub admin_insecure: bool,
    /// PEM certificate chain the tls:// endpoints (--listen and --admin) present.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA(s) whose client certificates the tls:// endpoints accept: a peer
    /// without one is refused during the handshake (and counted, tls_refused=).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// PEM file of the CA(s) whose client certificates the tls:// --admin endpoints accept,
    /// instead of --tls-client-ca: terminals' CA, so that an agent's certificate does not
    /// open the management plane.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub admin_tls_client_ca: Option<PathBuf>,
    /// Data-plane worker threads [default: available cores].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Listen backlog of every TCP listener.
    #[arg(long, default_value_t = 4096)]
    pub backlog: i32,
    /// Most data-plane connections open at once; further ones get a 503 and are closed.
    #[arg(long, default_value_t = 100_000)]
    pub max_connections: usize,
    /// Close connections silent for this long (e.g. 300s, 5m).
    #[arg(long, default_value = "300s", value_parser = avp_units::parse_duration)]
    pub idle_timeout: Duration,
    /// Close a connection whose frame is still incomplete this long after its first bytes
    /// arrived (a header trickled in a byte at a time, say).
    #[arg(long, default_value = "10s", value_parser = avp_units::parse_duration)]
    pub frame_timeout: Duration,
    /// Close a peer whose unsent output stays at --max-output this long (one that does not
    /// read its answers, or reads them too slowly).
    #[arg(long, default_value = "10s", value_parser = avp_units::parse_duration)]
    pub slow_peer_timeout: Duration,
    /// Close a terminal that leaves pushed reports unacknowledged this long.
    #[arg(long, default_value = "30s", value_parser = avp_units::parse_duration)]
    pub ack_timeout: Duration,
    /// Unsent output at which a peer stops being read until it drains, e.g. 1MiB.
    #[arg(long, default_value = "1MiB", value_parser = parse_output_bound)]
    pub max_output: usize,
    /// Take UDP datagrams only from this source range (CIDR, e.g. 10.0.0.0/8, or one
    /// address); repeatable. Others are dropped unanswered and counted.
    #[arg(long, value_name = "CIDR")]
    pub udp_allow: Vec<avpd_node::allow::Cidr>,
    /// Input and output buffered by all connections of the node together, e.g. 256MiB: near
    /// it the largest holders stop being read, over it peers that read nothing are closed,
    /// then peers holding an incomplete frame.
    #[arg(long, default_value = "256MiB", value_parser = avp_units::parse_size)]
    pub max_buffer_memory: u64,
    /// Receive buffer asked of the kernel for each UDP socket (capped by
    /// net.core.rmem_max), e.g. 4MiB.
    #[arg(long, default_value = "4MiB", value_parser = avp_units::parse_size)]
    pub udp_buffer: u64,
    /// Time between two pushes of the fleet view to terminals.
    #[arg(long, default_value = "1s", value_parser = avp_units::parse_duration)]
    pub report_interval: Duration,
    /// Unacknowledged pushes at which a terminal is not pushed more until it catches up.
    #[arg(long, default_value_t = 65_536)]
    pub max_unacked: usize,
    /// Time between two status log lines.
    #[arg(long, default_value = "10s", value_parser = avp_units::parse_duration)]
    pub status_interval: Duration,
    /// Accept only reports signed with the key of their NODE_ID: a TOML file of
    /// `"node-id" = "secret"` lines, read again whenever it changes.
    #[arg(long, value_name = "FILE")]
    pub agent_keys: Option<PathBuf>,
    /// How far a signed report's TIMESTAMP may be from the node's clock.
    #[arg(long, default_value = "60s", value_parser = avp_units::parse_duration)]
    pub auth_window: Duration,
    /// A node silent this long shows as stale [default: three of its own report intervals,
    /// or 10s until its interval is known].
    #[arg(long, value_parser = avp_units::parse_duration)]
    pub stale_after: Option<Duration>,
    /// A node silent this long is removed from the fleet view.
    #[arg(long, default_value = "10m", value_parser = avp_units::parse_duration)]
    pub node_ttl: Duration,
    /// Most nodes the fleet view holds; further nodes are left out of it and counted (their
    /// reports are still acknowledged and stored).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_nodes: usize,
    /// A report whose TIMESTAMP is further than this from the node's clock is flagged as
    /// clock skew.
    #[arg(long, default_value = "1m", value_parser = avp_units::parse_duration)]
    pub max_clock_skew: Duration,
    /// Log filter (overrides RUST_LOG), e.g. info, debug, avpd=trace.
    #[arg(long)]
    pub log: Option<String>,
    /// Serve Prometheus metrics (/metrics), /healthz and /readyz over HTTP here:
    /// tcp://HOST:PORT, e.g. tcp://127.0.0.1:9464.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<Endpoint>,
    /// Also export each fleet node's CPU, memory and last report time: three series per
    /// node of the fleet view (which holds up to --max-nodes).
    #[arg(long, requires = "metrics")]
    pub metrics_per_node: bool,
    #[command(flatten)]
    pub store: ServeStoreArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl ServeArgs {
    /// Where to serve metrics, when asked to.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        let Some(endpoint) = &self.metrics else {
            return Ok(None);
        };
        if endpoint.scheme != Scheme::Tcp {
            bail!("--metrics {endpoint}: metrics are served over HTTP on tcp://HOST:PORT");
        }
        let addr = endpoint
            .resolve_first()
            .with_context(|| format!("cannot resolve --metrics {endpoint}"))?;
        Ok(Some(addr))
    }

    /// The node configuration these options describe.
    pub fn node_config(&self) -> anyhow::Result<Config> {
        let store = self.store.settings()?;
        let (tls, admin_tls) = self.tls()?;
        let agent_keys = match &self.agent_keys {
            Some(path) => {
                let keys = AgentKeys::load(path, self.auth_window)?;
                tracing::info!(
                    "agent keys from {}: {} nodes have a key; unsigned reports are refused",
                    path.display(),
                    keys.keys().len()
                );
                Some(Arc::new(keys))
            }
            None => None,
        };
        let defaults = Config::default();
        let admin_defaults = AdminConfig::default();
        let admin_listen = match self.no_admin {
            true => Vec::new(),
            false => self.admin.clone(),
        };
        let fleet_figures = self.metrics.is_some().then_some(FleetFiguresConfig {
            per_node: self.metrics_per_node,
        });
        let any_tls = self
            .listen
            .iter()
            .chain(&admin_listen)
            .any(|e| e.scheme == Scheme::Tls);
        if tls.is_some() && !any_tls {
            bail!("--tls-cert is given, but no --listen or --admin endpoint is tls://");
        }
        Ok(Config {
            listen: self.listen.clone(),
            tls,
            admin: AdminConfig {
                listen: admin_listen,
                report_interval: self.report_interval,
                max_unacked: self.max_unacked,
                ack_timeout: self.ack_timeout,
                frame_timeout: self.frame_timeout,
                fleet: FleetRules {
                    stale_after: self.stale_after,
                    node_ttl: self.node_ttl,
                    max_nodes: self.max_nodes,
                    max_clock_skew: self.max_clock_skew,
                },
                tls: admin_tls,
                insecure: self.admin_insecure,
                slow_peer_timeout: self.slow_peer_timeout,
                max_output: self.max_output,
                ..admin_defaults
            },
            workers: self.workers.unwrap_or(defaults.workers),
            backlog: self.backlog,
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            frame_timeout: self.frame_timeout,
            slow_peer_timeout: self.slow_peer_timeout,
            max_output: self.max_output,
            max_buffer_memory: usize::try_from(self.max_buffer_memory).unwrap_or(usize::MAX),
            udp_allow: self.udp_allow.clone(),
            udp_buffer: usize::try_from(self.udp_buffer).unwrap_or(usize::MAX),
            status_interval: self.status_interval,
            store,
            agent_keys,
            fleet_figures,
            on_status: None,
        })
    }
}

impl ServeArgs {
    /// The TLS of the data plane's and of the management plane's tls:// endpoints, when
    /// --tls-cert is given.
    fn tls(&self) -> anyhow::Result<(Option<ServerTls>, Option<ServerTls>)> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok((None, None));
        };
        let data = ServerTls::from_files(cert, key, self.tls_client_ca.as_deref())?;
        let admin = match &self.admin_tls_client_ca {
            Some(ca) => ServerTls::from_files(cert, key, Some(ca))?,
            None => data.clone(),
        };
        Ok((Some(data), Some(admin)))
    }
}

/// `--max-output`: a size ([`avp_units::parse_size`]) that fits in memory.
fn parse_output_bound(text: &str) -> Result<usize, String> {
    let bytes = avp_units::parse_size(text).map_err(|e| e.to_string())?;
    usize::try_from(bytes).map_err(|_| format!("{text:?}: too large"))
}

/// Runs the collector node until SIGINT or SIGTERM, then shuts down gracefully; SIGHUP reads
/// `file` again. `settings` are the options in force.
pub fn run(
    args: ServeArgs,
    invocation: &Invocation,
    settings: Vec<Setting>,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    crate::logging::init(args.log.as_deref())?;
    let signals = crate::signals::listen()?;
    let metrics_addr = args.metrics_addr()?;
    let mut config = args.node_config()?;
    config.on_status = Some(Box::new(|line| notify::status(&line.to_string())));
    let stores = config.store.is_some();
    let keys = config.agent_keys.clone();
    let node = Node::start(config)?;
    let metrics = match metrics_addr {
        Some(listen) => Some(MetricsServer::start(MetricsConfig {
            listen,
            observer: node.observer(),
            store: stores,
            version: env!("CARGO_PKG_VERSION"),
        })?),
        None => None,
    };
    tracing::info!("{}", started_line(&node, metrics.as_ref(), file.as_deref()));
    notify::ready();
    let mut running = settings;
    let watchdog = notify::watchdog_every();
    loop {
        let signal = match watchdog {
            Some(every) => signals.recv_timeout(every),
            None => signals.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match signal {
            Ok(Signal::Stop(signal)) => {
                tracing::info!("signal {signal} received: shutting down");
                break;
            }
            Ok(Signal::Reload) => {
                notify::reloading();
                if let Some(keys) = &keys {
                    match keys.reload() {
                        Ok(n) => {
                            tracing::info!("SIGHUP: agent keys read again: {n} nodes have a key")
                        }
                        Err(e) => tracing::error!(
                            "SIGHUP: agent keys not read, the previous ones stay: {e}"
                        ),
                    }
                }
                match &file {
                    Some(path) => running = reload_config(&node, invocation, running, path),
                    None => tracing::info!("SIGHUP: no --config file to read again"),
                }
                notify::ready();
            }
            Err(RecvTimeoutError::Timeout) => feed_watchdog(&node),
            Err(RecvTimeoutError::Disconnected) => bail!("the signal thread stopped"),
        }
    }
    notify::stopping();
    if let Some(metrics) = metrics {
        metrics.shutdown();
    }
    node.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// The start-up line: the version and every endpoint bound.
fn started_line(
    node: &Node,
    metrics: Option<&MetricsServer>,
    file: Option<&std::path::Path>,
) -> String {
    let join = |endpoints: &[Endpoint]| {
        endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut line = format!(
        "avpd {} serving: data {}",
        env!("CARGO_PKG_VERSION"),
        join(node.data_endpoints())
    );
    if !node.admin_endpoints().is_empty() {
        line.push_str(&format!(", admin {}", join(node.admin_endpoints())));
    }
    if let Some(m) = metrics {
        line.push_str(&format!(", metrics http://{}/metrics", m.local_addr()));
    }
    if let Some(file) = file {
        line.push_str(&format!(" (configuration {})", file.display()));
    }
    line
}

/// Feeds the watchdog while every worker reports in.
fn feed_watchdog(node: &Node) {
    let silent = node
        .observer()
        .latest()
        .silent_workers(Instant::now(), STUCK_AFTER);
    if silent == 0 {
        notify::watchdog();
    } else {
        tracing::error!(
            "{silent} workers silent for over {STUCK_AFTER:?}: not feeding the watchdog"
        );
    }
}

/// Reads the configuration again and applies what can change live; returns the settings in
/// force afterwards (`running` when the file is refused).
fn reload_config(
    node: &Node,
    invocation: &Invocation,
    running: Vec<Setting>,
    path: &std::path::Path,
) -> Vec<Setting> {
    let refused = |reason: &dyn std::fmt::Display| {
        tracing::error!(
            "reload of {} refused, configuration unchanged: {reason}",
            path.display()
        );
    };
    let parsed = match invocation.parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            refused(&e);
            return running;
        }
    };
    let Command::Serve(args) = parsed.cli.command else {
        unreachable!("the same command line parses to the same subcommand");
    };
    let config = match args.node_config() {
        Ok(config) => config,
        Err(e) => {
            refused(&e);
            return running;
        }
    };
    let logs = match crate::logging::prepare(args.log.as_deref(), parsed.cli.log_format) {
        Ok(logs) => logs,
        Err(e) => {
            refused(&e);
            return running;
        }
    };
    // Said before it is done, so that the lines come out under the filter they talk about.
    reload::log(&reload::changes(&running, &parsed.settings, &LIVE), path);
    if let Err(e) = logs.apply() {
        tracing::error!("{e:#}");
    }
    node.reconfigure(Live::of(&config));
    reload::applied(&running, &parsed.settings, &LIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn live(args: &[&str]) -> Live {
        let serve = Serve::parse_from(std::iter::once("serve").chain(args.iter().copied()));
        Live::of(&serve.args.node_config().unwrap())
    }

    #[test]
    fn every_live_key_changes_the_live_settings_or_the_logs() {
        let defaults = live(&[]);
        let options: Vec<String> = crate::config::effective(
            &Serve::command(),
            &Serve::command().get_matches_from(["serve"]),
        )
        .into_iter()
        .map(|s| s.key)
        .collect();
        for key in LIVE {
            assert!(
                options.iter().any(|o| o == key) || key == "log-format",
                "{key} is not an option"
            );
            let changed = match key {
                "log" | "log-format" => continue,
                "max-connections" | "max-output" | "max-unacked" | "max-nodes" => {
                    live(&[&format!("--{key}"), "7"])
                }
                "max-buffer-memory" => live(&["--max-buffer-memory", "7MiB"]),
                "udp-allow" => live(&["--udp-allow", "10.0.0.0/8"]),
                "auth-window" => {
                    // The window is the node's only with agent keys.
                    let keys = tempfile::NamedTempFile::new().unwrap();
                    std::fs::write(keys.path(), "\"ws-1\" = \"secret\"\n").unwrap();
                    let path = keys.path().to_str().unwrap();
                    assert_ne!(
                        live(&["--agent-keys", path, "--auth-window", "1234ms"]),
                        live(&["--agent-keys", path]),
                        "auth-window changes nothing live"
                    );
                    continue;
                }
                _ => live(&[&format!("--{key}"), "1234ms"]),
            };
            assert_ne!(changed, defaults, "{key} changes nothing live");
        }
        assert_eq!(
            live(&["--backlog", "7"]),
            defaults,
            "backlog needs a restart"
        );
    }
}
