//! The management plane: admin listeners whose connections receive the fleet view.
//!
//! It is one worker whose listeners push: every report interval it merges the batches that
//! arrived on its channel into its [`crate::fleet::FleetView`] and pushes to every connection
//! that is not paused and not too far behind on acks first every row, then the rows that
//! changed since that connection last got them. The node feeds it from its data-plane workers
//! (and the store's bucket); `avpd agent --listen` feeds it the agent's own samples.

use crate::error::{bind_error, resolve, StartError};
use crate::fleet::{FleetRules, NodeReport};
use crate::net::budget::Totals;
use crate::net::listen::bind_tcp;
use crate::observe::FleetTap;
use crate::relay::Relayer;
use crate::security::endpoint_tls;
use crate::worker::{Limits, Links, Pusher, TcpEntry, Worker};
use crate::Threads;
use avp_endpoint::{Endpoint, Scheme};
use avp_proto::server::{Role, ServerConfig};
use avp_tls::ServerTls;
use crossbeam_channel::Receiver;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of a management plane.
pub struct AdminConfig {
    /// Where terminals connect (`tcp://`, `json+tcp://` or `tls://`).
    pub listen: Vec<Endpoint>,
    /// Time between two pushes of the fleet view.
    pub report_interval: Duration,
    /// Unacknowledged pushes at which a terminal is not pushed more until it catches up.
    pub max_unacked: usize,
    /// Most terminals connected at once.
    pub max_connections: usize,
    /// Unsent output at which a terminal stops being read.
    pub max_output: usize,
    /// Terminals silent for this long are closed.
    pub idle_timeout: Duration,
    /// Terminals that leave pushes unacknowledged this long are closed.
    pub ack_timeout: Duration,
    /// A frame must be complete this long after its first bytes arrived.
    pub frame_timeout: Duration,
    /// How the view's rows age, and how many it holds.
    pub fleet: FleetRules,
    /// Terminals whose unsent output stays at its bound this long are closed.
    pub slow_peer_timeout: Duration,
    /// Listen backlog.
    pub backlog: i32,
    /// Certificate, key and client CA of the `tls://` endpoints.
    pub tls: Option<ServerTls>,
    /// Protected mode off: a node may bind a management endpoint that other hosts can reach
    /// without TLS client authentication (see [`Node::start`](crate::Node::start)).
    pub insecure: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: vec!["tcp://127.0.0.1:7701".parse().expect("valid default")],
            report_interval: Duration::from_secs(1),
            max_unacked: 65_536,
            max_connections: 1024,
            max_output: 1 << 20,
            idle_timeout: Duration::from_secs(300),
            ack_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(10),
            fleet: FleetRules::default(),
            slow_peer_timeout: Duration::from_secs(10),
            backlog: 128,
            tls: None,
            insecure: false,
        }
    }
}

/// A running management plane; stops when dropped.
pub struct AdminPlane {
    bound: Vec<Endpoint>,
    threads: Threads,
}

impl AdminPlane {
    /// Binds the admin listeners and starts pushing the view fed by `updates`; in protected
    /// mode (not `config.insecure`) only loopback or client-authenticated TLS endpoints.
    pub fn start(
        config: AdminConfig,
        updates: Receiver<Vec<NodeReport>>,
    ) -> Result<AdminPlane, StartError> {
        crate::security::check_protected(&config)?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut threads = Threads::new(shutdown.clone());
        let bound = spawn(
            config,
            updates,
            Links {
                fleet: None,
                store: None,
                relay: None,
                status: None,
                shutdown,
                live: None,
            },
            None,
            None,
            // A plane of its own: a budget of its own, the node's default.
            (Arc::default(), 256 << 20),
            &mut threads,
        )?;
        Ok(AdminPlane { bound, threads })
    }

    /// The bound address of the first admin listener with `scheme`.
    pub fn local_addr(&self, scheme: Scheme) -> Option<SocketAddr> {
        first_addr(&self.bound, scheme)
    }

    /// Every listener, as bound (port 0 replaced by the port the system chose).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.bound
    }

    /// Stops pushing, sends what is owed, closes the connections and waits for the thread.
    pub fn shutdown(mut self) {
        self.threads.stop();
    }
}

/// Binds the admin listeners and starts the management-plane worker on `threads`, relaying
/// terminals' fleet commands through `relayer` when given and its view's figures recorded by
/// `tap` when there is one, its buffers counted in the node's budget (`buffered`, within
/// `max_buffer_memory`); returns the bound endpoints.
pub(super) fn spawn(
    config: AdminConfig,
    updates: Receiver<Vec<NodeReport>>,
    links: Links,
    relayer: Option<Relayer>,
    tap: Option<FleetTap>,
    (buffered, max_buffer_memory): (Arc<Totals>, usize),
    threads: &mut Threads,
) -> Result<Vec<Endpoint>, StartError> {
    let mut tcp = Vec::new();
    let mut bound = Vec::new();
    for endpoint in &config.listen {
        if endpoint.scheme == Scheme::Udp {
            return Err(StartError::AdminScheme(endpoint.clone()));
        }
        let tls = endpoint_tls(endpoint, config.tls.as_ref())?;
        let addr = resolve(endpoint)?;
        let mut listeners = bind_tcp(addr, 1, config.backlog).map_err(bind_error(endpoint))?;
        let listener = listeners
            .pop()
            .expect("bind_tcp returns one listener per count");
        let local = Endpoint::new(endpoint.scheme, listener.local_addr()?);
        tracing::info!("listening on {local} (admin)");
        bound.push(local);
        tcp.push(TcpEntry {
            listener,
            session: Arc::new(ServerConfig {
                idle_timeout: config.idle_timeout,
                frame_timeout: config.frame_timeout,
                ack_timeout: config.ack_timeout,
                max_unacked: config.max_unacked,
                slow_peer_timeout: config.slow_peer_timeout,
                ..ServerConfig::new(endpoint.scheme.codec(), Role::Management, Instant::now())
            }),
            tls,
        });
    }
    let limits = Limits {
        max_output: config.max_output,
        max_connections: config.max_connections,
        open: Arc::new(AtomicUsize::new(0)),
        max_fleet_nodes: config.fleet.max_nodes,
        buffered,
        max_buffer_memory,
    };
    let pusher = Pusher {
        updates,
        interval: config.report_interval,
        rules: config.fleet,
        relayer,
        tap,
    };
    let id = threads.len();
    let (worker, waker) = Worker::new(id, tcp, limits, links, Some(pusher))?;
    threads.spawn("avpd-admin", waker, move || worker.run())?;
    Ok(bound)
}

/// The address of the first endpoint with `scheme`.
pub(super) fn first_addr(bound: &[Endpoint], scheme: Scheme) -> Option<SocketAddr> {
    bound
        .iter()
        .find(|e| e.scheme == scheme)
        .and_then(|e| e.authority.parse().ok())
}
