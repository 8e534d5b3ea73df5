//! The UDP data plane: one thread per UDP socket of the port's SO_REUSEPORT group, each
//! blocking in `recvmmsg` on its socket.
//!
//! A UDP socket is not registered with any event loop: a socket that an epoll instance watches
//! pays a wake-up of that instance for every datagram it receives and for every datagram it
//! sends (the kernel tells watchers the send buffer has room), about a tenth of the cost of a
//! datagram on loopback. Each thread instead waits in `recvmmsg` for the first datagram of a
//! batch and takes whatever else is queued with it, hands every datagram to the socket's
//! [`ServerSession`], and sends the batch's answers with one `sendmmsg`. The socket's receive
//! timeout ([`TICK`]) brings the thread back to flush its fleet records, report its counters
//! and see a shutdown when no datagram comes.

use crate::fleet::{FleetShard, NodeReport};
use crate::intake::DatagramIntake;
use crate::stats::{Counters, WorkerSnapshot};
use crate::timers::TICK;
use crate::worker::unix_millis;
use avp_proto::server::{DatagramAnswer, Role, ServerConfig, ServerSession};
use avp_proto::Codec;
use avp_udp::{Inbox, Outbox};
use crossbeam_channel::{Sender, TrySendError};
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One UDP socket and the thread state that serves it.
pub struct UdpWorker {
    id: usize,
    socket: UdpSocket,
    session: ServerSession,
    inbox: Inbox,
    outbox: Outbox,
    counters: Counters,
    /// `None` when nothing consumes the fleet view.
    fleet: Option<FleetShard>,
    fleet_tx: Option<Sender<Vec<NodeReport>>>,
    status: Sender<WorkerSnapshot>,
    shutdown: Arc<AtomicBool>,
}

impl UdpWorker {
    /// A worker (status id `id`) for the bound `socket`; reports go to `fleet_tx` when there
    /// is a management plane, counters to `status`.
    pub fn new(
        id: usize,
        socket: UdpSocket,
        fleet_tx: Option<Sender<Vec<NodeReport>>>,
        max_fleet_nodes: usize,
        status: Sender<WorkerSnapshot>,
        shutdown: Arc<AtomicBool>,
    ) -> io::Result<UdpWorker> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(Some(TICK))?;
        let now = Instant::now();
        let config = Arc::new(ServerConfig::new(Codec::Binary, Role::Data, now));
        Ok(UdpWorker {
            id,
            socket,
            session: ServerSession::new(config, now),
            inbox: Inbox::default(),
            outbox: Outbox::default(),
            counters: Counters::default(),
            fleet: fleet_tx.is_some().then(|| FleetShard::new(max_fleet_nodes)),
            fleet_tx,
            status,
            shutdown,
        })
    }

    /// Serves the socket until shutdown is requested.
    pub fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        while !self.shutdown.load(Ordering::Acquire) {
            match self.inbox.recv_wait(&self.socket) {
                Ok(_) => self.answer_batch(),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // ICMP errors from earlier sends surface here; the socket stays usable.
                Err(e) => tracing::debug!(worker = self.id, "udp receive error: {e}"),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick();
                next_tick = now + TICK;
            }
        }
        self.on_tick();
    }

    /// Answers the datagrams of the last receive and sends the answers.
    fn answer_batch(&mut self) {
        let now = Instant::now();
        let now_ms = unix_millis();
        let (counters, outbox) = (&mut self.counters, &mut self.outbox);
        for (received, bytes) in self.inbox.datagrams() {
            if received.truncated {
                counters.udp_bad_datagrams += 1;
                tracing::debug!(peer = %received.peer, "udp datagram too large, dropped");
                continue;
            }
            let mut intake = DatagramIntake {
                shard: self.fleet.as_mut(),
                peer: received.peer,
                received_ms: now_ms,
            };
            let tally = &mut counters.tally;
            match self
                .session
                .handle_datagram(now, bytes, outbox.buffer(), &mut intake, tally)
            {
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
        let sent = match outbox.send(&self.socket) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(worker = self.id, "udp send error: {e}");
                0
            }
        };
        counters.udp_send_dropped += (queued - sent) as u64;
    }

    /// Hands the fleet records on and reports the counters.
    fn on_tick(&mut self) {
        if let Some(fleet) = self.fleet.as_mut() {
            self.counters.fleet_dropped += fleet.take_dropped();
            if !fleet.is_empty() {
                let batch = fleet.drain();
                if let Some(tx) = &self.fleet_tx {
                    match tx.try_send(batch) {
                        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                        Err(TrySendError::Full(batch)) => {
                            self.counters.fleet_dropped += batch.len() as u64
                        }
                    }
                }
            }
        }
        let snapshot = WorkerSnapshot {
            worker: self.id,
            open: 0,
            counters: self.counters,
        };
        // A full status channel only delays a log line; the next tick sends fresher figures.
        let _ = self.status.try_send(snapshot);
    }
}
