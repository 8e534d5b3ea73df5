//! A [`Link`] and the [`PeerSession`] that speaks over it.
//!
//! [`PeerLink::poll`] waits for the link, feeds what arrives to the session, writes what the
//! session owes (acks of pushed reports, answers to PAUSE and RESUME), and turns a lost
//! connection or an overdue answer into one [`ClientEvent::Down`] after giving up on every
//! outstanding request. The agent and the terminal are written over its events; neither
//! handles bytes.

use crate::link::{Link, LinkIo, LinkStatus, UnsupportedScheme, WriteError};
use avp_endpoint::Endpoint;
use avp_proto::peer::{PeerEvent, PeerSession, Request, Transport};
use avp_proto::{Codec, EncodeError};
use std::fmt;
use std::time::{Duration, Instant};

/// What happened on a [`PeerLink`].
#[derive(Debug)]
pub enum ClientEvent<'a, T> {
    /// A connection was established.
    Up,
    /// The connection was lost (or could not be made), or the session found it unusable; the
    /// outstanding requests were given up on just before ([`PeerEvent::Aborted`],
    /// [`PeerEvent::TimedOut`]).
    Down {
        /// Why, for the operator.
        reason: String,
        /// Delay until the next attempt.
        retry_in: Duration,
    },
    /// The session saw this.
    Peer(PeerEvent<'a, T>),
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The request has a value out of range and cannot be encoded.
    Encode(EncodeError),
    /// The link is down, or writing failed (the next poll says why).
    Write(WriteError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Encode(e) => e.fmt(f),
            SendError::Write(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {}

/// A reconnecting link and the protocol session over it. See the module documentation.
pub struct PeerLink<T = ()> {
    link: Link,
    session: PeerSession<T>,
    out: Vec<u8>,
}

impl<T: Copy + PartialEq> PeerLink<T> {
    /// A link to `endpoint` speaking `codec` (default: the scheme's own), giving up on an
    /// answer after `answer_timeout`.
    pub fn new(
        endpoint: Endpoint,
        codec: Option<Codec>,
        answer_timeout: Duration,
    ) -> Result<Self, UnsupportedScheme> {
        Ok(PeerLink::over(Link::new(endpoint)?, codec, answer_timeout))
    }

    /// The session over `link` (one with several endpoints, say) speaking `codec` (default:
    /// the scheme of the link's first endpoint), giving up on an answer after
    /// `answer_timeout`.
    pub fn over(link: Link, codec: Option<Codec>, answer_timeout: Duration) -> Self {
        let codec = codec.unwrap_or(link.endpoint().scheme.codec());
        PeerLink {
            link,
            session: PeerSession::new(codec, Transport::Stream, answer_timeout),
            out: Vec::new(),
        }
    }

    /// The endpoint this link is connected to, or connects to next.
    pub fn endpoint(&self) -> &Endpoint {
        self.link.endpoint()
    }

    /// Connected, or when the next attempt is due.
    pub fn status(&self) -> LinkStatus {
        self.link.status()
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// Signs every report sent from now on with `key` (see [`avp_proto::auth`]).
    pub fn sign_reports_with(&mut self, key: avp_proto::auth::Key) {
        self.session.sign_reports_with(key);
    }

    /// Sends reports unsigned from now on.
    pub fn stop_signing(&mut self) {
        self.session.stop_signing();
    }

    /// Gives up on an answer after `answer_timeout` from now on.
    pub fn set_answer_timeout(&mut self, answer_timeout: Duration) {
        self.session.set_answer_timeout(answer_timeout);
    }

    /// The link under the session, to change how it fails over.
    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }

    /// The protocol session, for what it knows (the pause in force, the requests outstanding).
    pub fn session(&self) -> &PeerSession<T> {
        &self.session
    }

    /// Sends `request` with the session's next SEQUENCE; returns that SEQUENCE.
    pub fn send(&mut self, now: Instant, request: &Request<'_>, tag: T) -> Result<u32, SendError> {
        self.ensure_connected()?;
        let seq = self
            .session
            .send(now, request, tag, &mut self.out)
            .map_err(SendError::Encode)?;
        self.flush()?;
        Ok(seq)
    }

    /// Sends `request` with SEQUENCE `seq` (for a caller that numbers its requests itself).
    pub fn send_with_sequence(
        &mut self,
        now: Instant,
        seq: u32,
        request: &Request<'_>,
        tag: T,
    ) -> Result<(), SendError> {
        self.ensure_connected()?;
        self.session
            .send_with_sequence(now, seq, request, tag, &mut self.out)
            .map_err(SendError::Encode)?;
        self.flush()
    }

    /// Waits until something happens on the link or `deadline` passes (sooner when the
    /// session has a timer due), and hands what happened to `on_event`.
    pub fn poll(&mut self, deadline: Instant, on_event: &mut impl FnMut(ClientEvent<'_, T>)) {
        let deadline = self
            .session
            .poll_timeout()
            .map_or(deadline, |t| t.min(deadline));
        match self.link.poll(deadline) {
            LinkIo::Idle => {}
            LinkIo::Up => on_event(ClientEvent::Up),
            LinkIo::Down { reason, retry_in } => self.down(reason, retry_in, on_event),
            LinkIo::Data => {
                let now = Instant::now();
                let result =
                    self.session
                        .handle_input(now, self.link.received(), &mut self.out, &mut |e| {
                            on_event(ClientEvent::Peer(e))
                        });
                match result {
                    Ok(used) => {
                        self.link.consume(used);
                        // A failed write takes the link down; the next poll reports it.
                        let _ = self.flush();
                    }
                    Err(e) => {
                        if let LinkIo::Down { reason, retry_in } =
                            self.link.close(format!("unreadable stream: {e}"))
                        {
                            self.down(reason, retry_in, on_event);
                        }
                    }
                }
            }
        }
        let stuck = self
            .session
            .handle_timeout(Instant::now(), &mut |e| on_event(ClientEvent::Peer(e)));
        if stuck && self.link.is_connected() {
            let close = self.link.close("no answer in time".to_string());
            if let LinkIo::Down { reason, retry_in } = close {
                on_event(ClientEvent::Down { reason, retry_in });
            }
        }
    }

    fn down(
        &mut self,
        reason: String,
        retry_in: Duration,
        on_event: &mut impl FnMut(ClientEvent<'_, T>),
    ) {
        self.out.clear();
        self.session.reset(&mut |e| on_event(ClientEvent::Peer(e)));
        on_event(ClientEvent::Down { reason, retry_in });
    }

    fn ensure_connected(&self) -> Result<(), SendError> {
        if self.link.is_connected() {
            Ok(())
        } else {
            Err(SendError::Write(WriteError::NotConnected))
        }
    }

    fn flush(&mut self) -> Result<(), SendError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.link.write(&self.out).map_err(SendError::Write);
        self.out.clear();
        result
    }
}
