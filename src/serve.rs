//! `avpd serve`: command-line options, logging, signals, and running a [`Node`] until told to
//! stop.

use crate::store_args::ServeStoreArgs;
use anyhow::{bail, Context as _};
use avp_endpoint::{Endpoint, Scheme};
use avp_tls::ServerTls;
use avpd_node::admin::AdminConfig;
use avpd_node::fleet::FleetRules;
use avpd_node::{Config, Node};
use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line options of `avpd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data-plane endpoint, repeatable: tcp://, udp://, json+tcp:// or tls://HOST:PORT.
    /// [default: tcp://127.0.0.1:7700, udp://127.0.0.1:7700, json+tcp://127.0.0.1:7703]
    #[arg(long = "listen", value_name = "URL")]
    pub listen: Vec<Endpoint>,
    /// Management-plane endpoint for terminals, repeatable: tcp://, json+tcp:// or tls://.
    /// Protected mode: an address other hosts can reach needs tls:// with --tls-client-ca,
    /// or --admin-insecure. [default: tcp://127.0.0.1:7701]
    #[arg(long = "admin", value_name = "URL")]
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
    /// Close a terminal that leaves pushed reports unacknowledged this long.
    #[arg(long, default_value = "30s", value_parser = avp_units::parse_duration)]
    pub ack_timeout: Duration,
    /// Unsent output (bytes) at which a peer stops being read until it drains.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_output: usize,
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
    /// A node silent this long shows as stale [default: three of its own report intervals,
    /// or 10s until its interval is known].
    #[arg(long, value_parser = avp_units::parse_duration)]
    pub stale_after: Option<Duration>,
    /// A node silent this long is removed from the fleet view.
    #[arg(long, default_value = "10m", value_parser = avp_units::parse_duration)]
    pub node_ttl: Duration,
    /// Most nodes the fleet view holds; reports of further nodes are refused and counted.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_nodes: usize,
    /// A report whose TIMESTAMP is further than this from the node's clock is flagged as
    /// clock skew.
    #[arg(long, default_value = "1m", value_parser = avp_units::parse_duration)]
    pub max_clock_skew: Duration,
    /// Log filter (overrides RUST_LOG), e.g. info, debug, avpd=trace.
    #[arg(long)]
    pub log: Option<String>,
    #[command(flatten)]
    pub store: ServeStoreArgs,
}

impl ServeArgs {
    /// The node configuration these options describe.
    pub fn config(self) -> anyhow::Result<Config> {
        let store = self.store.settings()?;
        let (tls, admin_tls) = self.tls()?;
        let defaults = Config::default();
        let admin_defaults = AdminConfig::default();
        let admin_listen = match (self.no_admin, self.admin.is_empty()) {
            (true, _) => Vec::new(),
            (false, true) => admin_defaults.listen,
            (false, false) => self.admin,
        };
        let listen = if self.listen.is_empty() {
            defaults.listen
        } else {
            self.listen
        };
        let any_tls = listen
            .iter()
            .chain(&admin_listen)
            .any(|e| e.scheme == Scheme::Tls);
        if tls.is_some() && !any_tls {
            bail!("--tls-cert is given, but no --listen or --admin endpoint is tls://");
        }
        Ok(Config {
            listen,
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
                ..admin_defaults
            },
            workers: self.workers.unwrap_or(defaults.workers),
            backlog: self.backlog,
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            frame_timeout: self.frame_timeout,
            max_output: self.max_output,
            udp_buffer: usize::try_from(self.udp_buffer).unwrap_or(usize::MAX),
            status_interval: self.status_interval,
            store,
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

/// Runs the collector node until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::logging::init(args.log.as_deref());
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let node = Node::start(args.config()?)?;
    if let Some(signal) = signals.forever().next() {
        tracing::info!("signal {signal} received: shutting down");
    }
    node.shutdown();
    tracing::info!("stopped");
    Ok(())
}
