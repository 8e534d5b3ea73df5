//! The store of an avpd node: every accepted report goes to a NATS JetStream stream, and the
//! latest report of every node to a key-value bucket that every node of the fleet watches.
//!
//! The store runs async-nats on one thread of its own with a current-thread tokio runtime.
//! Workers never block or await: each holds a [`WorkerStore`], appends the reports it accepts
//! to a batch ([`WorkerStore::add`]), hands the batch over once per event-loop round
//! ([`WorkerStore::flush`]) over a crossbeam channel that wakes the store's task, and learns
//! which of its reports are stored from [`WorkerStore::confirmed`], another crossbeam channel
//! (the store thread wakes it when there is news).
//!
//! - [`subject`]: node ids as subject tokens, and the subjects of reports; [`envelope`]:
//!   the stored record's layout.
//! - `setup`: the connection, and the stream and bucket made ready (or refused with what
//!   to change); `pipeline`: the store thread's publish, confirm and watch loop.
//! - [`budget`]: the bound on the bytes held for the store (`--store-buffer`).
//! - [`history`]: reading stored reports back (`avpd history`).
//!
//! What makes a report stored once: a report that carries INSTANCE is identified by (NODE_ID,
//! INSTANCE, SEQUENCE). The store thread keeps, per node and instance, the highest SEQUENCE
//! stored (learnt on first sight from the last stored report of that node) and stores a report
//! whose SEQUENCE is not above it as already stored; the stream's duplicate window (the
//! message id `SUBJECT:INSTANCE:SEQUENCE`) covers a resend racing its first copy from another
//! node.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
mod channel;
pub mod commands;
pub mod envelope;
pub mod history;
mod pipeline;
mod setup;
pub mod subject;
mod thread;

pub use thread::{Store, WorkerStore};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach the store and what to create in it.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// NATS server URLs (`nats://HOST:PORT`); several for a cluster.
    pub servers: Vec<String>,
    /// How to authenticate.
    pub auth: Auth,
    /// TLS, when the servers require it.
    pub tls: Option<Tls>,
    /// Name of the stream of reports.
    pub stream: String,
    /// Name of the key-value bucket of latest reports.
    pub latest_bucket: String,
    /// Copies of each stream in a cluster.
    pub replicas: usize,
    /// Reports older than this are removed from the stream.
    pub max_age: Duration,
    /// The stream's bound in bytes; the oldest reports go first.
    pub max_bytes: u64,
    /// How long the stream remembers message ids to drop a duplicate.
    pub duplicate_window: Duration,
    /// This node's collector id, stored with every report.
    pub collector: String,
    /// Bytes of reports held for the store at most (queued or in flight).
    pub buffer: usize,
    /// How long the first connection may take before the node gives up starting.
    pub connect_timeout: Duration,
}

impl StoreConfig {
    /// The documented defaults for `servers`, as `collector`.
    pub fn new(servers: Vec<String>, collector: String) -> StoreConfig {
        StoreConfig {
            servers,
            auth: Auth::None,
            tls: None,
            stream: "AVP_REPORTS".into(),
            latest_bucket: "AVP_LATEST".into(),
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 10 << 30,
            duplicate_window: Duration::from_secs(120),
            collector,
            buffer: 256 << 20,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// How the node authenticates to the NATS servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    None,
    /// A user name and a password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
    /// A NATS credentials file (JWT and NKey seed).
    Creds(PathBuf),
}

/// TLS towards the NATS servers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// A CA certificate (PEM) to trust besides the system's.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), when the servers ask for one.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Why the store could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// No server answered within the connect timeout.
    Connect {
        /// The servers tried.
        servers: Vec<String>,
        /// What the client said.
        reason: String,
    },
    /// The stream or bucket exists with a setting avpd cannot work with.
    Incompatible {
        /// The stream or bucket.
        name: String,
        /// The setting.
        setting: &'static str,
        /// What avpd needs.
        needs: String,
        /// What the stream has.
        found: String,
    },
    /// The server refused to create or update the stream or bucket.
    Setup {
        /// What was being done.
        what: String,
        /// What the server said.
        reason: String,
    },
    /// The store's thread could not start.
    Thread(std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Connect { servers, reason } => write!(
                f,
                "store unavailable: no NATS server of {} answered: {reason}",
                servers.join(", ")
            ),
            StoreError::Incompatible {
                name,
                setting,
                needs,
                found,
            } => write!(
                f,
                "{name} exists with {setting} {found}; avpd needs {setting} {needs} \
                 (change it, or give another name with --store-stream / --store-latest)"
            ),
            StoreError::Setup { what, reason } => write!(f, "cannot {what}: {reason}"),
            StoreError::Thread(e) => write!(f, "cannot start the store thread: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The latest report of one node, as the bucket of latest reports holds it (a JSON value
/// under the node's token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LatestRow {
    /// The node id.
    pub node: String,
    /// CPU usage, percent.
    pub cpu: u8,
    /// Memory usage, percent.
    pub mem: u8,
    /// When the sample was taken (or received, when the report had no TIMESTAMP), ms since
    /// the Unix epoch.
    pub ts: u64,
    /// When its collector received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// The collector that received it.
    pub collector: String,
}

/// What the store thread reports of itself, read by the status line and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStatus {
    /// True while a server is connected.
    pub connected: bool,
    /// Bytes held for the store now.
    pub buffered: usize,
    /// The bound on them.
    pub buffer_limit: usize,
    /// Reports stored since start.
    pub stored: u64,
    /// Reports found already stored (resends) and not stored again.
    pub duplicates: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
}
