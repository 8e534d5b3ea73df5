//! One client connection to an endpoint that comes back by itself.
//!
//! A [`Link`] owns the socket, the bytes read and not yet used, and the reconnect schedule. It
//! moves bytes only: [`Link::poll`] waits (up to a deadline) for the next thing that happens
//! (the link came up, bytes arrived, the link went down) and [`Link::write`] writes bytes.
//! What the bytes mean is the business of the session that reads them
//! ([`crate::PeerLink`] puts the two together).
//!
//! The socket is blocking with timeouts: a client has one or a few links, so a thread per link
//! is cheap and keeps the code straight.

use crate::backoff::Backoff;
use avp_endpoint::{Endpoint, Scheme};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
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

/// The endpoint's scheme cannot carry a client link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedScheme(pub Endpoint);

impl fmt::Display for UnsupportedScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: clients connect over TCP; use tcp:// or json+tcp://",
            self.0
        )
    }
}

impl std::error::Error for UnsupportedScheme {}

/// A reconnecting connection to one endpoint. See the module documentation.
pub struct Link {
    endpoint: Endpoint,
    stream: Option<TcpStream>,
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
        if endpoint.scheme == Scheme::Udp {
            return Err(UnsupportedScheme(endpoint));
        }
        let now = Instant::now();
        Ok(Link {
            endpoint,
            stream: None,
            connected_at: now,
            received: Vec::new(),
            backoff: Backoff::default(),
            retry_at: now,
            pending_down: None,
        })
    }

    /// The endpoint this link connects to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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
        loop {
            let now = Instant::now();
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
            let wait = (deadline - now).max(Duration::from_millis(1));
            if let Err(e) = stream.set_read_timeout(Some(wait)) {
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
                    return LinkIo::Idle
                }
                Err(e) => return self.disconnect(format!("read failed: {e}")),
            }
        }
    }

    /// One connection attempt to each address the endpoint resolves to, in turn.
    fn connect(&mut self) -> LinkIo {
        let addrs = match self.endpoint.resolve() {
            Ok(a) => a,
            Err(e) => return self.disconnect(format!("cannot resolve: {e}")),
        };
        let mut last_error = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    // Small messages, answered at once: do not wait for Nagle.
                    if let Err(e) = stream
                        .set_nodelay(true)
                        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
                    {
                        last_error = Some(e);
                        continue;
                    }
                    self.stream = Some(stream);
                    self.connected_at = Instant::now();
                    return LinkIo::Up;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let reason = last_error.map_or_else(|| "no address".to_string(), |e| e.to_string());
        self.disconnect(format!("connect failed: {reason}"))
    }

    /// Closes the connection (if any) and schedules the next attempt.
    fn disconnect(&mut self, reason: String) -> LinkIo {
        if self.stream.take().is_some() && self.connected_at.elapsed() >= STABLE_AFTER {
            self.backoff.reset();
        }
        self.received.clear();
        let retry_in = self.backoff.next_delay();
        self.retry_at = Instant::now() + retry_in;
        LinkIo::Down { reason, retry_in }
    }
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
}
