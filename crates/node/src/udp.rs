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
//!
//! Datagrams from sources outside `--udp-allow` are dropped unanswered and counted
//! (`udp_refused=`): a node is no reflector for a spoofed source outside it. The allow-list,
//! the fleet bound and the TIMESTAMP window follow a live reconfiguration at the next tick.
//!
//! When the node stores reports, each batch's reports go to the store after the batch; with
//! `--ack-after stored` their answers wait in a queue of held answers until the store confirms
//! them, and the receive timeout shortens to [`HELD_POLL`] while any wait.

use crate::allow::{allowed, Cidr};
use crate::auth::{AgentKeys, WorkerVerifier};
use crate::fleet::{FleetShard, NodeReport};
use crate::intake::Intake;
use crate::live::LiveWatch;
use crate::stats::{Counters, WorkerKind, WorkerSnapshot};
use crate::store::{AckAfter, StoreIntake};
use crate::timers::TICK;
use crate::worker::unix_millis;
use avp_proto::server::{DatagramAnswer, Role, ServerConfig, ServerSession};
use avp_proto::Codec;
use avp_udp::{Inbox, Outbox, Sent};
use avpd_store::Store;
use crossbeam_channel::{Sender, TrySendError};
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The receive timeout while answers wait for the store: how late a confirmed answer may go
/// out when no datagram arrives.
pub const HELD_POLL: Duration = Duration::from_millis(1);

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
    store: Option<StoreIntake>,
    held: HeldAnswers,
    /// The agent keys reports must be signed with, if any.
    verifier: Option<WorkerVerifier>,
    /// The only sources datagrams are taken from (`--udp-allow`); empty: any.
    allow: Arc<[Cidr]>,
    /// The settings that change while the node runs, when they can.
    live: Option<LiveWatch>,
}

/// Datagram answers waiting for the store to confirm their reports, oldest first.
#[derive(Debug, Default)]
struct HeldAnswers {
    /// Answers back to back, from `start`.
    bytes: Vec<u8>,
    start: usize,
    /// Each answer's ticket, destination and end in `bytes`.
    answers: VecDeque<(u64, SocketAddr, usize)>,
}

impl HeldAnswers {
    /// Holds the answer at `outbox`'s tail from `from` on, for `ticket`, to `to`.
    fn hold(&mut self, ticket: u64, to: SocketAddr, outbox: &mut Outbox, from: usize) {
        self.bytes.extend(outbox.buffer().drain(from..));
        self.answers.push_back((ticket, to, self.bytes.len()));
    }

    /// Queues in `outbox` every answer whose ticket is at most `confirmed`.
    fn release(&mut self, confirmed: u64, outbox: &mut Outbox) {
        while let Some(&(ticket, to, end)) = self.answers.front() {
            if ticket > confirmed {
                break;
            }
            outbox
                .buffer()
                .extend_from_slice(&self.bytes[self.start..end]);
            outbox.queue(Some(to));
            self.start = end;
            self.answers.pop_front();
        }
        if self.answers.is_empty() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

impl UdpWorker {
    /// A worker (status id `id`) for the bound `socket`; reports go to `fleet_tx` when there
    /// is a management plane, to `store` when the node stores them, counters to `status`.
    pub fn new(
        id: usize,
        socket: UdpSocket,
        fleet_tx: Option<Sender<Vec<NodeReport>>>,
        store: Option<(&Store, AckAfter)>,
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
            fleet: (fleet_tx.is_some() || store.is_some())
                .then(|| FleetShard::new(max_fleet_nodes)),
            fleet_tx,
            status,
            shutdown,
            // The thread polls for confirmations (see HELD_POLL): nothing to wake.
            store: store.map(|(s, ack)| StoreIntake::new(s.worker(id, Arc::new(|| {})), ack)),
            held: HeldAnswers::default(),
            verifier: None,
            allow: Arc::new([]),
            live: None,
        })
    }

    /// Takes datagrams only from sources in `ranges` (all when empty); others are dropped
    /// unanswered and counted.
    pub fn allow_only(mut self, ranges: Arc<[Cidr]>) -> UdpWorker {
        self.allow = ranges;
        self
    }

    /// Follows the live settings of `live` (allow-list, fleet bound, TIMESTAMP window).
    pub fn watch(mut self, live: LiveWatch) -> UdpWorker {
        self.live = Some(live);
        self
    }

    /// Makes every report on this socket pass the checks of `keys`.
    pub fn verify_with(mut self, keys: Arc<AgentKeys>) -> UdpWorker {
        self.verifier = Some(WorkerVerifier::new(keys));
        self
    }

    /// Serves the socket until shutdown is requested.
    pub fn run(mut self) {
        let mut next_tick = Instant::now() + TICK;
        let mut polling = false;
        while !self.shutdown.load(Ordering::Acquire) {
            let holding = !self.held.is_empty();
            if polling != holding {
                polling = holding;
                let timeout = if polling { HELD_POLL } else { TICK };
                if let Err(e) = self.socket.set_read_timeout(Some(timeout)) {
                    tracing::warn!(worker = self.id, "cannot set the receive timeout: {e}");
                }
            }
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
            self.exchange_with_store();
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick();
                next_tick = now + TICK;
            }
        }
        if let Some(store) = self.store.as_mut() {
            store.link.flush();
        }
        self.on_tick();
    }

    /// Hands the batch's reports to the store and sends the answers it confirmed since.
    fn exchange_with_store(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        store.link.flush();
        if let Some(confirmed) = store.link.confirmed() {
            self.held.release(confirmed, &mut self.outbox);
            self.send_queued();
        }
    }

    /// Answers the datagrams of the last receive and sends the answers.
    fn answer_batch(&mut self) {
        let now = Instant::now();
        let now_ms = unix_millis();
        if let Some(v) = self.verifier.as_mut() {
            v.refresh(now, now_ms);
        }
        let (counters, outbox) = (&mut self.counters, &mut self.outbox);
        for (received, bytes) in self.inbox.datagrams() {
            counters.bytes_in += received.len as u64;
            if !allowed(&self.allow, received.peer.ip()) {
                counters.udp_refused += 1;
                continue;
            }
            if received.truncated {
                counters.udp_bad_datagrams += 1;
                tracing::debug!(peer = %received.peer, "udp datagram too large, dropped");
                continue;
            }
            let mut intake = Intake {
                shard: self.fleet.as_mut(),
                peer: received.peer,
                received_ms: now_ms,
                store: self.store.as_mut(),
                verifier: self.verifier.as_mut(),
            };
            let tally = &mut counters.tally;
            let start = outbox.buffer().len();
            match self
                .session
                .handle_datagram(now, bytes, outbox.buffer(), &mut intake, tally)
            {
                Ok(DatagramAnswer::Now) => outbox.queue(Some(received.peer)),
                Ok(DatagramAnswer::Held(ticket)) => {
                    self.held.hold(ticket, received.peer, outbox, start)
                }
                Ok(DatagramAnswer::None) => {}
                Err(e) => {
                    counters.udp_bad_datagrams += 1;
                    tracing::debug!(peer = %received.peer, "udp datagram dropped: {e}");
                }
            }
        }
        self.send_queued();
    }

    /// Sends the queued answers; those the socket cannot take now are dropped and counted.
    fn send_queued(&mut self) {
        let (counters, outbox) = (&mut self.counters, &mut self.outbox);
        let queued = outbox.queued();
        if queued == 0 {
            return;
        }
        let sent = match outbox.send(&self.socket) {
            Ok(sent) => sent,
            Err(e) => {
                tracing::debug!(worker = self.id, "udp send error: {e}");
                Sent::default()
            }
        };
        counters.bytes_out += sent.bytes as u64;
        counters.udp_send_dropped += (queued - sent.datagrams) as u64;
    }

    /// Applies the live settings when they changed.
    fn apply_live(&mut self) {
        let Some(live) = self.live.as_mut().and_then(LiveWatch::changed) else {
            return;
        };
        self.allow = live.udp_allow;
        if let Some(fleet) = self.fleet.as_mut() {
            fleet.set_max_nodes(live.fleet.max_nodes);
        }
        if let (Some(verifier), Some(window)) = (self.verifier.as_mut(), live.auth_window) {
            verifier.set_window(window);
        }
    }

    /// Takes changed live settings, hands the fleet records on and reports the counters.
    fn on_tick(&mut self) {
        self.apply_live();
        if let Some(store) = &mut self.store {
            self.counters.store_refused += store.take_refused(Instant::now());
        }
        if let Some(fleet) = self.fleet.as_mut() {
            self.counters.fleet_dropped += fleet.take_dropped();
            if !fleet.is_empty() {
                let batch = fleet.drain();
                if let Some(store) = &self.store {
                    store.publish_latest(&batch);
                }
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
            kind: WorkerKind::DataUdp,
            open: 0,
            buffered: 0,
            counters: self.counters,
        };
        // A full status channel only delays a log line; the next tick sends fresher figures.
        let _ = self.status.try_send(snapshot);
    }
}
