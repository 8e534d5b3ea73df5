//! Closing a worker's connection: the reason counted and logged (rate-limited where a peer
//! can cause it), the socket deregistered, and what the connection held given back.

use super::{unix_millis, Worker};
use crate::net::conn::CloseReason;
use crate::net::tls;
use avp_proto::server;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Worker {
    /// Closes the connection in slot `key` for `reason`; its slot is freed by
    /// [`Worker::free_closed_slots`], once no event of this round can name it.
    pub(super) fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(mut conn) = slot.take() else { return };
        let peer = conn.peer();
        let (held, _) = conn.account();
        self.budget.charge(held, 0);
        let c = &mut self.counters;
        match &reason {
            CloseReason::PeerClosed => {
                c.peer_closed += 1;
                tracing::trace!(%peer, "closed: {reason}");
            }
            CloseReason::Shutdown => tracing::debug!(%peer, "closed: {reason}"),
            CloseReason::Session(server::CloseReason::Idle) => {
                c.idle_closed += 1;
                tracing::debug!(%peer, "closed: {reason}");
            }
            CloseReason::Session(server::CloseReason::FrameTimeout) => {
                c.frame_timeouts += 1;
                tracing::debug!(%peer, "closed: {reason}");
            }
            CloseReason::Session(server::CloseReason::AckTimeout) => {
                c.ack_timeouts += 1;
                if self.log.allow(Instant::now()) {
                    tracing::info!(%peer, "closed: {reason}");
                }
            }
            CloseReason::Session(_) => {
                c.framing_errors += 1;
                if self.log.allow(Instant::now()) {
                    tracing::info!(%peer, "closed: {reason}");
                }
            }
            CloseReason::Io(e) if tls::failure(e).is_some_and(|f| f.handshake) => {
                c.tls_refused += 1;
                self.tls_refusals.log(peer, e);
            }
            CloseReason::HandshakeTimeout => {
                c.tls_refused += 1;
                self.tls_refusals.log(peer, &reason);
            }
            CloseReason::Io(_) => {
                c.io_errors += 1;
                tracing::debug!(%peer, "closed: {reason}");
            }
            CloseReason::SlowPeer => {
                c.slow_peers += 1;
                if self.log.allow(Instant::now()) {
                    tracing::info!(%peer, "closed: {reason}");
                }
            }
        }
        if !matches!(reason, CloseReason::Io(_)) {
            conn.stream_mut().close();
        }
        if let Err(e) = self.poll.registry().deregister(conn.stream_mut()) {
            tracing::debug!("deregister failed: {e}");
        }
        if let Some(fleet) = self.fleet.as_mut() {
            conn.flush_report(fleet, unix_millis());
        }
        if conn.is_listed_holding() {
            self.holding.retain(|&k| k != key);
        }
        if let Some(push) = self.push.as_mut() {
            push.forget(key);
        }
        let node = conn.listed_node().map(str::to_string);
        self.unlist_agent(key, node.as_deref());
        conn.release(&mut self.pool);
        self.counters.closed += 1;
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        self.closed_this_round.push(key);
    }

    /// Frees the slots of the connections closed this round.
    pub(super) fn free_closed_slots(&mut self) {
        for key in self.closed_this_round.drain(..) {
            self.conns.remove(key);
        }
    }
}
