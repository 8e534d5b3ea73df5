//! One worker thread: a mio `Poll`, its own listeners, and the connections they accepted.
//!
//! The loop follows mio's `tcp_server` example and Redis' `ae.c`: token constants at the top,
//! `poll` retried on EINTR, dispatch by token to one handler per kind of event, accept and read
//! until WouldBlock (mio's "Draining readiness"), and periodic work on a tick. Data-plane
//! workers hand their fleet shard to the management plane over a channel each tick; the
//! management-plane worker (the one with a [`Pusher`]) pushes the fleet view to its
//! connections every report interval.

use crate::fleet::{FleetShard, FleetView, NodeReport};
use crate::net::buffer::BufferPool;
use crate::net::conn::{CloseReason, Connection, Context};
use crate::session::Session;
use crate::stats::{Counters, WorkerSnapshot};
use avp_proto::{decode_datagram, result_code, Body, Codec, Message, Report};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Token of the waker that signals shutdown.
const WAKER: Token = Token(usize::MAX);
/// Tokens below this are listeners (TCP first, then UDP); connections start here.
const FIRST_CONNECTION: usize = 1 << 16;
/// How often the worker flushes its fleet shard, reports its counters and sweeps idle peers.
const TICK: Duration = Duration::from_millis(250);
/// How long accepting pauses after accept() fails with anything but WouldBlock (EMFILE...).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a graceful shutdown may spend sending the answers already owed.
pub const DRAIN_LIMIT: Duration = Duration::from_millis(1500);
/// Largest UDP datagram: one maximal frame.
const MAX_DATAGRAM: usize = avp_proto::frame::MAX_FRAME_LEN;

/// The [`Context`] of a worker's fields; a macro rather than a method so that the borrow
/// checker sees which fields are borrowed (the connection slab stays free).
macro_rules! context {
    ($worker:ident, $now:expr, $now_ms:expr) => {
        Context {
            pool: &mut $worker.pool,
            counters: &mut $worker.counters,
            fleet: &mut $worker.fleet,
            now: $now,
            now_ms: $now_ms,
            max_output: $worker.limits.max_output,
        }
    };
}

/// A TCP listener and what its connections speak.
pub struct TcpEntry {
    /// The bound, non-blocking listener.
    pub listener: TcpListener,
    /// The wire form of its connections.
    pub codec: Codec,
    /// True on the management plane: its connections receive pushed reports.
    pub pushing: bool,
}

/// Limits and shared state every worker of a node uses.
#[derive(Clone)]
pub struct Limits {
    /// Unsent output at which a connection stops being read.
    pub max_output: usize,
    /// Connections silent for this long are closed.
    pub idle_timeout: Duration,
    /// Most connections open at once over all workers of the node.
    pub max_connections: usize,
    /// Connections open now over all workers of the node.
    pub open: Arc<AtomicUsize>,
    /// Most distinct nodes a fleet shard or view holds.
    pub max_fleet_nodes: usize,
}

/// The management plane's part of a worker: the fleet view and when to push it.
pub struct Pusher {
    /// Batches of reports from the data-plane workers.
    pub updates: Receiver<Vec<NodeReport>>,
    /// Time between pushes.
    pub interval: Duration,
    /// Unacknowledged pushes at which a connection is not pushed more.
    pub max_unacked: usize,
}

/// How a worker talks to the rest of the node.
pub struct Links {
    /// Where the fleet shard goes each tick (data plane), if there is a management plane.
    pub fleet: Option<Sender<Vec<NodeReport>>>,
    /// Where counter snapshots go each tick.
    pub status: Option<Sender<WorkerSnapshot>>,
    /// Set to ask every worker to stop.
    pub shutdown: Arc<AtomicBool>,
}

/// A worker ready to run on its own thread.
pub struct Worker {
    id: usize,
    poll: Poll,
    tcp: Vec<TcpEntry>,
    udp: Vec<UdpSocket>,
    conns: Slab<Option<Connection>>,
    closed_this_round: Vec<usize>,
    pool: BufferPool,
    counters: Counters,
    fleet: FleetShard,
    limits: Limits,
    links: Links,
    pusher: Option<(Pusher, FleetView)>,
    accept_paused_until: Option<Instant>,
    last_accept_warning: Option<Instant>,
    udp_in: Box<[u8]>,
    udp_out: Vec<u8>,
}

impl Worker {
    /// Builds a worker over its listeners and returns it with the waker that interrupts it.
    pub fn new(
        id: usize,
        tcp: Vec<TcpEntry>,
        udp: Vec<UdpSocket>,
        limits: Limits,
        links: Links,
        pusher: Option<Pusher>,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut worker = Worker {
            id,
            poll,
            tcp,
            udp,
            conns: Slab::new(),
            closed_this_round: Vec::new(),
            pool: BufferPool::new(1024),
            counters: Counters::default(),
            fleet: FleetShard::new(limits.max_fleet_nodes),
            pusher: pusher.map(|p| (p, FleetView::new(limits.max_fleet_nodes))),
            limits,
            links,
            accept_paused_until: None,
            last_accept_warning: None,
            udp_in: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            udp_out: Vec::with_capacity(512),
        };
        for (i, entry) in worker.tcp.iter_mut().enumerate() {
            worker
                .poll
                .registry()
                .register(&mut entry.listener, Token(i), Interest::READABLE)?;
        }
        let first_udp = worker.tcp.len();
        for (i, socket) in worker.udp.iter_mut().enumerate() {
            worker
                .poll
                .registry()
                .register(socket, Token(first_udp + i), Interest::READABLE)?;
        }
        Ok((worker, waker))
    }

    /// Runs the event loop until shutdown is requested and the owed answers are sent.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let mut next_push = Instant::now();
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wake_at = next_tick;
            if self.pusher.is_some() {
                wake_at = wake_at.min(next_push);
            }
            if let Some(t) = self.accept_paused_until {
                wake_at = wake_at.min(t);
            }
            if let Err(e) = self
                .poll
                .poll(&mut events, Some(wake_at.saturating_duration_since(now)))
            {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(worker = self.id, "poll failed, worker stops: {e}");
                break;
            }
            let now = Instant::now();
            let now_ms = unix_millis();
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(i) if i < self.tcp.len() => self.on_accept(i, now),
                    Token(i) if i < FIRST_CONNECTION => {
                        self.on_datagrams(i - self.tcp.len(), now, now_ms)
                    }
                    Token(i) => self.on_connection_event(
                        i - FIRST_CONNECTION,
                        event.is_read_closed(),
                        now,
                        now_ms,
                    ),
                }
            }
            self.free_closed_slots();
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                for i in 0..self.tcp.len() {
                    self.on_accept(i, now);
                }
            }
            if drain_deadline.is_none() && self.links.shutdown.load(Ordering::Acquire) {
                drain_deadline = Some(now + DRAIN_LIMIT);
                self.begin_drain(now, now_ms);
            }
            if let Some(interval) = self.pusher.as_ref().map(|(p, _)| p.interval) {
                if now >= next_push && drain_deadline.is_none() {
                    self.push_fleet(now, now_ms);
                    next_push = now + interval;
                }
            }
            if now >= next_tick {
                self.on_tick(now);
                next_tick = now + TICK;
            }
            if let Some(deadline) = drain_deadline {
                if self.conns.is_empty() || now >= deadline {
                    break;
                }
            }
        }
        self.close_all();
        self.on_tick(Instant::now());
    }

    fn on_accept(&mut self, index: usize, now: Instant) {
        while self.accept_paused_until.is_none() {
            match self.tcp[index].listener.accept() {
                Ok((stream, peer)) => self.admit(index, stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the backlog stays full and the listener stays
                    // readable, so retrying at once would spin a core. Back off instead.
                    self.counters.accept_errors += 1;
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    if self
                        .last_accept_warning
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        self.last_accept_warning = Some(now);
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
        let codec = self.tcp[index].codec;
        if self.limits.open.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
            self.limits.open.fetch_sub(1, Ordering::AcqRel);
            self.counters.rejected += 1;
            refuse(&mut stream, codec);
            tracing::debug!(%peer, "connection refused: --max-connections reached");
            return;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let entry = self.conns.vacant_entry();
        let token = Token(FIRST_CONNECTION + entry.key());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            self.limits.open.fetch_sub(1, Ordering::AcqRel);
            self.counters.io_errors += 1;
            tracing::warn!(%peer, "cannot register connection: {e}");
            return;
        }
        let session = if self.tcp[index].pushing {
            Session::new_pushing()
        } else {
            Session::new()
        };
        entry.insert(Some(Connection::new(stream, peer, codec, session, now)));
        self.counters.accepted += 1;
    }

    fn on_connection_event(&mut self, key: usize, read_closed: bool, now: Instant, now_ms: u64) {
        let token = Token(FIRST_CONNECTION + key);
        let mut ctx = context!(self, now, now_ms);
        // A stale event for a slot closed earlier in this round finds None and is ignored.
        let Some(Some(conn)) = self.conns.get_mut(key) else {
            return;
        };
        if read_closed {
            conn.note_read_closed();
        }
        if let Err(reason) = conn.drive(self.poll.registry(), token, &mut ctx) {
            self.close(key, reason);
        }
    }

    fn on_datagrams(&mut self, index: usize, now: Instant, now_ms: u64) {
        let Some(socket) = self.udp.get(index) else {
            return;
        };
        loop {
            let (len, peer) = match socket.recv_from(&mut self.udp_in) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors from earlier sends surface here; the socket stays usable.
                    tracing::debug!(worker = self.id, "udp receive error: {e}");
                    continue;
                }
            };
            let frame = match decode_datagram(&self.udp_in[..len]) {
                Ok(frame) => frame,
                Err(e) => {
                    self.counters.udp_bad_datagrams += 1;
                    tracing::debug!(%peer, "udp datagram dropped: {e}");
                    continue;
                }
            };
            let decoded = Message::parse(frame).into();
            let outcome = Session::new().handle(now, &decoded);
            self.counters.count(outcome.kind, 1);
            if let Some(report) = outcome.report {
                self.fleet.record(peer, report, 1, now_ms);
            }
            if let Some(answer) = &outcome.answer {
                self.udp_out.clear();
                if answer.encode(&mut self.udp_out).is_ok() {
                    match socket.send_to(&self.udp_out, peer) {
                        Ok(_) => self.counters.answers += 1,
                        Err(e) => {
                            self.counters.udp_send_dropped += 1;
                            tracing::debug!(%peer, "udp answer dropped: {e}");
                        }
                    }
                }
            }
        }
    }

    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(mut conn) = slot.take() else { return };
        match &reason {
            CloseReason::PeerClosed => tracing::trace!(peer = %conn.peer(), "closed: {reason}"),
            CloseReason::Idle => {
                self.counters.idle_closed += 1;
                tracing::debug!(peer = %conn.peer(), "closed: {reason}");
            }
            CloseReason::Framing(_) => {
                self.counters.framing_errors += 1;
                tracing::info!(peer = %conn.peer(), "closed: {reason}");
            }
            CloseReason::Io(_) => {
                self.counters.io_errors += 1;
                tracing::debug!(peer = %conn.peer(), "closed: {reason}");
            }
        }
        if let Err(e) = self.poll.registry().deregister(conn.stream_mut()) {
            tracing::debug!("deregister failed: {e}");
        }
        conn.flush_report(&mut self.fleet);
        conn.release(&mut self.pool);
        self.counters.closed += 1;
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        self.closed_this_round.push(key);
    }

    fn free_closed_slots(&mut self) {
        for key in self.closed_this_round.drain(..) {
            self.conns.remove(key);
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter_map(|(key, c)| c.as_ref().map(|c| (key, c)))
            .filter(|(_, c)| now.duration_since(c.last_activity()) >= self.limits.idle_timeout)
            .map(|(key, _)| key)
            .collect();
        for key in idle {
            self.close(key, CloseReason::Idle);
        }
        self.free_closed_slots();
        for (_, conn) in self.conns.iter_mut() {
            if let Some(conn) = conn.as_mut() {
                conn.flush_report(&mut self.fleet);
            }
        }
        self.counters.fleet_dropped += self.fleet.take_dropped();
        if !self.fleet.is_empty() {
            let batch = self.fleet.drain();
            if let Some((_, view)) = self.pusher.as_mut() {
                view.apply(batch);
            } else if let Some(tx) = &self.links.fleet {
                match tx.try_send(batch) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(batch)) => {
                        self.counters.fleet_dropped += batch.len() as u64
                    }
                }
            }
        }
        if let Some(tx) = &self.links.status {
            let snapshot = WorkerSnapshot {
                worker: self.id,
                open: self.conns.len() - self.closed_this_round.len(),
                counters: self.counters,
            };
            // A full status channel only delays a log line; the next tick sends fresher figures.
            let _ = tx.try_send(snapshot);
        }
    }

    fn push_fleet(&mut self, now: Instant, now_ms: u64) {
        let Some((pusher, mut view)) = self.pusher.take() else {
            return;
        };
        let before = view.dropped();
        view.apply(pusher.updates.try_iter().flatten());
        self.counters.fleet_dropped += view.dropped() - before;
        let max_output = self.limits.max_output;
        self.drive_each(now, now_ms, max_output, |conn, ctx| {
            for node in view.iter() {
                if !conn.session_mut().may_push(now, pusher.max_unacked)
                    || !conn.push(report_message(node), ctx)
                {
                    break;
                }
            }
        });
        self.pusher = Some((pusher, view));
    }

    fn begin_drain(&mut self, now: Instant, now_ms: u64) {
        for entry in &mut self.tcp {
            if let Err(e) = self.poll.registry().deregister(&mut entry.listener) {
                tracing::debug!("deregister listener failed: {e}");
            }
        }
        self.tcp.clear();
        self.udp.clear();
        // What is already buffered is owed an answer, whatever the output bound.
        self.drive_each(now, now_ms, usize::MAX, |conn, _| conn.close_input());
        self.free_closed_slots();
    }

    /// Runs `prepare` on every open connection, then drives it; closes those that fail.
    fn drive_each(
        &mut self,
        now: Instant,
        now_ms: u64,
        max_output: usize,
        mut prepare: impl FnMut(&mut Connection, &mut Context<'_>),
    ) {
        let mut ctx = context!(self, now, now_ms);
        ctx.max_output = max_output;
        let mut failed = Vec::new();
        for (key, slot) in self.conns.iter_mut() {
            let Some(conn) = slot.as_mut() else { continue };
            prepare(conn, &mut ctx);
            let token = Token(FIRST_CONNECTION + key);
            if let Err(reason) = conn.drive(self.poll.registry(), token, &mut ctx) {
                failed.push((key, reason));
            }
        }
        for (key, reason) in failed {
            self.close(key, reason);
        }
    }

    fn close_all(&mut self) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(k, _)| k)
            .collect();
        if !keys.is_empty() {
            tracing::warn!(
                worker = self.id,
                "shutdown: closing {} connections with unsent answers",
                keys.len()
            );
        }
        for key in keys {
            self.close(key, CloseReason::PeerClosed);
        }
        self.free_closed_slots();
    }
}

fn report_message(node: &NodeReport) -> Message<'_> {
    Message {
        sequence: None,
        body: Body::StatReport(Report {
            cpu_percent: node.cpu_percent,
            mem_percent: node.mem_percent,
            timestamp_ms: Some(node.timestamp_ms),
            node_id: Some(node.node.as_str().into()),
        }),
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

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
