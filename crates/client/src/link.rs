//! One client connection to an endpoint that comes back by itself.
//!
//! A [`Link`] owns the socket, the read buffer and the reconnect schedule. The caller drives it
//! from its own loop: [`Link::poll`] waits (up to a deadline) for the next thing that happens —
//! the link came up, a message arrived, the link went down — and [`Link::send`] writes one
//! message. Every byte goes through [`Codec`]; the link never interprets a message except to
//! answer an invalid one, as the protocol requires of every peer.
//!
//! The socket is blocking with timeouts: a client has one or a few links, so a thread per link
//! is cheap and keeps the code straight.

use crate::backoff::Backoff;
use avp_endpoint::{Endpoint, Scheme};
use avp_proto::{Codec, Decoded, EncodeError, Message, MessageError, Status};
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
    /// Connected; messages can be sent.
    Connected,
    /// Not connected; the next attempt is due at `retry_at`.
    Reconnecting {
        /// When the next connection attempt is made.
        retry_at: Instant,
    },
}

/// What [`Link::poll`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A connection was established.
    Up,
    /// A valid message arrived.
    Message(Message<'static>),
    /// The peer sent a well-framed but invalid message; it has already been answered with
    /// COMMAND_RESPONSE 400 or 501 (unless it was itself an answer).
    Invalid(MessageError),
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

/// Why [`Link::send`] did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The link is down; the message was not written.
    NotConnected,
    /// The message has a value out of range and cannot be encoded.
    Encode(EncodeError),
    /// Writing failed; the link is now down and the next [`Link::poll`] says why.
    Io(io::ErrorKind),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected => f.write_str("not connected"),
            SendError::Encode(e) => e.fmt(f),
            SendError::Io(kind) => write!(f, "write failed: {kind}"),
        }
    }
}

impl std::error::Error for SendError {}

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
    codec: Codec,
    stream: Option<TcpStream>,
    connected_at: Instant,
    /// Received bytes not yet decoded. INVARIANT: empty while `stream` is `None`.
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    backoff: Backoff,
    retry_at: Instant,
    /// A failure seen by `send`, reported by the next `poll`.
    pending_down: Option<LinkEvent>,
}

impl Link {
    /// A link to `endpoint`, speaking `codec` (default: the scheme's own). The first connection
    /// attempt is made by the first [`poll`](Self::poll).
    pub fn new(endpoint: Endpoint, codec: Option<Codec>) -> Result<Link, UnsupportedScheme> {
        if endpoint.scheme == Scheme::Udp {
            return Err(UnsupportedScheme(endpoint));
        }
        let now = Instant::now();
        Ok(Link {
            codec: codec.unwrap_or(endpoint.scheme.codec()),
            endpoint,
            stream: None,
            connected_at: now,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
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

    /// Encodes `msg` and writes it, blocking for at most a few seconds.
    pub fn send(&mut self, msg: &Message<'_>) -> Result<(), SendError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(SendError::NotConnected);
        };
        self.wbuf.clear();
        self.codec
            .encode(msg, &mut self.wbuf)
            .map_err(SendError::Encode)?;
        if let Err(e) = stream.write_all(&self.wbuf) {
            let kind = e.kind();
            let down = self.disconnect(format!("write failed: {e}"));
            self.pending_down = Some(down);
            return Err(SendError::Io(kind));
        }
        Ok(())
    }

    /// Waits until something happens or `deadline` passes, connecting when an attempt is due.
    ///
    /// Returns [`LinkEvent::Idle`] at the deadline; a deadline already past still delivers
    /// messages that are buffered.
    pub fn poll(&mut self, deadline: Instant) -> LinkEvent {
        if let Some(down) = self.pending_down.take() {
            return down;
        }
        loop {
            if let Some(event) = self.next_buffered() {
                return event;
            }
            let now = Instant::now();
            let Some(stream) = self.stream.as_mut() else {
                if now < self.retry_at {
                    if deadline <= now {
                        return LinkEvent::Idle;
                    }
                    std::thread::sleep(deadline.min(self.retry_at) - now);
                    if Instant::now() < self.retry_at {
                        return LinkEvent::Idle;
                    }
                }
                return self.connect();
            };
            if deadline <= now {
                return LinkEvent::Idle;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            if let Err(e) = stream.set_read_timeout(Some(wait)) {
                return self.disconnect(format!("socket error: {e}"));
            }
            let start = self.rbuf.len();
            self.rbuf.resize(start + READ_CHUNK, 0);
            let result = stream.read(&mut self.rbuf[start..]);
            self.rbuf.truncate(start + *result.as_ref().unwrap_or(&0));
            match result {
                Ok(0) => return self.disconnect("closed by the peer".to_string()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return LinkEvent::Idle
                }
                Err(e) => return self.disconnect(format!("read failed: {e}")),
            }
        }
    }

    /// Decodes the first buffered frame, answering it when it is invalid.
    fn next_buffered(&mut self) -> Option<LinkEvent> {
        let (event, used) = match self.codec.decode(&self.rbuf) {
            Ok(Status::Partial) => return None,
            Ok(Status::Complete((Decoded::Message(m), used))) => {
                (LinkEvent::Message(m.into_owned()), used)
            }
            Ok(Status::Complete((Decoded::Invalid(e), used))) => (LinkEvent::Invalid(e), used),
            Err(e) => return Some(self.disconnect(format!("unreadable stream: {e}"))),
        };
        self.rbuf.drain(..used);
        if let LinkEvent::Invalid(e) = &event {
            if !e.is_answer() {
                let answer = Message::command_response(e.sequence, e.result_code(), e.to_string());
                // A failure here is reported by the next poll.
                let _ = self.send(&answer);
            }
        }
        Some(event)
    }

    /// One connection attempt to each address the endpoint resolves to, in turn.
    fn connect(&mut self) -> LinkEvent {
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
                    return LinkEvent::Up;
                }
                Err(e) => last_error = Some(e),
            }
        }
        let reason = last_error.map_or_else(|| "no address".to_string(), |e| e.to_string());
        self.disconnect(format!("connect failed: {reason}"))
    }

    /// Closes the connection (if any) and schedules the next attempt.
    fn disconnect(&mut self, reason: String) -> LinkEvent {
        if self.stream.take().is_some() && self.connected_at.elapsed() >= STABLE_AFTER {
            self.backoff.reset();
        }
        self.rbuf.clear();
        let retry_in = self.backoff.next_delay();
        self.retry_at = Instant::now() + retry_in;
        LinkEvent::Down { reason, retry_in }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::{Body, Report};
    use std::net::TcpListener;

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn link_to(listener: &TcpListener) -> Link {
        let ep = Endpoint::new(Scheme::Tcp, listener.local_addr().unwrap());
        Link::new(ep, None).unwrap()
    }

    #[test]
    fn udp_is_refused() {
        let ep: Endpoint = "udp://127.0.0.1:1".parse().unwrap();
        assert!(Link::new(ep, None).is_err());
    }

    #[test]
    fn frames_split_and_batched_arrive_whole_and_invalid_ones_are_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link_to(&listener);
        assert_eq!(link.poll(deadline()), LinkEvent::Up);
        let (mut peer, _) = listener.accept().unwrap();
        let report = Message {
            sequence: Some(3),
            body: Body::StatReport(Report {
                cpu_percent: 30,
                mem_percent: 53,
                timestamp_ms: None,
                node_id: Some("a".into()),
            }),
        };
        let mut bytes = Vec::new();
        report.encode(&mut bytes).unwrap();
        report.encode(&mut bytes).unwrap();
        bytes.extend_from_slice(&[0, 5, 77, 6, 0]); // unknown type 77
        peer.write_all(&bytes[..4]).unwrap();
        peer.flush().unwrap();
        assert_eq!(link.poll(Instant::now()), LinkEvent::Idle);
        peer.write_all(&bytes[4..]).unwrap();
        for _ in 0..2 {
            assert_eq!(link.poll(deadline()), LinkEvent::Message(report.clone()));
        }
        assert!(matches!(link.poll(deadline()), LinkEvent::Invalid(e) if e.result_code() == 501));
        let mut answer = [0u8; 64];
        let n = peer.read(&mut answer).unwrap();
        match Codec::Binary.decode(&answer[..n]).unwrap() {
            Status::Complete((Decoded::Message(m), _)) => {
                assert!(matches!(m.body, Body::CommandResponse { code: 501, .. }))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn goes_down_and_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link_to(&listener);
        assert_eq!(link.poll(deadline()), LinkEvent::Up);
        drop(listener.accept().unwrap());
        assert!(
            matches!(link.poll(deadline()), LinkEvent::Down { retry_in, .. }
            if retry_in <= Duration::from_millis(100))
        );
        assert!(matches!(link.status(), LinkStatus::Reconnecting { .. }));
        assert_eq!(link.send(&Message::ack(None)), Err(SendError::NotConnected));
        assert_eq!(link.poll(deadline()), LinkEvent::Up);
        assert!(link.is_connected());
    }

    #[test]
    fn a_failed_attempt_backs_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut link = link_to(&listener);
        drop(listener);
        let LinkEvent::Down {
            retry_in: first, ..
        } = link.poll(deadline())
        else {
            panic!("expected down")
        };
        let LinkEvent::Down {
            retry_in: second, ..
        } = link.poll(deadline())
        else {
            panic!("expected down")
        };
        assert!(first <= Duration::from_millis(100));
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
    }
}
