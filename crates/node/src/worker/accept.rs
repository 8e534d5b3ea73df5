//! Accepting connections: admission against the node-wide bound, the session and transport
//! (plain or TLS) each connection gets, and a pause when accept() fails for want of
//! descriptors.

use super::{Worker, FIRST_CONNECTION};
use crate::net::conn::Connection;
use crate::net::tls;
use crate::net::transport::Transport;
use avp_proto::server::ServerSession;
use avp_proto::{result_code, Codec, Message};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long accepting pauses after accept() fails with anything but WouldBlock (EMFILE...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning about failed accepts per this long.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Whether accepting is paused, and when it last warned.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    paused_until: Option<Instant>,
    last_warning: Option<Instant>,
}

impl Backoff {
    /// When accepting resumes, while it is paused.
    pub(super) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// True (once) when a pause has run out: the caller accepts what waited meanwhile.
    pub(super) fn resume_due(&mut self, now: Instant) -> bool {
        let due = self.paused_until.is_some_and(|t| now >= t);
        if due {
            self.paused_until = None;
        }
        due
    }
}

impl Worker {
    /// Accepts until the listener would block (or accepting must pause).
    pub(super) fn on_accept(&mut self, index: usize, now: Instant) {
        while self.accept.paused_until.is_none() {
            match self.tcp[index].listener.accept() {
                Ok((stream, peer)) => self.admit(index, stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the backlog stays full and the listener stays
                    // readable, so retrying at once would spin a core. Back off instead.
                    self.counters.accept_errors += 1;
                    self.accept.paused_until = Some(now + ACCEPT_BACKOFF);
                    let quiet = self
                        .accept
                        .last_warning
                        .is_some_and(|t| now.duration_since(t) < WARN_EVERY);
                    if !quiet {
                        self.accept.last_warning = Some(now);
                        tracing::warn!(
                            worker = self.id,
                            "accept failed, pausing accepts for {ACCEPT_BACKOFF:?}: {e}"
                        );
                    }
                }
            }
        }
    }

    fn admit(&mut self, index: usize, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        let config = self.tcp[index].session.clone();
        let tls = self.tcp[index].tls.clone();
        if self.limits.open.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
            self.limits.open.fetch_sub(1, Ordering::AcqRel);
            self.counters.rejected += 1;
            // A TLS peer cannot read a plaintext answer: it only sees the connection close.
            if tls.is_none() {
                refuse(&mut stream, config.codec);
            }
            tracing::debug!(%peer, "connection refused: --max-connections reached");
            return;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let mut transport = match tls {
            None => Transport::Plain(stream),
            Some(tls) => match tls::accept(stream, tls, now + config.frame_timeout) {
                Ok(t) => Transport::Tls(Box::new(t)),
                Err(e) => {
                    self.limits.open.fetch_sub(1, Ordering::AcqRel);
                    // Accepted and closed at once: a TLS refusal like the handshake's.
                    self.counters.accepted += 1;
                    self.counters.closed += 1;
                    self.counters.tls_refused += 1;
                    tracing::warn!(%peer, "cannot start a TLS connection: {e}");
                    return;
                }
            },
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut transport,
            Token(FIRST_CONNECTION + key),
            Interest::READABLE,
        ) {
            self.limits.open.fetch_sub(1, Ordering::AcqRel);
            self.counters.io_errors += 1;
            tracing::warn!(%peer, "cannot register connection: {e}");
            return;
        }
        let session = ServerSession::new(config, now);
        let mut conn = Connection::new(transport, peer, session);
        conn.timer = self.timers.slot();
        let at = conn.poll_timeout(now);
        self.timers.arm(key, &mut conn.timer, at);
        entry.insert(Some(conn));
        self.counters.accepted += 1;
    }
}

/// Best effort: tell a refused peer why before closing.
fn refuse(stream: &mut TcpStream, codec: Codec) {
    let mut out = Vec::with_capacity(64);
    let msg = Message::command_response(None, result_code::OVERLOADED, "too many connections");
    if codec.encode(&msg, &mut out).is_ok() {
        // The socket is fresh and its send buffer empty; a failed write changes nothing.
        let _ = stream.write(&out);
    }
}
