//! The collector node: data-plane workers, the management plane, the status reporter, and
//! graceful shutdown.
//!
//! [`Node::start`] binds every listener (one socket per worker per endpoint, sharing the port
//! through SO_REUSEPORT), starts one thread per worker (TCP), one per UDP socket, the
//! management plane ([`admin`]) and the status reporter, and returns at once; with a store
//! configured it first connects to it ([`store`]), and fails to start when the store does not
//! answer. [`Node::shutdown`] (or dropping the node) stops accepting, sends the answers
//! already owed, hands what the store still holds to it, and joins every thread within a few
//! seconds.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod allow;
pub mod auth;
mod error;
pub mod fleet;
mod intake;
pub mod live;
mod loglimit;
mod net;
pub mod observe;
mod relay;
mod security;
pub mod stats;
pub mod status;
pub mod store;
mod timers;
mod udp;
mod worker;

use crate::net::listen::{bind_tcp, bind_udp};
use admin::AdminConfig;
use auth::AgentKeys;
use avp_endpoint::{Endpoint, Scheme};
use avp_proto::result_code;
use avp_proto::server::{Role, ServerConfig};
use avpd_store::commands::OnCommand;
use avpd_store::{LatestRow, Store, StoreStatus};
use crossbeam_channel::{bounded, TrySendError};
pub use error::StartError;
use error::{bind_error, resolve};
use fleet::NodeReport;
use live::{Live, LiveWatch};
use net::budget::Totals;
use observe::{FleetFiguresConfig, Observer};
use relay::{AgentRegistry, RelayRequest, Relayer};
use stats::{Counters, WorkerSnapshot};
use status::{StatusHook, StatusReporter};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use store::StoreSettings;
use udp::UdpWorker;
use worker::{Limits, Links, RelaySide, TcpEntry, Worker};

/// Settings of a node. [`Config::default`] gives the documented defaults.
pub struct Config {
    /// Data-plane endpoints (`tcp://`, `udp://`, `json+tcp://`, `tls://`).
    pub listen: Vec<Endpoint>,
    /// Certificate, key and client CA of the data plane's `tls://` endpoints.
    pub tls: Option<avp_tls::ServerTls>,
    /// The management plane; `admin.listen` empty means none. When embedding a node (tests,
    /// `avp-loadgen --embedded`), use port 0 or no admin endpoint.
    pub admin: AdminConfig,
    /// Data-plane worker threads.
    pub workers: usize,
    /// Listen backlog of every TCP listener.
    pub backlog: i32,
    /// Most data-plane connections open at once; further ones are refused and counted.
    pub max_connections: usize,
    /// Data-plane connections silent for this long are closed.
    pub idle_timeout: Duration,
    /// A frame must be complete this long after its first bytes arrived.
    pub frame_timeout: Duration,
    /// A connection whose unsent output stays at `max_output` this long is closed.
    pub slow_peer_timeout: Duration,
    /// Unsent output at which a connection stops being read.
    pub max_output: usize,
    /// Bytes of input and output buffers all connections of the node (both planes) may hold
    /// together; near it the largest holders stop being read.
    pub max_buffer_memory: usize,
    /// Receive buffer asked of the kernel for each UDP socket.
    pub udp_buffer: usize,
    /// The only sources UDP datagrams are taken from; empty takes them from anywhere.
    pub udp_allow: Vec<allow::Cidr>,
    /// Time between two status log lines.
    pub status_interval: Duration,
    /// Where accepted reports are stored, if anywhere.
    pub store: Option<StoreSettings>,
    /// The keys data-plane reports must be signed with; `None` takes reports unsigned.
    pub agent_keys: Option<Arc<AgentKeys>>,
    /// The fleet view's figures the [`Observer`] keeps, if any (they need a management
    /// plane).
    pub fleet_figures: Option<FleetFiguresConfig>,
    /// Called with every status line after it is logged.
    pub on_status: Option<StatusHook>,
}

impl Default for Config {
    fn default() -> Self {
        let parse = |s: &str| s.parse::<Endpoint>().expect("valid default endpoint");
        Config {
            listen: vec![
                parse("tcp://127.0.0.1:7700"),
                parse("udp://127.0.0.1:7700"),
                parse("json+tcp://127.0.0.1:7703"),
            ],
            admin: AdminConfig::default(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backlog: 4096,
            max_connections: 100_000,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(10),
            slow_peer_timeout: Duration::from_secs(10),
            max_output: 1 << 20,
            max_buffer_memory: 256 << 20,
            udp_buffer: 4 << 20,
            udp_allow: Vec::new(),
            status_interval: Duration::from_secs(10),
            store: None,
            agent_keys: None,
            fleet_figures: None,
            on_status: None,
            tls: None,
        }
    }
}

/// A running node; stops gracefully when dropped.
pub struct Node {
    data: Vec<Endpoint>,
    admin: Vec<Endpoint>,
    threads: Threads,
    store: Option<Arc<Store>>,
    /// The workers' counters summed, as of their latest snapshots.
    totals: Arc<Mutex<Counters>>,
    /// Bytes of buffers held over all workers, as each last published.
    buffered: Arc<Totals>,
    live: LiveWatch,
    observer: Observer,
}

/// How long a stopping node waits for the store to take what it still holds.
pub const STORE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

impl Node {
    /// Binds every listener and starts the worker threads.
    ///
    /// Fails before binding anything when a `tls://` endpoint has no certificate, or (protected
    /// mode) when a management endpoint is reachable from other hosts without TLS client
    /// authentication and [`AdminConfig::insecure`] is not set.
    pub fn start(config: Config) -> Result<Node, StartError> {
        for endpoint in &config.listen {
            security::endpoint_tls(endpoint, config.tls.as_ref())?;
        }
        security::check_protected(&config.admin)?;
        raise_fd_limit();
        let workers = config.workers.max(1);
        let epoch = Instant::now();
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Threads::new(shutdown.clone());
        let (status_tx, status_rx) = bounded::<WorkerSnapshot>(1024);
        let (fleet_tx, fleet_rx) = bounded(4096);
        let has_admin = !config.admin.listen.is_empty();
        // The store takes other nodes' commands for this node's agents before the workers
        // that hold them exist: it finds them through this once they do.
        let local_relayer: Arc<OnceLock<Relayer>> = Arc::default();
        let live = LiveWatch::new(Live::of(&config));
        let observer = Observer::new(config.max_buffer_memory);
        let store = match config.store {
            Some(settings) => {
                let fleet = has_admin.then(|| fleet_tx.clone());
                let mut rows = BucketRows {
                    own: settings.config.collector.clone(),
                    collectors: Default::default(),
                };
                // Rows the management plane's channel had no room for, the latest per node:
                // sent with the next tick's, so that none is lost and none waits for ever.
                let mut unsent: HashMap<String, NodeReport> = HashMap::new();
                let on_latest = Box::new(move |batch: Vec<LatestRow>| {
                    let Some(tx) = &fleet else { return };
                    for row in batch {
                        let report = rows.node_report(row);
                        unsent.insert(report.node.clone(), report);
                    }
                    if unsent.is_empty() {
                        return;
                    }
                    let batch: Vec<NodeReport> = unsent.drain().map(|(_, r)| r).collect();
                    if let Err(TrySendError::Full(back)) = tx.try_send(batch) {
                        unsent.extend(back.into_iter().map(|r| (r.node.clone(), r)));
                    }
                });
                let relayer = local_relayer.clone();
                let on_command: OnCommand = Box::new(move |node, action, reply| {
                    let request = RelayRequest {
                        node: node.into(),
                        key: 0,
                        action,
                        reply,
                    };
                    match relayer.get() {
                        Some(r) => r.relay(request, None),
                        None => {
                            (request.reply)(result_code::OVERLOADED, "the node is starting".into())
                        }
                    }
                });
                let store = Store::start(settings.config, on_latest, Some(on_command))
                    .map_err(StartError::Store)?;
                Some((Arc::new(store), settings.ack_after))
            }
            None => None,
        };

        let mut tcp: Vec<Vec<TcpEntry>> = (0..workers).map(|_| Vec::new()).collect();
        let mut udp: Vec<std::net::UdpSocket> = Vec::new();
        let mut data = Vec::new();
        for endpoint in &config.listen {
            let addr = resolve(endpoint)?;
            let bound = if endpoint.scheme == Scheme::Udp {
                let sockets =
                    bind_udp(addr, workers, config.udp_buffer).map_err(bind_error(endpoint))?;
                let local = sockets[0].local_addr()?;
                udp.extend(sockets);
                local
            } else {
                let tls = security::endpoint_tls(endpoint, config.tls.as_ref())?;
                let listeners =
                    bind_tcp(addr, workers, config.backlog).map_err(bind_error(endpoint))?;
                let local = listeners[0].local_addr()?;
                let session = Arc::new(ServerConfig {
                    idle_timeout: config.idle_timeout,
                    frame_timeout: config.frame_timeout,
                    slow_peer_timeout: config.slow_peer_timeout,
                    ..ServerConfig::new(endpoint.scheme.codec(), Role::Data, epoch)
                });
                for (w, listener) in listeners.into_iter().enumerate() {
                    tcp[w].push(TcpEntry {
                        listener,
                        session: session.clone(),
                        tls: tls.clone(),
                    });
                }
                local
            };
            let local = Endpoint::new(endpoint.scheme, bound);
            tracing::info!("listening on {local} (data)");
            data.push(local);
        }

        let buffered = Arc::new(Totals::default());
        let limits = Limits {
            max_output: config.max_output,
            max_connections: config.max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            max_fleet_nodes: config.admin.fleet.max_nodes,
            buffered: buffered.clone(),
            max_buffer_memory: config.max_buffer_memory,
        };
        let registry = AgentRegistry::default();
        let mut relay_to = Vec::new();
        for (id, tcp) in tcp.into_iter().enumerate() {
            let (relay_tx, relay_rx) = crossbeam_channel::unbounded();
            let links = Links {
                fleet: has_admin.then(|| fleet_tx.clone()),
                store: store.clone(),
                relay: (has_admin || store.is_some())
                    .then(|| RelaySide::new(relay_rx, registry.clone())),
                status: Some(status_tx.clone()),
                shutdown: shutdown.clone(),
                live: Some(live.clone()),
            };
            let (mut worker, waker) = Worker::new(id, tcp, limits.clone(), links, None)?;
            if let Some(keys) = &config.agent_keys {
                worker = worker.verify_with(keys.clone());
            }
            relay_to.push((relay_tx, waker.clone()));
            threads.spawn(&format!("avpd-worker-{id}"), waker, move || worker.run())?;
        }
        let relayer = Relayer::new(registry, relay_to);
        let _ = local_relayer.set(relayer.clone());
        let relayer = match &store {
            Some((s, _)) => relayer.with_remote(s.clone()),
            None => relayer,
        };
        for (i, socket) in udp.into_iter().enumerate() {
            let id = workers + i;
            let mut worker = UdpWorker::new(
                id,
                socket,
                has_admin.then(|| fleet_tx.clone()),
                store.as_ref().map(|(s, ack)| (&**s, *ack)),
                config.admin.fleet.max_nodes,
                status_tx.clone(),
                shutdown.clone(),
            )?;
            if let Some(keys) = &config.agent_keys {
                worker = worker.verify_with(keys.clone());
            }
            worker = worker
                .allow_only(config.udp_allow.as_slice().into())
                .watch(live.clone());
            threads.spawn_plain(&format!("avpd-udp-{i}"), move || worker.run())?;
        }
        drop(fleet_tx);
        let admin = if has_admin {
            let links = Links {
                fleet: None,
                store: None,
                relay: None,
                status: Some(status_tx.clone()),
                shutdown: shutdown.clone(),
                live: Some(live.clone()),
            };
            let budget = (buffered.clone(), config.max_buffer_memory);
            let tap = config.fleet_figures.map(|f| observer.fleet_tap(f));
            admin::spawn(
                config.admin,
                fleet_rx,
                links,
                Some(relayer),
                tap,
                budget,
                &mut threads,
            )?
        } else {
            Vec::new()
        };
        drop(status_tx);
        let interval = config.status_interval;
        let store = store.map(|(s, _)| s);
        let keys = config.agent_keys.clone();
        let totals = Arc::new(Mutex::new(Counters::default()));
        let reporter = StatusReporter {
            snapshots: status_rx,
            live: live.clone(),
            store: store.clone(),
            observer: observer.clone(),
            hook: config.on_status,
            totals: totals.clone(),
            buffer_limit: config.max_buffer_memory,
            on_tick: Box::new(move || keys.iter().for_each(|k| k.poll())),
        };
        threads.spawn_plain("avpd-status", move || reporter.run(interval))?;
        Ok(Node {
            data,
            admin,
            threads,
            store,
            totals,
            buffered,
            live,
            observer,
        })
    }

    /// Every data-plane endpoint, with the ports bound.
    pub fn data_endpoints(&self) -> &[Endpoint] {
        &self.data
    }

    /// Every management-plane endpoint, with the ports bound.
    pub fn admin_endpoints(&self) -> &[Endpoint] {
        &self.admin
    }

    /// Applies `live` to the running node: within a worker tick every thread takes its part
    /// (see [`live`]); connections already open keep their timeouts.
    pub fn reconfigure(&self, live: Live) {
        self.live.publish(live);
    }

    /// The node's latest figures, for exporters.
    pub fn observer(&self) -> Observer {
        self.observer.clone()
    }

    /// The bound address of the first data-plane endpoint with `scheme`.
    pub fn local_addr(&self, scheme: Scheme) -> Option<SocketAddr> {
        admin::first_addr(&self.data, scheme)
    }

    /// The bound address of the first management-plane endpoint with `scheme`.
    pub fn admin_addr(&self, scheme: Scheme) -> Option<SocketAddr> {
        admin::first_addr(&self.admin, scheme)
    }

    /// Every worker's counters summed, as of the snapshots they last sent (each worker sends
    /// one at every tick of its timers).
    pub fn counters(&self) -> Counters {
        *self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of input and output buffers the node's connections hold, as every worker last
    /// published it (once per event-loop round).
    pub fn buffered(&self) -> usize {
        self.buffered.held.load(Ordering::Relaxed)
    }

    /// The most [`Node::buffered`] has been since start.
    pub fn buffered_peak(&self) -> usize {
        self.buffered.peak.load(Ordering::Relaxed)
    }

    /// What the store reports of itself now, when the node stores reports.
    pub fn store_status(&self) -> Option<StoreStatus> {
        self.store.as_ref().map(|s| s.status())
    }

    /// Stops accepting, sends the answers already owed, closes every connection, waits for
    /// all threads, and gives the store [`STORE_DRAIN_LIMIT`] to take what it still holds.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.threads.stop();
        if let Some(store) = self.store.take() {
            match Arc::try_unwrap(store) {
                Ok(store) => store.shutdown(STORE_DRAIN_LIMIT),
                Err(_) => tracing::error!("the store is still in use after the workers stopped"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turns the bucket's rows into the fleet view's reports, naming the collector of the rows
/// another node received (one shared name per collector).
struct BucketRows {
    own: String,
    collectors: std::collections::HashMap<String, Arc<str>>,
}

impl BucketRows {
    fn node_report(&mut self, row: LatestRow) -> NodeReport {
        let collector = (row.collector != self.own).then(|| {
            self.collectors
                .entry(row.collector)
                .or_insert_with_key(|c| c.as_str().into())
                .clone()
        });
        NodeReport {
            node: row.node,
            cpu_percent: row.cpu,
            mem_percent: row.mem,
            timestamp_ms: row.ts,
            received_ms: row.received_ms,
            collector,
        }
    }
}

/// The threads of a node or plane, and how to stop them.
pub(crate) struct Threads {
    shutdown: Arc<AtomicBool>,
    wakers: Vec<Arc<mio::Waker>>,
    handles: Vec<JoinHandle<()>>,
}

impl Threads {
    fn new(shutdown: Arc<AtomicBool>) -> Self {
        Threads {
            shutdown,
            wakers: Vec::new(),
            handles: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.handles.len()
    }

    fn spawn(
        &mut self,
        name: &str,
        waker: Arc<mio::Waker>,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        self.wakers.push(waker);
        self.spawn_plain(name, f)
    }

    fn spawn_plain(
        &mut self,
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(f)?;
        self.handles.push(handle);
        Ok(())
    }

    fn stop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        for waker in &self.wakers {
            if let Err(e) = waker.wake() {
                tracing::warn!("cannot wake a worker for shutdown: {e}");
            }
        }
        for handle in self.handles.drain(..) {
            if handle.join().is_err() {
                tracing::error!("a node thread panicked");
            }
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raises the soft open-file limit to the hard limit, so thousands of connections fit.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!("open file limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
}
