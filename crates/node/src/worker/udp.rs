//! The UDP data plane of a worker: its sockets, one session each, and batched receive and
//! send. A wake-up drains each readable socket a batch at a time: every datagram goes to the
//! socket's session, every answer into the batch, and the batch's answers out in one call.

use crate::fleet::FleetShard;
use crate::intake::DatagramIntake;
use crate::stats::Counters;
use avp_proto::server::{DatagramAnswer, Role, ServerConfig, ServerSession};
use avp_proto::Codec;
use avp_udp::{Inbox, Outbox};
use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// The UDP sockets of one worker, and its batch buffers.
pub(super) struct UdpPlane {
    sockets: Vec<(UdpSocket, ServerSession)>,
    inbox: Inbox,
    outbox: Outbox,
}

impl UdpPlane {
    pub(super) fn new(sockets: Vec<UdpSocket>, now: Instant) -> UdpPlane {
        let config = Arc::new(ServerConfig::new(Codec::Binary, Role::Data, now));
        UdpPlane {
            sockets: sockets
                .into_iter()
                .map(|s| (s, ServerSession::new(config.clone(), now)))
                .collect(),
            inbox: Inbox::default(),
            outbox: Outbox::default(),
        }
    }

    /// Registers every socket, with tokens from `first_token` on.
    pub(super) fn register(&mut self, registry: &Registry, first_token: usize) -> io::Result<()> {
        for (i, (socket, _)) in self.sockets.iter_mut().enumerate() {
            registry.register(socket, Token(first_token + i), Interest::READABLE)?;
        }
        Ok(())
    }

    /// Stops serving (shutdown): the sockets close.
    pub(super) fn close(&mut self) {
        self.sockets.clear();
    }

    /// Answers every datagram waiting on socket `index`.
    pub(super) fn on_readable(
        &mut self,
        index: usize,
        now: Instant,
        now_ms: u64,
        mut fleet: Option<&mut FleetShard>,
        counters: &mut Counters,
    ) {
        let Some((socket, session)) = self.sockets.get_mut(index) else {
            return;
        };
        let (inbox, outbox) = (&mut self.inbox, &mut self.outbox);
        loop {
            match inbox.recv(socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors from earlier sends surface here; the socket stays usable.
                    tracing::debug!("udp receive error: {e}");
                    continue;
                }
            }
            for (received, bytes) in inbox.datagrams() {
                if received.truncated {
                    counters.udp_bad_datagrams += 1;
                    tracing::debug!(peer = %received.peer, "udp datagram too large, dropped");
                    continue;
                }
                let mut intake = DatagramIntake {
                    shard: fleet.as_deref_mut(),
                    peer: received.peer,
                    received_ms: now_ms,
                };
                let tally = &mut counters.tally;
                match session.handle_datagram(now, bytes, outbox.buffer(), &mut intake, tally) {
                    // The UDP intake acknowledges at once: no answer is ever held here.
                    Ok(DatagramAnswer::Now | DatagramAnswer::Held(_)) => {
                        outbox.queue(Some(received.peer))
                    }
                    Ok(DatagramAnswer::None) => {}
                    Err(e) => {
                        counters.udp_bad_datagrams += 1;
                        tracing::debug!(peer = %received.peer, "udp datagram dropped: {e}");
                    }
                }
            }
            let queued = outbox.queued();
            let sent = match outbox.send(socket) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("udp send error: {e}");
                    0
                }
            };
            counters.udp_send_dropped += (queued - sent) as u64;
        }
    }
}
