//! One worker thread: a mio `Poll`, its own listeners, and the connections they accepted.
//!
//! The loop follows mio's `tcp_server` example and Redis' `ae.c`: token constants at the top,
//! `poll` retried on EINTR, dispatch by token to one handler per kind of event, accept and read
//! until WouldBlock (mio's "Draining readiness"). Each responsibility has its own module:
//! [`accept`] admits connections, [`close`] closes them, [`shed`] keeps the node within its
//! memory budget, [`push`] sends the fleet view to terminals (the management plane's worker
//! only), [`agents`] and [`command`] relay operators' commands, [`live`] applies changed
//! settings; this one runs the loop, drives connections, fires their deadlines from the timer
//! wheel ([`crate::timers`]), hands each round's reports to the store and sends the answers it
//! held for them once they are stored ([`crate::store`]), and on each tick flushes the fleet
//! records of the connections that received reports and reports its counters.

mod accept;
mod agents;
mod close;
mod command;
mod live;
mod push;
mod shed;

pub use agents::RelaySide;
pub use command::CommandSide;
pub use push::Pusher;

use crate::auth::{AgentKeys, WorkerVerifier};
use crate::fleet::{FleetShard, NodeReport};
use crate::live::LiveWatch;
use crate::loglimit::LogLimit;
use crate::net::budget::{Budget, Totals};
use crate::net::buffer::BufferPool;
use crate::net::conn::{CloseReason, Connection, Context, Driven, Released};
use crate::net::tls::RefusalLog;
use crate::stats::{Counters, WorkerKind, WorkerSnapshot};
use crate::store::{AckAfter, StoreIntake};
use crate::timers::{Timers, TICK};
use avp_proto::server::ServerConfig;
use avpd_store::Store;
use crossbeam_channel::{Sender, TrySendError};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use push::PushPlane;
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Token of the waker that signals shutdown.
const WAKER: Token = Token(usize::MAX);
/// Tokens below this are listeners; connections start here.
const FIRST_CONNECTION: usize = 1 << 16;
/// How long a graceful shutdown may spend sending the answers already owed.
pub const DRAIN_LIMIT: Duration = Duration::from_millis(1500);
/// How long a round drives the connections left with work in earlier rounds, at most; the
/// clock is read after each of them, as one turn can take some 50 µs (a read, 4 KiB of
/// answers and their write) when the kernel is short of socket memory, so a round drives one
/// or two. Against 10,000 peers that never read, a probe's p99 was 0.19-0.25 ms with 50 µs
/// (0.15-0.18 ms alone), 0.25-1.5 ms with 100 µs (bench/never_reading.py, four runs each).
const AGAIN_SLICE: Duration = Duration::from_micros(50);

/// A TCP listener and the settings of its connections' sessions.
pub struct TcpEntry {
    /// The bound, non-blocking listener.
    pub listener: TcpListener,
    /// Wire form, plane and timeouts of its connections.
    pub session: Arc<ServerConfig>,
    /// The TLS its connections speak, for a `tls://` endpoint.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Limits and shared state every worker of a node uses.
#[derive(Clone)]
pub struct Limits {
    /// Unsent output at which a connection stops being read.
    pub max_output: usize,
    /// Most connections open at once over all workers of the node.
    pub max_connections: usize,
    /// Connections open now over all workers of the node.
    pub open: Arc<AtomicUsize>,
    /// Most distinct nodes a fleet shard or view holds.
    pub max_fleet_nodes: usize,
    /// Bytes of buffers held over all workers of the node, as each last published.
    pub buffered: Arc<Totals>,
    /// The budget `buffered` must stay within (`--max-buffer-memory`).
    pub max_buffer_memory: usize,
}

/// How a worker talks to the rest of the node.
pub struct Links {
    /// Where the fleet shard goes each tick (data plane), if there is a management plane.
    pub fleet: Option<Sender<Vec<NodeReport>>>,
    /// The node's store and when acknowledgements go out, if the node stores reports.
    pub store: Option<(Arc<Store>, AckAfter)>,
    /// Commands relayed to this worker's agents (data plane).
    pub relay: Option<RelaySide>,
    /// Where counter snapshots go each tick.
    pub status: Option<Sender<WorkerSnapshot>>,
    /// Set to ask every worker to stop.
    pub shutdown: Arc<AtomicBool>,
    /// The settings that change while the node runs, when they can.
    pub live: Option<LiveWatch>,
}

/// A worker ready to run on its own thread.
pub struct Worker {
    id: usize,
    poll: Poll,
    tcp: Vec<TcpEntry>,
    /// A slot closed during a round stays `None` until the round ends, so that a stale event
    /// for it cannot reach a connection accepted into the same slot.
    conns: Slab<Option<Connection>>,
    closed_this_round: Vec<usize>,
    /// When [`Worker::shed_partial_frames`] may walk the connections again.
    next_shed: Instant,
    /// Connections whose latest-report cache holds a report to flush.
    dirty: Vec<usize>,
    /// The worker's link to the store, when the node stores reports.
    store: Option<StoreIntake>,
    /// Connections holding answers until the store confirms their reports.
    holding: Vec<usize>,
    /// Connections whose read, answer or write budget ran out with work left, oldest first:
    /// driven again in later rounds, for [`AGAIN_SLICE`] a round at most.
    again: VecDeque<usize>,
    /// Connections whose slow-peer deadline runs, closed first when over the memory budget.
    slow: Vec<usize>,
    /// This worker's share of the node's memory budget.
    budget: Budget,
    /// Commands relayed to this worker's agents (data plane).
    relay: Option<RelaySide>,
    /// Terminals' commands for the fleet (management plane).
    commands: Option<CommandSide>,
    timers: Timers,
    pool: BufferPool,
    counters: Counters,
    /// The fleet records of this worker's peers; `None` when nothing consumes the fleet view
    /// (no management plane), so reports are not recorded at all.
    fleet: Option<FleetShard>,
    limits: Limits,
    links: Links,
    push: Option<PushPlane>,
    accept: accept::Backoff,
    tls_refusals: RefusalLog,
    /// The agent keys reports must be signed with, if any.
    verifier: Option<WorkerVerifier>,
    /// Bounds the log lines peers cause.
    log: LogLimit,
}

/// The [`Lists`] of a worker's fields, for [`settle`]; a macro for the same reason as
/// [`context`].
macro_rules! lists {
    ($worker:ident) => {
        Lists {
            timers: &mut $worker.timers,
            dirty: &mut $worker.dirty,
            holding: Some(&mut $worker.holding),
            again: &mut $worker.again,
            slow: &mut $worker.slow,
            budget: &mut $worker.budget,
        }
    };
}

/// The [`Context`] of a worker's fields; a macro rather than a method so that the borrow
/// checker sees which fields are borrowed (the connection slab stays free).
macro_rules! context {
    ($worker:ident, $now:expr, $now_ms:expr) => {
        Context {
            pool: &mut $worker.pool,
            tally: &mut $worker.counters.tally,
            bytes_in: &mut $worker.counters.bytes_in,
            bytes_out: &mut $worker.counters.bytes_out,
            shard: $worker.fleet.as_mut(),
            now: $now,
            now_ms: $now_ms,
            max_output: $worker.budget.output_bound(),
            may_grow_input: $worker.budget.may_grow_input(),
            store: $worker.store.as_mut(),
            verifier: $worker.verifier.as_mut(),
            commands: $worker.commands.as_mut().map(|c| &mut c.queue),
            answered: $worker.relay.as_mut().map(|r| r.desk_answers()),
        }
    };
}

impl Worker {
    /// Builds a worker over its listeners and returns it with the waker that interrupts it.
    pub fn new(
        id: usize,
        tcp: Vec<TcpEntry>,
        limits: Limits,
        mut links: Links,
        mut pusher: Option<Pusher>,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let now = Instant::now();
        let store = links.store.as_ref().map(|(store, ack_after)| {
            let waker = waker.clone();
            let wake = Arc::new(move || {
                if let Err(e) = waker.wake() {
                    tracing::warn!("cannot wake a worker for its stored reports: {e}");
                }
            });
            StoreIntake::new(store.worker(id, wake), *ack_after)
        });
        // Nothing consumes the fleet view without a management plane or a store: then reports
        // are not recorded at all.
        let fleet_consumed = links.fleet.is_some() || pusher.is_some() || store.is_some();
        let commands = pusher
            .as_mut()
            .and_then(|p| p.relayer.take())
            .map(|relayer| CommandSide::new(relayer, waker.clone()));
        let relay = links.relay.take();
        let mut worker = Worker {
            id,
            poll,
            tcp,
            // Room for every connection this worker may hold, reserved up front: growing a
            // slab of thousands of connections would copy it and keep both copies resident.
            conns: Slab::with_capacity(limits.max_connections),
            closed_this_round: Vec::new(),
            next_shed: Instant::now(),
            dirty: Vec::new(),
            store,
            holding: Vec::new(),
            again: VecDeque::new(),
            slow: Vec::new(),
            budget: Budget::new(
                limits.buffered.clone(),
                limits.max_buffer_memory,
                limits.max_output,
            ),
            relay,
            commands,
            timers: Timers::new(now),
            pool: BufferPool::new(1024),
            counters: Counters::default(),
            fleet: fleet_consumed.then(|| FleetShard::new(limits.max_fleet_nodes)),
            push: pusher.map(PushPlane::new),
            limits,
            links,
            accept: accept::Backoff::default(),
            tls_refusals: RefusalLog::default(),
            verifier: None,
            log: LogLimit::default(),
        };
        for (i, entry) in worker.tcp.iter_mut().enumerate() {
            worker
                .poll
                .registry()
                .register(&mut entry.listener, Token(i), Interest::READABLE)?;
        }
        Ok((worker, waker))
    }

    /// Makes every report of this worker's connections pass the checks of `keys`.
    pub fn verify_with(mut self, keys: Arc<AgentKeys>) -> Worker {
        self.verifier = Some(WorkerVerifier::new(keys));
        self
    }

    /// Runs the event loop until shutdown is requested and the owed answers are sent.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wake_at = next_tick;
            for t in [
                self.push.as_ref().map(PushPlane::next_push),
                self.accept.paused_until(),
                self.timers.next_deadline(),
                self.commands.as_ref().and_then(CommandSide::next_deadline),
                // Connections to drive again: poll only for what is ready now.
                (!self.again.is_empty()).then_some(now),
            ]
            .into_iter()
            .flatten()
            {
                wake_at = wake_at.min(t);
            }
            let timeout = wake_at.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(worker = self.id, "poll failed, worker stops: {e}");
                break;
            }
            let now = Instant::now();
            let now_ms = unix_millis();
            if let Some(v) = self.verifier.as_mut() {
                v.refresh(now, now_ms);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(i) if i < self.tcp.len() => self.on_accept(i, now),
                    Token(i) if i < FIRST_CONNECTION => {}
                    Token(i) => {
                        let key = i - FIRST_CONNECTION;
                        self.on_connection_event(key, event.is_read_closed(), now, now_ms);
                        self.push_owed(key, now);
                    }
                }
            }
            self.drive_again(now, now_ms);
            self.free_closed_slots();
            self.exchange_with_store(now, now_ms);
            self.serve_relays(now, now_ms);
            self.run_commands(now, now_ms);
            self.free_closed_slots();
            if self.accept.resume_due(now) {
                for i in 0..self.tcp.len() {
                    self.on_accept(i, now);
                }
            }
            self.on_timers(now);
            self.reconcile_budget(now);
            if drain_deadline.is_none() && self.links.shutdown.load(Ordering::Acquire) {
                drain_deadline = Some(now + DRAIN_LIMIT);
                self.begin_drain(now, now_ms);
            }
            if drain_deadline.is_none() && self.push.as_ref().is_some_and(|p| p.due(now)) {
                self.push_fleet(now, now_ms);
            }
            if now >= next_tick {
                self.apply_live();
                self.on_tick();
                next_tick = now + TICK;
            }
            if let Some(deadline) = drain_deadline {
                if self.conns.is_empty() || now >= deadline {
                    break;
                }
            }
        }
        self.close_all();
        if let Some(store) = self.store.as_mut() {
            store.link.flush();
        }
        self.on_tick();
    }

    /// Drives the connections left with work in earlier rounds, after this round's events,
    /// oldest first, until [`AGAIN_SLICE`] of the round has passed: a fleet of greedy peers
    /// cannot hold the worker, and a peer that just became ready waits for one slice of
    /// theirs at most, not for all of them.
    fn drive_again(&mut self, now: Instant, now_ms: u64) {
        let until = now + AGAIN_SLICE;
        let mut left = self.again.len();
        while left > 0 {
            left -= 1;
            let Some(key) = self.again.pop_front() else {
                break;
            };
            if let Some(Some(conn)) = self.conns.get_mut(key) {
                conn.unlist_again();
            }
            self.on_connection_event(key, false, now, now_ms);
            self.push_owed(key, now);
            if Instant::now() >= until {
                break;
            }
        }
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
        // A peer that left work last time waits for its turn among the others that did, so
        // that one that just became ready goes first.
        if conn.listed_again() {
            return;
        }
        match conn.drive(self.poll.registry(), token, &mut ctx) {
            Ok(driven) => settle(key, conn, driven, now, lists!(self)),
            Err(reason) => self.close(key, reason),
        }
    }

    /// Fires the deadlines that passed: each due session says whether it must close, and is
    /// armed again for its next deadline otherwise.
    fn on_timers(&mut self, now: Instant) {
        let mut due = Vec::new();
        let conns = &self.conns;
        self.timers.expire(now, |key, is_current| {
            if let Some(Some(conn)) = conns.get(key) {
                if is_current(&conn.timer) {
                    due.push(key);
                }
            }
        });
        for key in due {
            let Some(Some(conn)) = self.conns.get_mut(key) else {
                continue;
            };
            Timers::disarm(&mut conn.timer);
            match conn.handle_timeout(now) {
                Ok(()) => {
                    let at = conn.poll_timeout(now);
                    self.timers.arm(key, &mut conn.timer, at);
                }
                Err(reason) => self.close(key, reason),
            }
        }
        self.free_closed_slots();
    }

    /// Flushes the fleet records of the connections that received reports since the last
    /// tick, hands the shard on, and reports the counters.
    fn on_tick(&mut self) {
        self.log.flush(Instant::now());
        let dirty = std::mem::take(&mut self.dirty);
        self.list_agents(&dirty, Instant::now());
        self.dirty = dirty;
        if let Some(fleet) = self.fleet.as_mut() {
            let now_ms = unix_millis();
            for key in self.dirty.drain(..) {
                if let Some(Some(conn)) = self.conns.get_mut(key) {
                    conn.flush_report(fleet, now_ms);
                }
            }
            self.counters.fleet_dropped += fleet.take_dropped();
        }
        if let Some(batch) = self
            .fleet
            .as_mut()
            .filter(|f| !f.is_empty())
            .map(FleetShard::drain)
        {
            if let Some(store) = &self.store {
                store.publish_latest(&batch);
            }
            if let Some(push) = self.push.as_mut() {
                push.apply(batch);
            } else if let Some(tx) = &self.links.fleet {
                match tx.try_send(batch) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(batch)) => {
                        self.counters.fleet_dropped += batch.len() as u64
                    }
                }
            }
        }
        if let Some(store) = &mut self.store {
            self.counters.store_refused += store.take_refused(Instant::now());
        }
        if let Some(tx) = &self.links.status {
            let kind = match self.push {
                Some(_) => WorkerKind::Management,
                None => WorkerKind::DataTcp,
            };
            let snapshot = WorkerSnapshot {
                worker: self.id,
                kind,
                open: self.conns.len() - self.closed_this_round.len(),
                buffered: self.budget.local(),
                counters: self.counters,
            };
            // A full status channel only delays a log line; the next tick sends fresher figures.
            let _ = tx.try_send(snapshot);
        }
    }

    /// Hands the round's reports to the store, and sends the answers held for the reports it
    /// has confirmed since.
    fn exchange_with_store(&mut self, now: Instant, now_ms: u64) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        store.link.flush();
        let Some(confirmed) = store.link.confirmed() else {
            return;
        };
        let mut ctx = context!(self, now, now_ms);
        let mut failed = Vec::new();
        let conns = &mut self.conns;
        let mut lists = Lists {
            timers: &mut self.timers,
            dirty: &mut self.dirty,
            holding: None,
            again: &mut self.again,
            slow: &mut self.slow,
            budget: &mut self.budget,
        };
        let registry = self.poll.registry();
        self.holding.retain(|&key| {
            let Some(Some(conn)) = conns.get_mut(key) else {
                return false;
            };
            match conn.release_stored(confirmed, &mut ctx) {
                // Driving a connection with nothing new to send would only try its socket.
                Released::Nothing => return true,
                Released::Some => {}
                Released::All => conn.unlist_holding(),
            }
            // Sending the released answers may unpause reading, which may hold more.
            match conn.drive(registry, Token(FIRST_CONNECTION + key), &mut ctx) {
                Ok(driven) => settle(key, conn, driven, now, lists.reborrow()),
                Err(reason) => failed.push((key, reason)),
            }
            conn.is_listed_holding() || conn.newly_holding()
        });
        for (key, reason) in failed {
            self.close(key, reason);
        }
        self.free_closed_slots();
    }

    fn begin_drain(&mut self, now: Instant, now_ms: u64) {
        for entry in &mut self.tcp {
            if let Err(e) = self.poll.registry().deregister(&mut entry.listener) {
                tracing::debug!("deregister listener failed: {e}");
            }
        }
        self.tcp.clear();
        // What is already buffered is owed an answer, whatever the output bound.
        self.drive_each(now, now_ms, usize::MAX, |_, conn, _| conn.close_input());
        self.free_closed_slots();
    }

    /// Runs `prepare` on every open connection, then drives it; closes those that fail.
    fn drive_each(
        &mut self,
        now: Instant,
        now_ms: u64,
        max_output: usize,
        mut prepare: impl FnMut(usize, &mut Connection, &mut Context<'_>),
    ) {
        let mut ctx = context!(self, now, now_ms);
        ctx.max_output = max_output;
        let mut failed = Vec::new();
        for (key, slot) in self.conns.iter_mut() {
            let Some(conn) = slot.as_mut() else { continue };
            prepare(key, conn, &mut ctx);
            let token = Token(FIRST_CONNECTION + key);
            match conn.drive(self.poll.registry(), token, &mut ctx) {
                Ok(driven) => settle(key, conn, driven, now, lists!(self)),
                Err(reason) => failed.push((key, reason)),
            }
        }
        for (key, reason) in failed {
            self.close(key, reason);
        }
    }

    /// Runs `prepare` on connection `key` (if open), then drives it; closes it if it fails.
    fn drive_one(
        &mut self,
        key: usize,
        now: Instant,
        now_ms: u64,
        prepare: impl FnOnce(usize, &mut Connection, &mut Context<'_>),
    ) {
        let mut ctx = context!(self, now, now_ms);
        let Some(Some(conn)) = self.conns.get_mut(key) else {
            return;
        };
        prepare(key, conn, &mut ctx);
        let token = Token(FIRST_CONNECTION + key);
        match conn.drive(self.poll.registry(), token, &mut ctx) {
            Ok(driven) => settle(key, conn, driven, now, lists!(self)),
            Err(reason) => self.close(key, reason),
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
            self.close(key, CloseReason::Shutdown);
        }
        self.free_closed_slots();
    }
}

/// The worker's lists a driven connection may join, its timers and its budget.
struct Lists<'a> {
    timers: &'a mut Timers,
    dirty: &'a mut Vec<usize>,
    /// `None` while the worker walks the list itself.
    holding: Option<&'a mut Vec<usize>>,
    again: &'a mut VecDeque<usize>,
    slow: &'a mut Vec<usize>,
    budget: &'a mut Budget,
}

impl Lists<'_> {
    fn reborrow(&mut self) -> Lists<'_> {
        Lists {
            timers: self.timers,
            dirty: self.dirty,
            holding: self.holding.as_deref_mut(),
            again: self.again,
            slow: self.slow,
            budget: self.budget,
        }
    }
}

/// After connection `key` was driven at `now`: lists it as dirty (its latest-report cache
/// changed), as holding answers for the store, as to be driven again, as a slow peer, where
/// it became so; charges its buffers to the budget; and arms its timer for its next deadline,
/// which what was read, written or pushed may have moved.
fn settle(key: usize, conn: &mut Connection, driven: Driven, now: Instant, lists: Lists<'_>) {
    if driven.dirty {
        lists.dirty.push(key);
    }
    if driven.again && conn.newly_again() {
        lists.again.push_back(key);
    }
    if let Some(holding) = lists.holding {
        if conn.newly_holding() {
            holding.push(key);
        }
    }
    if conn.newly_slow() {
        lists.slow.push(key);
    }
    let (before, after) = conn.account();
    lists.budget.charge(before, after);
    let at = conn.poll_timeout(now);
    lists.timers.arm(key, &mut conn.timer, at);
}

/// The key of a connection's token.
fn key_of(token: usize) -> usize {
    token - FIRST_CONNECTION
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
