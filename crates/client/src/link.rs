//! One client connection to an endpoint that comes back by itself.
//!
//! A [`Link`] owns the socket, the bytes read and not yet used, and the reconnect schedule. It
//! moves bytes only: [`Link::poll`] waits (up to a deadline) for the next thing that happens
//! (the link came up, bytes arrived, the link went down) and [`Link::write`] writes bytes.
//! What the bytes mean is the business of the session that reads them
//! ([`crate::PeerLink`] puts the two together).
//!
//! A `tls://` endpoint is reached over TLS with the client configuration given to
//! [`Link::with_tls`]; the handshake is part of the connection attempt.
//!
//! The socket is blocking with timeouts: a client has one or a few links, so a thread per link
//! is cheap and keeps the code straight.
//!
//! A link may have several endpoints ([`Link::failover`]): when a connection fails or is lost,
//! it connects to the next one at once, and backs off only once every endpoint failed in turn.
//! While connected to any but the first, it tries the first every `failback_every` and moves
//! back to it as soon as it answers.

use crate::backoff::Backoff;
use crate::stream::Stream;
use avp_endpoint::{Endpoint, Scheme};
use rustls::ClientConfig;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A write that makes no progress for this long means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that lived at least this long resets the backoff when it drops, so a peer that
/// accepts and at once closes is not hammered every 100 ms.
const STABLE_AFTER: Duration = Duration::from_secs(1);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How long a try of the first endpoint, while connected to another, may take.
const FAILBACK_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a link is usable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Connected; bytes can be written.
    Connected,
    /// Not connected; the next attempt is due at `retry_at`.
    Reconnecting {
        /// When the next connection attempt is made.
        retry_at: Instant,
    },
}

/// What [`Link::poll`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkIo {
    /// A connection was established.
    Up,
    /// Bytes arrived; they are in [`Link::received`].
    Data,
    /// The connection was lost, or an attempt to connect failed; the link retries by itself.
    Down {
        /// Why, for the operator.
        reason: String,
        /// Delay until the next attempt.
        retry_in: Duration,
    },
    /// The deadline passed with nothing else to report.
    Idle,
}

/// Why [`Link::write`] did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The link is down; nothing was written.
    NotConnected,
    /// Writing failed; the link is now down and the next [`Link::poll`] says why.
    Io(io::ErrorKind),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::NotConnected => f.write_str("not connected"),
            WriteError::Io(kind) => write!(f, "write failed: {kind}"),
        }
    }
}

impl std::error::Error for WriteError {}

/// The endpoint's scheme cannot carry a client link: UDP, or `tls://` without a client TLS
/// configuration (no CA to check the server against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedScheme(pub Endpoint);

impl fmt::Display for UnsupportedScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.scheme {
            Scheme::Tls => write!(
                f,
                "{}: tls:// needs the CA that issued the server's certificate (--ca FILE)",
                self.0
            ),
            _ => write!(
                f,
                "{}: clients connect over TCP; use tcp://, json+tcp:// or tls://",
                self.0
            ),
        }
    }
}

impl std::error::Error for UnsupportedScheme {}

/// A reconnecting connection to one endpoint, or to the first of several that answers. See the
/// module documentation.
pub struct Link {
    /// INVARIANT: not empty; all TCP.
    endpoints: Vec<Endpoint>,
    /// The endpoint connected to, or tried next.
    current: usize,
    /// Endpoints that failed in turn since the last connection.
    failed_in_turn: usize,
    failback_every: Duration,
    /// When to try the first endpoint again (connected to another).
    failback_at: Option<Instant>,
    /// A connection made by a failback, reported by the next `poll`.
    pending_up: bool,
    stream: Option<Stream>,
    /// The client configuration of `tls://` endpoints.
    tls: Option<Arc<ClientConfig>>,
    connected_at: Instant,
    /// Received bytes not yet consumed. INVARIANT: empty while `stream` is `None`.
    received: Vec<u8>,
    backoff: Backoff,
    retry_at: Instant,
    /// A failure seen by `write`, reported by the next `poll`.
    pending_down: Option<LinkIo>,
}

impl Link {
    /// A link to `endpoint`. The first connection attempt is made by the first
    /// [`poll`](Self::poll).
    pub fn new(endpoint: Endpoint) -> Result<Link, UnsupportedScheme> {
        Link::failover(vec![endpoint], Duration::MAX)
    }

    /// A link to the first of `endpoints` that answers, preferring the earlier ones: see the
    /// module documentation. `endpoints` must not be empty.
    pub fn failover(
        endpoints: Vec<Endpoint>,
        failback_every: Duration,
    ) -> Result<Link, UnsupportedScheme> {
        Link::with_tls(endpoints, failback_every, None)
    }

    /// [`Link::failover`], reaching `tls://` endpoints with `tls` (required when one of
    /// `endpoints` is `tls://`).
    pub fn with_tls(
        endpoints: Vec<Endpoint>,
        failback_every: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Link, UnsupportedScheme> {
        assert!(!endpoints.is_empty(), "a link needs an endpoint");
        let unusable =
            |e: &&Endpoint| e.scheme == Scheme::Udp || (e.scheme == Scheme::Tls && tls.is_none());
        if let Some(endpoint) = endpoints.iter().find(unusable) {
            return Err(UnsupportedScheme(endpoint.clone()));
        }
        let now = Instant::now();
        Ok(Link {
            endpoints,
            current: 0,
            failed_in_turn: 0,
            failback_every,
            failback_at: None,
            pending_up: false,
            stream: None,
            tls,
            connected_at: now,
            received: Vec::new(),
            backoff: Backoff::default(),
            retry_at: now,
            pending_down: None,
        })
    }

    /// The endpoint this link is connected to, or connects to next.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[self.current]
    }

    /// Connected, or when the next attempt is due.
    pub fn status(&self) -> LinkStatus {
        if self.stream.is_some() {
            LinkStatus::Connected
        } else {
            LinkStatus::Reconnecting {
                retry_at: self.retry_at,
            }
        }
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The bytes received and not consumed yet.
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// Marks the first `n` received bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.received.drain(..n.min(self.received.len()));
    }

    /// Writes all of `bytes`, blocking for at most a few seconds.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(WriteError::NotConnected);
        };
        if let Err(e) = stream.write_all(bytes) {
            let kind = e.kind();
            let down = self.disconnect(format!("write failed: {e}"));
            self.pending_down = Some(down);
            return Err(WriteError::Io(kind));
        }
        Ok(())
    }

    /// Drops the connection (the session found the stream unusable, say) and schedules the
    /// next attempt; returns the [`LinkIo::Down`] that says so.
    pub fn close(&mut self, reason: String) -> LinkIo {
        self.disconnect(reason)
    }

    /// Waits until something happens or `deadline` passes, connecting when an attempt is due.
    ///
    /// Returns [`LinkIo::Idle`] at the deadline.
    pub fn poll(&mut self, deadline: Instant) -> LinkIo {
        if let Some(down) = self.pending_down.take() {
            return down;
        }
        if std::mem::take(&mut self.pending_up) {
            return LinkIo::Up;
        }
        loop {
            let now = Instant::now();
            if self.failback_at.is_some_and(|t| now >= t) {
                if let Some(down) = self.try_failback() {
                    return down;
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                if now < self.retry_at {
                    if deadline <= now {
                        return LinkIo::Idle;
                    }
                    std::thread::sleep(deadline.min(self.retry_at) - now);
                    if Instant::now() < self.retry_at {
                        return LinkIo::Idle;
                    }
                }
                return self.connect();
            };
            if deadline <= now {
                return LinkIo::Idle;
            }
            let until = self.failback_at.map_or(deadline, |t| t.min(deadline));
            let wait = until
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            if let Err(e) = stream.tcp().set_read_timeout(Some(wait)) {
                return self.disconnect(format!("socket error: {e}"));
            }
            let start = self.received.len();
            self.received.resize(start + READ_CHUNK, 0);
            let result = stream.read(&mut self.received[start..]);
            self.received
                .truncate(start + *result.as_ref().unwrap_or(&0));
            match result {
                Ok(0) => return self.disconnect("closed by the peer".to_string()),
                Ok(_) => return LinkIo::Data,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return LinkIo::Idle;
                    }
                }
                Err(e) => return self.disconnect(format!("read failed: {e}")),
            }
        }
    }

    /// One connection attempt to the current endpoint.
    fn connect(&mut self) -> LinkIo {
        let endpoint = &self.endpoints[self.current];
        match dial(endpoint, self.tls.as_ref(), CONNECT_TIMEOUT) {
            Ok(stream) => {
                self.connected(stream);
                LinkIo::Up
            }
            Err(reason) => {
                let reason = match self.endpoints.len() {
                    1 => reason,
                    _ => format!("{endpoint}: {reason}"),
                };
                self.disconnect(reason)
            }
        }
    }

    /// While connected to another endpoint than the first, tries the first every
    /// `failback_every` from now on (the next try `failback_every` from now).
    pub fn set_failback_every(&mut self, failback_every: Duration) {
        self.failback_every = failback_every;
        if self.failback_at.is_some() {
            self.failback_at = Instant::now().checked_add(failback_every);
        }
    }

    fn connected(&mut self, stream: Stream) {
        self.stream = Some(stream);
        self.connected_at = Instant::now();
        self.failed_in_turn = 0;
        self.failback_at = (self.current != 0)
            .then(|| self.connected_at.checked_add(self.failback_every))
            .flatten();
    }

    /// Tries the first endpoint while connected to another; moves to it when it answers, and
    /// returns the [`LinkIo::Down`] of the connection left (the next poll reports the new one).
    fn try_failback(&mut self) -> Option<LinkIo> {
        match dial(
            &self.endpoints[0],
            self.tls.as_ref(),
            FAILBACK_CONNECT_TIMEOUT,
        ) {
            Ok(stream) => {
                let left = self.endpoints[self.current].clone();
                self.received.clear();
                self.current = 0;
                self.connected(stream);
                self.pending_up = true;
                Some(LinkIo::Down {
                    reason: format!("{} answers again: leaving {left}", self.endpoints[0]),
                    retry_in: Duration::ZERO,
                })
            }
            Err(_) => {
                self.failback_at = Instant::now().checked_add(self.failback_every);
                None
            }
        }
    }

    /// Closes the connection (if any) and schedules the next attempt: at once on the next
    /// endpoint, after a backoff once every endpoint failed in turn.
    fn disconnect(&mut self, reason: String) -> LinkIo {
        if self.stream.take().is_some() && self.connected_at.elapsed() >= STABLE_AFTER {
            self.backoff.reset();
        }
        self.received.clear();
        self.failback_at = None;
        self.current = (self.current + 1) % self.endpoints.len();
        self.failed_in_turn += 1;
        let retry_in = if self.failed_in_turn < self.endpoints.len() {
            Duration::ZERO
        } else {
            self.failed_in_turn = 0;
            self.backoff.next_delay()
        };
        self.retry_at = Instant::now() + retry_in;
        LinkIo::Down { reason, retry_in }
    }
}

/// Connects to `endpoint`: one attempt per address it resolves to, each within `timeout`;
/// for a `tls://` endpoint, then the TLS handshake with `tls`, within `timeout` again.
fn dial(
    endpoint: &Endpoint,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Stream, String> {
    let tcp = dial_tcp(endpoint, timeout)?;
    match (endpoint.scheme, tls) {
        (Scheme::Tls, Some(config)) => {
            let name = avp_tls::server_name(endpoint.host()).map_err(|e| e.to_string())?;
            Stream::tls(tcp, config.clone(), name, timeout)
                .map_err(|e| format!("TLS handshake failed: {e}"))
        }
        _ => Ok(Stream::Plain(tcp)),
    }
}

/// The TCP connection of [`dial`].
fn dial_tcp(endpoint: &Endpoint, timeout: Duration) -> Result<TcpStream, String> {
    let addrs = endpoint
        .resolve()
        .map_err(|e| format!("cannot resolve: {e}"))?;
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                // Small messages, answered at once: do not wait for Nagle.
                match stream
                    .set_nodelay(true)
                    .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
                {
                    Ok(()) => return Ok(stream),
                    Err(e) => last_error = Some(e),
                }
            }
            Err(e) => last_error = Some(e),
        }
    }
    let reason = last_error.map_or_else(|| "no address".to_string(), |e| e.to_string());
    Err(format!("connect failed: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn link_to(listener: &TcpListener) -> Link {
        let ep = Endpoint::new(Scheme::Tcp, listener.local_addr().unwrap());
        Link::new(ep).unwrap()
    }

    #[test]
    fn udp_is_refused() {
        let ep: Endpoint = "udp://127.0.0.1:1".parse().unwrap();
        assert!(Link::new(ep).is_err());
    }

    #[test]
    fn bytes_arrive_and_are_consumed_as_told() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link_to(&listener);
        assert_eq!(link.poll(deadline()), LinkIo::Up);
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"abcd").unwrap();
        let mut seen = Vec::new();
        while seen.len() < 4 {
            assert_eq!(link.poll(deadline()), LinkIo::Data);
            seen = link.received().to_vec();
        }
        link.consume(3);
        assert_eq!(link.received(), b"d");
        link.write(b"xy").unwrap();
        let mut got = [0u8; 2];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xy");
        assert_eq!(link.poll(Instant::now()), LinkIo::Idle);
    }

    #[test]
    fn goes_down_and_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link_to(&listener);
        assert_eq!(link.poll(deadline()), LinkIo::Up);
        drop(listener.accept().unwrap());
        assert!(
            matches!(link.poll(deadline()), LinkIo::Down { retry_in, .. }
            if retry_in <= Duration::from_millis(100))
        );
        assert!(matches!(link.status(), LinkStatus::Reconnecting { .. }));
        assert_eq!(link.write(b"x"), Err(WriteError::NotConnected));
        assert_eq!(link.poll(deadline()), LinkIo::Up);
        assert!(link.is_connected());
        assert!(matches!(link.close("test".into()), LinkIo::Down { .. }));
        assert!(!link.is_connected());
    }

    #[test]
    fn a_failed_attempt_backs_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link_to(&listener);
        drop(listener);
        let LinkIo::Down {
            retry_in: first, ..
        } = link.poll(deadline())
        else {
            panic!("expected down")
        };
        let LinkIo::Down {
            retry_in: second, ..
        } = link.poll(deadline())
        else {
            panic!("expected down")
        };
        assert!(first <= Duration::from_millis(100));
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
    }

    #[test]
    fn fails_over_at_once_and_comes_back_to_the_first_when_it_answers() {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let second = TcpListener::bind("127.0.0.1:0").unwrap();
        let first_addr = first.local_addr().unwrap();
        let endpoints = [first_addr, second.local_addr().unwrap()]
            .map(|a| Endpoint::new(Scheme::Tcp, a))
            .to_vec();
        // Every poll that is connected to the second tries the first.
        let mut link = Link::failover(endpoints.clone(), Duration::ZERO).unwrap();
        drop(first);
        // The first refuses: the second is tried at once, without a backoff.
        assert!(matches!(
            link.poll(deadline()),
            LinkIo::Down {
                retry_in: Duration::ZERO,
                ..
            }
        ));
        assert_eq!(link.poll(deadline()), LinkIo::Up);
        assert_eq!(link.endpoint(), &endpoints[1]);
        let (_on_second, _) = second.accept().unwrap();
        // The first is back (same port): the link leaves the second for it.
        let first = TcpListener::bind(first_addr).unwrap();
        assert!(
            matches!(link.poll(deadline()), LinkIo::Down { ref reason, .. } if reason.contains("answers again"))
        );
        assert_eq!(link.poll(deadline()), LinkIo::Up);
        assert_eq!(link.endpoint(), &endpoints[0]);
        let (mut on_first, _) = first.accept().unwrap();
        link.write(b"hi").unwrap();
        let mut got = [0u8; 2];
        on_first.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn backs_off_only_once_every_endpoint_failed() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoints = [a.local_addr().unwrap(), b.local_addr().unwrap()]
            .map(|addr| Endpoint::new(Scheme::Tcp, addr))
            .to_vec();
        drop((a, b));
        let mut link = Link::failover(endpoints, Duration::from_secs(60)).unwrap();
        let delays: Vec<Duration> = (0..4)
            .map(|_| match link.poll(deadline()) {
                LinkIo::Down { retry_in, .. } => retry_in,
                other => panic!("expected down, got {other:?}"),
            })
            .collect();
        assert_eq!(delays[0], Duration::ZERO);
        assert!(delays[1] > Duration::ZERO, "{delays:?}");
        assert_eq!(delays[2], Duration::ZERO);
        assert!(delays[3] > delays[1], "{delays:?}");
    }
}
