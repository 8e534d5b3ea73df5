//! `avpd serve`: command-line options, logging, signals, and running a [`Node`] until told to
//! stop.

use crate::store_args::ServeStoreArgs;
use anyhow::Context as _;
use avp_endpoint::Endpoint;
use avpd_node::admin::AdminConfig;
use avpd_node::auth::AgentKeys;
use avpd_node::fleet::FleetRules;
use avpd_node::{Config, Node};
use clap::Args;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Command-line options of `avpd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data-plane endpoint, repeatable: tcp://, udp:// or json+tcp://HOST:PORT.
    /// [default: tcp://127.0.0.1:7700, udp://127.0.0.1:7700, json+tcp://127.0.0.1:7703]
    #[arg(long = "listen", value_name = "URL")]
    pub listen: Vec<Endpoint>,
    /// Management-plane endpoint for terminals, repeatable: tcp:// or json+tcp://.
    /// [default: tcp://127.0.0.1:7701]
    #[arg(long = "admin", value_name = "URL")]
    pub admin: Vec<Endpoint>,
    /// Run without a management plane.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
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
    /// Unsent output (bytes) at which a peer stops being read until it drains.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_output: usize,
    /// Take UDP datagrams only from this source range (CIDR, e.g. 10.0.0.0/8, or one
    /// address); repeatable. Others are dropped unanswered and counted.
    #[arg(long, value_name = "CIDR")]
    pub udp_allow: Vec<avpd_node::allow::Cidr>,
    /// Input and output buffered by all connections of the node together, e.g. 256MiB: near
    /// it the largest holders stop being read, over it peers that read nothing are closed.
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
        let admin_listen = match (self.no_admin, self.admin.is_empty()) {
            (true, _) => Vec::new(),
            (false, true) => admin_defaults.listen,
            (false, false) => self.admin,
        };
        Ok(Config {
            listen: if self.listen.is_empty() {
                defaults.listen
            } else {
                self.listen
            },
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
                slow_peer_timeout: self.slow_peer_timeout,
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
        })
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
