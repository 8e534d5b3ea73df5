//! The store's command-line options: how to reach the NATS servers (shared by `avpd serve`
//! and `avpd history`) and, for `serve`, what to create there and when to acknowledge.

use anyhow::bail;
use avpd_node::store::{AckAfter, StoreSettings};
use avpd_store::{Auth, StoreConfig, Tls};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the store.
#[derive(Debug, Args)]
pub struct StoreConnArgs {
    /// NATS server with JetStream, repeatable for a cluster: nats://HOST:PORT (tls://HOST:PORT
    /// for TLS).
    #[arg(long = "store", value_name = "URL")]
    pub servers: Vec<String>,
    /// User name for the NATS servers (with --store-password).
    #[arg(long, requires = "store_password")]
    pub store_user: Option<String>,
    /// Password for --store-user.
    #[arg(long, env = "AVPD_STORE_PASSWORD", hide_env_values = true)]
    pub store_password: Option<String>,
    /// Token for the NATS servers.
    #[arg(long, env = "AVPD_STORE_TOKEN", hide_env_values = true,
          conflicts_with_all = ["store_user", "store_creds"])]
    pub store_token: Option<String>,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, value_name = "FILE", conflicts_with = "store_user")]
    pub store_creds: Option<PathBuf>,
    /// CA certificate (PEM) to trust for the NATS servers' TLS.
    #[arg(long, value_name = "FILE")]
    pub store_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for the NATS servers' TLS (with --store-tls-key).
    #[arg(long, value_name = "FILE", requires = "store_tls_key")]
    pub store_tls_cert: Option<PathBuf>,
    /// Key (PEM) of --store-tls-cert.
    #[arg(long, value_name = "FILE", requires = "store_tls_cert")]
    pub store_tls_key: Option<PathBuf>,
    /// Name of the stream of reports.
    #[arg(long, default_value = "AVP_REPORTS", value_name = "NAME")]
    pub store_stream: String,
    /// Name of the key-value bucket of the latest report of every node.
    #[arg(long, default_value = "AVP_LATEST", value_name = "NAME")]
    pub store_latest: String,
}

impl StoreConnArgs {
    /// The store configuration for these options, as `collector`; `None` without `--store`.
    pub fn config(&self, collector: String) -> anyhow::Result<Option<StoreConfig>> {
        if self.servers.is_empty() {
            if self.store_user.is_some() || self.store_token.is_some() || self.store_creds.is_some()
            {
                bail!("store credentials given without --store");
            }
            return Ok(None);
        }
        let auth = match (&self.store_user, &self.store_token, &self.store_creds) {
            (Some(user), _, _) => Auth::UserPassword {
                user: user.clone(),
                password: self.store_password.clone().unwrap_or_default(),
            },
            (None, Some(token), _) => Auth::Token(token.clone()),
            (None, None, Some(creds)) => Auth::Creds(creds.clone()),
            (None, None, None) => Auth::None,
        };
        let tls = match (
            &self.store_tls_ca,
            &self.store_tls_cert,
            &self.store_tls_key,
        ) {
            (None, None, _) => None,
            (ca, cert, key) => Some(Tls {
                ca: ca.clone(),
                client: cert.clone().zip(key.clone()),
            }),
        };
        Ok(Some(StoreConfig {
            auth,
            tls,
            stream: self.store_stream.clone(),
            latest_bucket: self.store_latest.clone(),
            ..StoreConfig::new(self.servers.clone(), collector)
        }))
    }
}

/// What an acknowledgement promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckAfterArg {
    /// The report is stored in JetStream.
    Stored,
    /// The report was received and queued for the store.
    Received,
}

/// `avpd serve`'s store options.
#[derive(Debug, Args)]
pub struct ServeStoreArgs {
    #[command(flatten)]
    pub conn: StoreConnArgs,
    /// When a report is acknowledged: once JetStream stored it, or once it was received
    /// [default with --store: stored].
    #[arg(long, value_enum, requires = "servers")]
    pub ack_after: Option<AckAfterArg>,
    /// Copies of the stream in a JetStream cluster.
    #[arg(long, default_value_t = 1, requires = "servers")]
    pub store_replicas: usize,
    /// How long reports are kept in the stream.
    #[arg(long, default_value = "7d", value_parser = avp_units::parse_duration)]
    pub store_retention: Duration,
    /// Most bytes the stream keeps; the oldest reports go first.
    #[arg(long, default_value = "10GiB", value_parser = avp_units::parse_size)]
    pub store_max_bytes: u64,
    /// How long the stream remembers report ids to drop a resend that races its first copy
    /// (resends after it are caught by the per-instance SEQUENCE watermark).
    #[arg(long, default_value = "2m", value_parser = avp_units::parse_duration)]
    pub store_dedup_window: Duration,
    /// Most bytes of reports held for the store (queued or in flight); past it, reports are
    /// answered 503 and agents send them again later.
    #[arg(long, default_value = "256MiB", value_parser = avp_units::parse_size)]
    pub store_buffer: u64,
    /// How long start-up waits for a NATS server to answer.
    #[arg(long, default_value = "10s", value_parser = avp_units::parse_duration)]
    pub store_connect_timeout: Duration,
    /// This node's id in every stored report and in the bucket (1 to 255 bytes, no control
    /// character) [default: the host name].
    #[arg(long, value_parser = parse_collector_id)]
    pub collector_id: Option<String>,
}

/// `--collector-id`: what a stored report's envelope can carry.
fn parse_collector_id(id: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err("1 to 255 bytes without control characters".into());
    }
    Ok(id.to_string())
}

impl ServeStoreArgs {
    /// The node's store settings; `None` without `--store`.
    pub fn settings(&self) -> anyhow::Result<Option<StoreSettings>> {
        let collector = self
            .collector_id
            .clone()
            .unwrap_or_else(avpd_agent::sampler::host_name);
        let Some(config) = self.conn.config(collector)? else {
            return Ok(None);
        };
        if self.store_replicas == 0 {
            bail!("--store-replicas must be at least 1");
        }
        let ack_after = match self.ack_after.unwrap_or(AckAfterArg::Stored) {
            AckAfterArg::Stored => AckAfter::Stored,
            AckAfterArg::Received => AckAfter::Received,
        };
        Ok(Some(StoreSettings {
            config: StoreConfig {
                replicas: self.store_replicas,
                max_age: self.store_retention,
                max_bytes: self.store_max_bytes,
                duplicate_window: self.store_dedup_window,
                buffer: usize::try_from(self.store_buffer).unwrap_or(usize::MAX),
                connect_timeout: self.store_connect_timeout,
                ..config
            },
            ack_after,
        }))
    }
}
