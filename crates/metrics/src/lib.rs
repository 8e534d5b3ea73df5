//! The node's Prometheus endpoint: `/metrics`, `/healthz` and `/readyz` over HTTP/1.1 on a
//! thread of its own.
//!
//! - `/metrics`: the node's families ([`collect`]) and `avpd_build_info`, in OpenMetrics text
//!   when the Accept header asks for it (as Prometheus does), else in the classic text format
//!   0.0.4 (curl, promtool); both encoded by `prometheus-client`.
//! - `/healthz`: 200 while the endpoint's thread runs.
//! - `/readyz`: 200 when the node is ready, 503 with the reason otherwise. Start the server
//!   once [`avpd_node::Node::start`] has returned (every listener is bound then); with a store,
//!   ready also needs the store connected.
//!
//! Requests are served one at a time, each on a connection of its own with read and write
//! timeouts, so a slow client delays a scrape by at most [`IO_TIMEOUT`] and cannot touch the
//! node. Nothing here runs on a node thread.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod collect;
pub mod http;

use avpd_node::observe::{Observation, Observer};
use http::{negotiate, parse_head, Format, HeadError, Request, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long one request may take to arrive, or its response to leave.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint serves.
pub struct MetricsConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The node's figures.
    pub observer: Observer,
    /// True when the node stores reports: then ready needs the store connected.
    pub store: bool,
    /// The version `avpd_build_info` carries.
    pub version: &'static str,
}

/// Why the endpoint could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The thread could not be started.
    Thread(io::Error),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Bind { addr, source } => {
                write!(f, "cannot serve metrics on {addr}: {source}")
            }
            MetricsError::Thread(e) => write!(f, "cannot start the metrics thread: {e}"),
        }
    }
}

impl std::error::Error for MetricsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetricsError::Bind { source, .. } | MetricsError::Thread(source) => Some(source),
        }
    }
}

/// A running endpoint; stops when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `config.listen` and serves on a thread of its own.
    pub fn start(config: MetricsConfig) -> Result<MetricsServer, MetricsError> {
        let bind_error = |source| MetricsError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let site = Site::new(config);
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("avpd-metrics".into())
            .spawn(move || serve(&listener, &site, &stopping))
            .map_err(MetricsError::Thread)?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // accept() blocks: a connection of our own wakes it to see the flag.
        if let Err(e) = TcpStream::connect_timeout(&reachable(self.addr), IO_TIMEOUT) {
            tracing::warn!("cannot wake the metrics thread to stop it: {e}");
            return;
        }
        if thread.join().is_err() {
            tracing::error!("the metrics thread panicked");
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An address that reaches a listener bound to `addr` (loopback for a wildcard address).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// What the endpoint answers with.
struct Site {
    registry: Registry,
    observer: Observer,
    store: bool,
}

/// The registry of every family: the build's and those of `collector`.
fn registry(collector: Box<dyn Collector>, version: &'static str) -> Registry {
    let mut registry = Registry::with_prefix("avpd");
    registry.register(
        "build",
        "The avpd version running",
        Info::new(vec![("version", version)]),
    );
    registry.register_collector(collector);
    registry
}

impl Site {
    fn new(config: MetricsConfig) -> Site {
        let collector = collect::NodeCollector::new(config.observer.clone());
        Site {
            registry: registry(Box::new(collector), config.version),
            observer: config.observer,
            store: config.store,
        }
    }

    /// The answer to `request`.
    fn respond(&self, request: &Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::text(405, "only GET and HEAD\n");
        }
        match request.path.as_str() {
            "/metrics" => self.metrics(negotiate(request.accept.as_deref())),
            "/healthz" => Response::text(200, "ok\n"),
            "/readyz" => match not_ready(&self.observer.latest(), self.store) {
                None => Response::text(200, "ready\n"),
                Some(reason) => Response::text(503, format!("not ready: {reason}\n")),
            },
            _ => Response::text(404, "not found: try /metrics, /healthz or /readyz\n"),
        }
    }

    fn metrics(&self, format: Format) -> Response {
        let mut body = String::new();
        let encoded = match format {
            Format::Text => prometheus_text::encode(&mut body, &self.registry),
            Format::OpenMetrics => text::encode(&mut body, &self.registry),
        };
        match encoded {
            Ok(()) => Response {
                status: 200,
                content_type: format.content_type(),
                body,
            },
            Err(fmt::Error) => Response::text(500, "cannot encode the metrics\n"),
        }
    }
}

/// Why the node is not ready, if it is not: with a store, the store must be connected.
fn not_ready(o: &Observation, store: bool) -> Option<&'static str> {
    (store && !o.store.is_some_and(|s| s.connected)).then_some("the store is not connected")
}

/// Serves one connection at a time until `stop` is set.
fn serve(listener: &TcpListener, site: &Site, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream, site) {
                    tracing::debug!("metrics request failed: {e}");
                }
            }
            // EMFILE and the like: the node's own descriptors matter more; try the next one.
            Err(e) => tracing::warn!("metrics endpoint cannot accept: {e}"),
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream, site: &Site) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let (response, head_only) = loop {
        match parse_head(&head) {
            Ok(Some(request)) => {
                tracing::debug!(method = %request.method, path = %request.path, "metrics request");
                break (site.respond(&request), request.method == "HEAD");
            }
            Ok(None) => {}
            Err(e @ HeadError::TooLong) => break (Response::text(431, format!("{e}\n")), false),
            Err(e) => break (Response::text(400, format!("{e}\n")), false),
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    };
    stream.write_all(&response.to_bytes(head_only))?;
    stream.flush()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod readiness_tests {
    use super::*;
    use avpd_store::StoreStatus;

    #[test]
    fn ready_needs_a_connected_store_only_with_a_store() {
        let mut o = Observation::default();
        assert_eq!(not_ready(&o, false), None);
        assert_eq!(not_ready(&o, true), Some("the store is not connected"));
        o.store = Some(StoreStatus {
            connected: true,
            ..StoreStatus::default()
        });
        assert_eq!(not_ready(&o, true), None);
    }
}
