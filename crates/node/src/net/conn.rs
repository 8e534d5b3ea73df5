//! One TCP connection: its transport (plain or TLS, [`super::transport`]), its buffers and
//! its session, driven by readiness events.
//!
//! [`Connection::drive`] reads until the socket is drained, hands the bytes to the
//! [`ServerSession`] (which appends the answers to the output in request order), and writes
//! until the socket would block. WRITABLE interest is registered only while output is pending.
//! A connection whose unsent output reaches the bound stops reading and decoding until it has
//! drained, so a peer that never reads cannot grow the node's memory; the bound falls when
//! the node nears its memory budget ([`super::budget`]). One readiness event reads at most
//! [`READ_BUDGET`] bytes and answers at most [`ANSWER_BUDGET`] bytes' worth (Redis's way of
//! sharing a thread): a connection with input left says so and the worker drives it again in a
//! later round, after the others' events and its timers. This module moves bytes; what they
//! mean is the session's business.

use super::buffer::{BufferPool, InputBuffer, OutputBuffer};
use super::peer::PeerAddr;
use super::transport::Transport;
use crate::auth::WorkerVerifier;
use crate::fleet::{FleetShard, LatestReport};
use crate::intake::{ConnIntake, Intake};
use crate::relay::CommandQueue;
use crate::store::{Refusing, StoreIntake};
use crate::timers::TimerSlot;
use avp_proto::server::{self, Action, ServerSession, Tally};
use avp_proto::{EncodeError, Message, Report};
use mio::{Interest, Registry, Token};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Worker-wide state a connection uses while handling an event.
pub struct Context<'a> {
    /// Buffer pool of the worker.
    pub pool: &'a mut BufferPool,
    /// What the worker's sessions handled.
    pub tally: &'a mut Tally,
    /// Bytes the worker read from its sockets, counted per read call.
    pub bytes_in: &'a mut u64,
    /// Bytes the worker wrote to its sockets, counted per write call.
    pub bytes_out: &'a mut u64,
    /// Where valid reports are recorded, unless nothing consumes the fleet view.
    pub shard: Option<&'a mut FleetShard>,
    /// Time of the current loop iteration.
    pub now: Instant,
    /// Wall-clock time of the current loop iteration, ms since the Unix epoch.
    pub now_ms: u64,
    /// Unsent output at which reading pauses.
    pub max_output: usize,
    /// Input buffers may grow for a partial frame larger than the standard size.
    pub may_grow_input: bool,
    /// The worker's store, when the node stores reports.
    pub store: Option<&'a mut StoreIntake>,
    /// The worker's agent keys, when reports must be signed.
    pub verifier: Option<&'a mut WorkerVerifier>,
    /// Fleet commands terminals sent (the management plane only).
    pub commands: Option<&'a mut CommandQueue>,
    /// Answers of agents to relayed commands (the data plane).
    pub answered: Option<&'a mut Vec<(u64, u16, String)>>,
}

/// Why a connection is being closed.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed its side and every answer owed was sent.
    PeerClosed,
    /// The session ended it (framing error, idle, a deadline missed).
    Session(server::CloseReason),
    /// A socket error (reset, broken pipe...).
    Io(io::Error),
    /// The unsent output stayed at its bound for the slow-peer timeout, or the node was over
    /// its memory budget while the peer read nothing.
    SlowPeer,
    /// A TLS handshake was not complete within the frame timeout of the accept.
    HandshakeTimeout,
    /// The node is shutting down and the drain time is over.
    Shutdown,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::Session(r) => r.fmt(f),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::SlowPeer => {
                f.write_str("slow peer: unsent output stayed at its bound too long")
            }
            CloseReason::HandshakeTimeout => {
                f.write_str("TLS handshake not complete within the frame timeout")
            }
            CloseReason::Shutdown => f.write_str("node shutting down"),
        }
    }
}

/// A TCP connection and its protocol state. Kept small: an idle node holds one per peer.
pub struct Connection {
    stream: Transport,
    flags: u16,
    /// Why the session ended the input, once the answers owed are sent.
    ending: Option<server::CloseReason>,
    /// The worker's timer entry for this connection.
    pub timer: TimerSlot,
    peer: PeerAddr,
    session: ServerSession,
    input: Option<Box<InputBuffer>>,
    output: Option<Box<OutputBuffer>>,
    latest: LatestReport,
    refusing: Refusing,
    /// Since when the unsent output has been at its bound (while [`OUTPUT_FULL`] is set), in
    /// ms since the session's epoch, wrapping: 4 bytes that fit the struct's padding.
    full_since: u32,
    /// The bytes of buffers this connection was last charged to the budget for.
    accounted: u32,
}

/// What one [`Connection::drive`] left to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Driven {
    /// The latest-report cache became dirty (the worker flushes it on its next tick).
    pub dirty: bool,
    /// A budget of the event (read, answers, write) ran out with work left: drive again in a
    /// later round (no new readiness event will come for it).
    pub again: bool,
}

/// What one [`Connection::release_stored`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// No answer was due yet: the connection is as it was.
    Nothing,
    /// Answers moved to the output; others are still held.
    Some,
    /// Nothing is held any more.
    All,
}

/// Bytes one readiness event reads from a connection at most.
pub const READ_BUDGET: usize = 64 * 1024;
/// Bytes of answers one readiness event produces at most. The read budget alone does not bound
/// an event's work: 64 KiB of 3-byte frames of an unknown type ask for 21,845 answers of about
/// 60 bytes each, some 5 ms of a worker, and a round of events from a fleet that sends such
/// frames held the worker for seconds. 4 KiB is about 450 acks, far more than a reporting
/// peer has in flight.
pub const ANSWER_BUDGET: usize = 4 * 1024;
/// Bytes one readiness event writes to a connection at most: a peer whose answers or pushes
/// piled up cannot hold its worker in one long write while the others wait. Not smaller: what
/// is not written waits in the node's buffers, which count against the memory budget, rather
/// than in the kernel's. With the 40 peers that never read of the node's budget test (a 2 MiB
/// budget), the buffers peaked at 3.4-4.8 MB with 64 KiB, 2.3-3.5 MB with 1 MiB, and
/// 2.2-2.6 MB without a write budget.
pub const WRITE_BUDGET: usize = 1024 * 1024;

/// How far one [`Connection::drive`] got with the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flushed {
    /// Everything is sent, including what the transport holds.
    All,
    /// The socket takes no more now.
    Blocked,
    /// The write budget ran out with output left.
    Budget,
}

/// WRITABLE interest is registered.
const WRITABLE_REGISTERED: u16 = 1;
/// The output is at its bound: reading waits until it drains.
const READ_PAUSED: u16 = 2;
/// No more input: EOF, a framing error, or shutdown.
const INPUT_CLOSED: u16 = 4;
/// A readiness event reported the peer's FIN.
const PEER_SENT_FIN: u16 = 8;
/// The worker lists the connection as holding answers for the store.
const HELD_LISTED: u16 = 16;
/// The agent registry lists the connection as its node's.
const AGENT_LISTED: u16 = 32;
/// The unsent output is at its bound: the slow-peer deadline runs.
const OUTPUT_FULL: u16 = 64;
/// The worker lists the connection as a slow peer (to close when over the memory budget).
const SLOW_LISTED: u16 = 128;
/// The worker lists the connection to be driven again in a later round.
const AGAIN_LISTED: u16 = 256;
/// The last event's answer budget ran out with input it did not answer.
const INPUT_UNANSWERED: u16 = 512;

impl Connection {
    /// Wraps an accepted, registered (READABLE) stream.
    pub fn new(stream: Transport, peer: SocketAddr, session: ServerSession) -> Self {
        Connection {
            stream,
            flags: 0,
            ending: None,
            timer: TimerSlot::default(),
            peer: PeerAddr::from(peer),
            session,
            input: None,
            output: None,
            latest: LatestReport::default(),
            refusing: None,
            full_since: 0,
            accounted: 0,
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer.get()
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// The transport, for deregistration and closing.
    pub fn stream_mut(&mut self) -> &mut Transport {
        &mut self.stream
    }

    /// When [`Connection::handle_timeout`] is next due, as of `now`: the session's deadline,
    /// the TLS handshake's while it runs, a TLS record's while one comes in, or the slow-peer
    /// deadline while the output is at its bound.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let mut at = self.session.poll_timeout();
        if let Some(t) = self.stream.handshake_deadline() {
            at = at.min(t);
        }
        let frame_timeout = self.session.config().frame_timeout;
        if let Some(t) = self.stream.record_deadline(frame_timeout) {
            at = at.min(t);
        }
        match self.full_since(now) {
            Some(since) => at.min(since + self.session.config().slow_peer_timeout),
            None => at,
        }
    }

    /// Handles the deadlines due at `now`; an error when the connection must close.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CloseReason> {
        let slow = self.session.config().slow_peer_timeout;
        if self.full_since(now).is_some_and(|t| now >= t + slow) {
            return Err(CloseReason::SlowPeer);
        }
        if self.stream.handshake_deadline().is_some_and(|t| now >= t) {
            return Err(CloseReason::HandshakeTimeout);
        }
        let frame_timeout = self.session.config().frame_timeout;
        if self
            .stream
            .record_deadline(frame_timeout)
            .is_some_and(|t| now >= t)
        {
            return Err(CloseReason::Session(server::CloseReason::FrameTimeout));
        }
        self.session
            .handle_timeout(now)
            .map_err(CloseReason::Session)
    }

    /// Since when the unsent output has been at its bound, if it is.
    fn full_since(&self, now: Instant) -> Option<Instant> {
        if !self.has(OUTPUT_FULL) {
            return None;
        }
        let ago = self.millis(now).wrapping_sub(self.full_since);
        Some(
            now.checked_sub(Duration::from_millis(u64::from(ago)))
                .unwrap_or(now),
        )
    }

    /// `t` in ms since the session's epoch, wrapping at 2^32.
    fn millis(&self, t: Instant) -> u32 {
        let epoch = self.session.config().epoch;
        // Truncation is the wrapping the field documents.
        t.saturating_duration_since(epoch).as_millis() as u32
    }

    /// Starts or stops the slow-peer deadline after output was produced or written at `now`:
    /// it runs while the socket takes no more (`drained` false) and the output holds the
    /// connection back, reading paused on it or pushes stopped at the bound. Answers held for
    /// the store are not the peer's doing and do not count.
    fn note_output(&mut self, now: Instant, drained: bool, max_output: usize) {
        let full = !drained && (self.has(READ_PAUSED) || self.pending_output() >= max_output);
        if full && !self.has(OUTPUT_FULL) {
            self.full_since = self.millis(now);
        }
        self.set(OUTPUT_FULL, full);
    }

    /// Since when the connection's input has ended in an incomplete frame, if it has.
    pub fn partial_since(&self) -> Option<Instant> {
        self.session.partial_since()
    }

    /// Bytes of buffers the connection holds: input and output buffers and answers held for
    /// the store.
    pub fn holdings(&self) -> usize {
        self.input.as_ref().map_or(0, |i| i.capacity())
            + self.output.as_ref().map_or(0, |o| o.data.capacity())
            + self.session.held_len()
    }

    /// Charges the holdings' change since the last call: `(before, after)` for
    /// [`super::budget::Budget::charge`].
    pub fn account(&mut self) -> (usize, usize) {
        let before = self.accounted as usize;
        let after = self.holdings();
        self.accounted = u32::try_from(after).unwrap_or(u32::MAX);
        (before, self.accounted as usize)
    }

    /// True when the slow-peer deadline runs and the worker has not listed the connection as
    /// a slow peer yet; lists it.
    pub fn newly_slow(&mut self) -> bool {
        if !self.has(OUTPUT_FULL) || self.has(SLOW_LISTED) {
            return false;
        }
        self.set(SLOW_LISTED, true);
        true
    }

    /// True when the connection is to be driven again and the worker has not listed it for
    /// that yet; lists it (the worker keeps the list, and calls [`Connection::unlist_again`]
    /// when it takes the connection off).
    pub fn newly_again(&mut self) -> bool {
        if self.has(AGAIN_LISTED) {
            return false;
        }
        self.set(AGAIN_LISTED, true);
        true
    }

    /// The worker took the connection off its list of those to drive again.
    pub fn unlist_again(&mut self) {
        self.set(AGAIN_LISTED, false);
    }

    /// The worker lists the connection to be driven again: a readiness event for it waits
    /// for its turn on that list.
    pub fn listed_again(&self) -> bool {
        self.has(AGAIN_LISTED)
    }

    /// True while the slow-peer deadline runs; otherwise takes the connection off the
    /// worker's list of slow peers.
    pub fn still_slow(&mut self) -> bool {
        let slow = self.has(OUTPUT_FULL);
        if !slow {
            self.set(SLOW_LISTED, false);
        }
        slow
    }

    /// Bytes of output not yet written to the socket.
    pub fn pending_output(&self) -> usize {
        self.output.as_ref().map_or(0, |o| o.pending())
    }

    /// Records that a readiness event reported the peer's FIN (EPOLLRDHUP): from now on the
    /// connection reads until EOF instead of stopping at a short read.
    pub fn note_read_closed(&mut self) {
        self.set(PEER_SENT_FIN, true);
    }

    /// Handles a readiness event: reads (up to [`READ_BUDGET`]), decodes and answers (up to
    /// [`ANSWER_BUDGET`]), writes as far as the socket takes it (up to [`WRITE_BUDGET`]).
    ///
    /// Returns what is left to do, or an error when the connection must be closed.
    pub fn drive(
        &mut self,
        registry: &Registry,
        token: Token,
        ctx: &mut Context<'_>,
    ) -> Result<Driven, CloseReason> {
        let mut dirty = false;
        let (mut budget, mut write_budget) = (READ_BUDGET, WRITE_BUDGET);
        let mut answers = ANSWER_BUDGET;
        // The output drained with input waiting, and this event answered all it may.
        let mut resume_later = false;
        let flushed = loop {
            dirty |= self.read_and_process(ctx, token.0, &mut budget, &mut answers)?;
            let flushed = self.write_output(ctx, &mut write_budget)?;
            // Answers held for the store count against the bound until they are released.
            if flushed == Flushed::All
                && self.has(READ_PAUSED)
                && self.session.held_len() < ctx.max_output
            {
                if answers == 0 {
                    resume_later = true;
                    break flushed;
                }
                self.set(READ_PAUSED, false);
                dirty |= self.process(ctx, token.0, &mut answers);
                continue;
            }
            break flushed;
        };
        // Input this event had no answers left for.
        let unanswered = answers == 0 && !self.has(READ_PAUSED);
        self.set(INPUT_UNANSWERED, unanswered && self.input.is_some());
        // A spent write budget is no sign of a slow peer: its socket took all it was given.
        self.note_output(ctx.now, flushed != Flushed::Blocked, ctx.max_output);
        if self.has(INPUT_CLOSED)
            && self.output.is_none()
            && !self.stream.wants_write()
            && !self.has(READ_PAUSED)
            && self.session.held_len() == 0
            && !self.has(INPUT_UNANSWERED)
        {
            return Err(self
                .ending
                .take()
                .map_or(CloseReason::PeerClosed, CloseReason::Session));
        }
        self.update_interest(registry, token)?;
        let again = (budget == 0 && !self.has(READ_PAUSED) && !self.has(INPUT_CLOSED))
            || unanswered
            || resume_later
            || flushed == Flushed::Budget;
        Ok(Driven { dirty, again })
    }

    /// Stops reading: what is already buffered is still answered, then the connection closes.
    /// Used for graceful shutdown.
    pub fn close_input(&mut self) {
        self.set(INPUT_CLOSED, true);
    }

    /// Appends a pushed report to the output (the caller then calls [`Connection::drive`]).
    ///
    /// Returns false, pushing nothing, when the session may not push now or the output is at
    /// its bound.
    pub fn push(
        &mut self,
        report: &Report<'_>,
        ctx: &mut Context<'_>,
    ) -> Result<bool, EncodeError> {
        if self.pending_output() >= ctx.max_output || self.session.push_credit(ctx.now) == 0 {
            return Ok(false);
        }
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        self.session
            .push_report(ctx.now, report, &mut output.data, ctx.tally)?;
        Ok(true)
    }

    /// Moves the answers held for the store into the output once their tickets (up to
    /// `confirmed`) are stored; unless it says [`Released::Nothing`], the caller then calls
    /// [`Connection::drive`].
    pub fn release_stored(&mut self, confirmed: u64, ctx: &mut Context<'_>) -> Released {
        if self.session.held_len() == 0 {
            return Released::All;
        }
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        let before = output.data.len();
        let done = self.session.release(confirmed, &mut output.data);
        let moved = output.data.len() > before;
        if output.data.is_empty() {
            ctx.pool.give_output(self.output.take().expect("just used"));
        }
        match (done, moved) {
            (true, _) => Released::All,
            (false, true) => Released::Some,
            (false, false) => Released::Nothing,
        }
    }

    /// Moves the latest report received on this connection into the worker's fleet shard, as
    /// received at `now_ms`.
    pub fn flush_report(&mut self, shard: &mut FleetShard, now_ms: u64) {
        self.latest.flush(shard, self.peer.get(), now_ms);
    }

    /// True when answers are held for the store and the worker has not listed the connection
    /// as holding some yet; lists it (the worker keeps the list).
    pub fn newly_holding(&mut self) -> bool {
        if self.session.held_len() == 0 || self.has(HELD_LISTED) {
            return false;
        }
        self.set(HELD_LISTED, true);
        true
    }

    /// The node the connection speaks for, when it is not listed in the agent registry yet;
    /// lists it.
    pub fn newly_named(&mut self) -> Option<&str> {
        if self.has(AGENT_LISTED) {
            return None;
        }
        let node = self.latest.node()?;
        self.flags |= AGENT_LISTED;
        Some(node)
    }

    /// The node the connection speaks for, when the agent registry lists it.
    pub fn listed_node(&self) -> Option<&str> {
        self.latest.node().filter(|_| self.has(AGENT_LISTED))
    }

    /// Appends a relayed PAUSE or RESUME for the agent, answered to the sink as `id`; the
    /// caller then calls [`Connection::drive`].
    pub fn send_command(
        &mut self,
        action: Action,
        id: u64,
        ctx: &mut Context<'_>,
    ) -> Result<(), EncodeError> {
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        let result = self
            .session
            .send_command(action, id, &mut output.data, ctx.tally);
        if output.data.is_empty() {
            ctx.pool.give_output(self.output.take().expect("just used"));
        }
        result
    }

    /// Puts the answers of fleet command `id` where they belong; the caller then calls
    /// [`Connection::drive`].
    pub fn complete_command(&mut self, id: u64, answers: &[Message<'_>], ctx: &mut Context<'_>) {
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        self.session
            .complete_command(id, answers, &mut output.data, ctx.tally);
        if output.data.is_empty() {
            ctx.pool.give_output(self.output.take().expect("just used"));
        }
    }

    /// True when the worker lists the connection as holding answers for the store.
    pub fn is_listed_holding(&self) -> bool {
        self.has(HELD_LISTED)
    }

    /// Takes the connection off the worker's list of connections holding answers.
    pub fn unlist_holding(&mut self) {
        self.set(HELD_LISTED, false);
    }

    /// Returns both buffers to the pool (the connection is being dropped).
    pub fn release(&mut self, pool: &mut BufferPool) {
        if let Some(mut input) = self.input.take() {
            let n = input.filled().len();
            input.consume(n);
            pool.give_input(input);
        }
        if let Some(output) = self.output.take() {
            pool.give_output(output);
        }
    }

    /// Answers what an earlier event left in the input, then reads and processes until the
    /// socket is drained, reading pauses, `budget` bytes were read or `answers` bytes of
    /// answers were produced (both taken off as they go).
    fn read_and_process(
        &mut self,
        ctx: &mut Context<'_>,
        token: usize,
        budget: &mut usize,
        answers: &mut usize,
    ) -> Result<bool, CloseReason> {
        let mut dirty = false;
        if self.has(INPUT_UNANSWERED) && !self.has(READ_PAUSED) {
            self.set(INPUT_UNANSWERED, false);
            dirty |= self.process(ctx, token, answers);
        }
        while !self.has(READ_PAUSED) && !self.has(INPUT_CLOSED) && *budget > 0 && *answers > 0 {
            let input = self.input.get_or_insert_with(|| ctx.pool.take_input());
            let spare = input.spare_mut(ctx.may_grow_input);
            if spare.is_empty() {
                // A partial frame larger than the standard buffer while the node is over its
                // memory budget: not read until it may grow (or its deadline closes it).
                break;
            }
            let wanted = spare.len().min(*budget);
            match self.stream.read(&mut spare[..wanted], ctx.now) {
                Ok(0) => self.set(INPUT_CLOSED, true),
                Ok(n) => {
                    *budget = budget.saturating_sub(n);
                    *ctx.bytes_in += n as u64;
                    input.commit(n);
                    dirty |= self.process(ctx, token, answers);
                    // A short read emptied the socket's receive queue, and data or a FIN that
                    // arrives later raises a new edge, so another read would only return
                    // WouldBlock. A FIN that arrived earlier raises none: the event that
                    // reported it set `peer_sent_fin`, and then we read on until EOF.
                    if n < wanted && !self.has(PEER_SENT_FIN) {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
        if self.input.as_ref().is_some_and(|i| i.is_empty()) {
            ctx.pool
                .give_input(self.input.take().expect("checked above"));
        }
        Ok(dirty)
    }

    /// Hands the buffered input to the session, stopping at the output bound or once `answers`
    /// bytes of answers (taken off it) were produced. Returns true when the latest-report cache
    /// became dirty.
    ///
    /// When the session ends the input (a framing error), the answers owed for the frames
    /// before it are still sent, then [`Connection::drive`] closes the connection.
    fn process(&mut self, ctx: &mut Context<'_>, token: usize, answers: &mut usize) -> bool {
        let Some(input) = self.input.as_mut() else {
            return false;
        };
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        let bound = output.written + ctx.max_output;
        let before = output.data.len() + self.session.held_len();
        let limit = bound.min(before + *answers);
        let mut intake = ConnIntake {
            intake: Intake {
                shard: ctx.shard.as_deref_mut(),
                peer: self.peer.get(),
                received_ms: ctx.now_ms,
                store: ctx.store.as_deref_mut(),
                verifier: ctx.verifier.as_deref_mut(),
            },
            latest: &mut self.latest,
            became_dirty: false,
            codec: self.session.config().codec,
            refusing: &mut self.refusing,
            token,
            commands: ctx.commands.as_deref_mut(),
            answered: ctx.answered.as_deref_mut(),
        };
        let out = &mut output.data;
        let result =
            self.session
                .handle_input(ctx.now, input.filled(), out, limit, &mut intake, ctx.tally);
        let mut flags = self.flags;
        match result {
            Ok(used) => {
                input.consume(used);
                let after = out.len() + self.session.held_len();
                *answers = answers.saturating_sub(after.saturating_sub(before));
                if after >= bound {
                    flags |= READ_PAUSED;
                }
            }
            Err(reason) => {
                self.ending = Some(reason);
                flags |= INPUT_CLOSED;
                input.consume(input.filled().len());
            }
        }
        self.flags = flags;
        let dirty = intake.became_dirty;
        if output.data.is_empty() {
            ctx.pool.give_output(self.output.take().expect("just used"));
        }
        dirty
    }

    /// Writes pending output until done, the socket would block, or `budget` bytes (taken off
    /// it) were written.
    fn write_output(
        &mut self,
        ctx: &mut Context<'_>,
        budget: &mut usize,
    ) -> Result<Flushed, CloseReason> {
        let Some(output) = self.output.as_mut() else {
            return self.flush_transport();
        };
        while output.written < output.data.len() {
            if *budget == 0 {
                output.compact();
                return Ok(Flushed::Budget);
            }
            let end = output.data.len().min(output.written + *budget);
            match self.stream.write(&output.data[output.written..end]) {
                Ok(0) => return Err(CloseReason::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    *ctx.bytes_out += n as u64;
                    *budget -= n;
                    output.written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    output.compact();
                    return Ok(Flushed::Blocked);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
        ctx.pool
            .give_output(self.output.take().expect("checked above"));
        self.flush_transport()
    }

    /// Sends what the transport holds (TLS records).
    fn flush_transport(&mut self) -> Result<Flushed, CloseReason> {
        match self.stream.flush().map_err(CloseReason::Io)? {
            true => Ok(Flushed::All),
            false => Ok(Flushed::Blocked),
        }
    }

    fn update_interest(&mut self, registry: &Registry, token: Token) -> Result<(), CloseReason> {
        let want_writable = self.output.is_some() || self.stream.wants_write();
        if want_writable != self.has(WRITABLE_REGISTERED) {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry
                .reregister(&mut self.stream, token, interest)
                .map_err(CloseReason::Io)?;
            self.set(WRITABLE_REGISTERED, want_writable);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::server::{Role, ServerConfig};
    use avp_proto::Codec;
    use mio::net::TcpStream;
    use std::io::{Read, Write};
    use std::sync::Arc;

    /// A connection of `role` accepted over loopback and registered with a poll of its own,
    /// the client's end, and what driving it needs.
    struct Fixture {
        client: std::net::TcpStream,
        poll: mio::Poll,
        conn: Connection,
        pool: BufferPool,
        tally: Tally,
        bytes_in: u64,
        bytes_out: u64,
        now: Instant,
    }

    const TOKEN: Token = Token(7);

    impl Fixture {
        fn new(role: Role) -> Fixture {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, peer) = listener.accept().unwrap();
            server.set_nonblocking(true).unwrap();
            let poll = mio::Poll::new().unwrap();
            let mut stream = TcpStream::from_std(server);
            poll.registry()
                .register(&mut stream, TOKEN, Interest::READABLE)
                .unwrap();
            let now = Instant::now();
            let config = Arc::new(ServerConfig::new(Codec::Binary, role, now));
            let session = ServerSession::new(config, now);
            Fixture {
                client,
                poll,
                conn: Connection::new(Transport::Plain(stream), peer, session),
                pool: BufferPool::new(4),
                tally: Tally::default(),
                bytes_in: 0,
                bytes_out: 0,
                now,
            }
        }

        /// The connection, the registry, and a context over the fixture's counters.
        fn parts(&mut self) -> (&mut Connection, &mio::Registry, Context<'_>) {
            let ctx = Context {
                pool: &mut self.pool,
                tally: &mut self.tally,
                bytes_in: &mut self.bytes_in,
                bytes_out: &mut self.bytes_out,
                shard: None,
                now: self.now,
                now_ms: 0,
                max_output: usize::MAX,
                may_grow_input: true,
                store: None,
                verifier: None,
                commands: None,
                answered: None,
            };
            (&mut self.conn, self.poll.registry(), ctx)
        }
    }

    #[test]
    fn one_event_reads_at_most_the_read_budget_then_asks_to_be_driven_again() {
        let mut f = Fixture::new(Role::Data);
        let reports: Vec<u8> = (0..20_000).flat_map(avp_testkit::report).collect();
        let per_report = reports.len() / 20_000;
        f.client.write_all(&reports).unwrap();
        let (conn, registry, mut ctx) = f.parts();
        let mut events = 0;
        loop {
            // Wait until the kernel holds what the client wrote but the node has not read.
            let before = ctx.tally.reports;
            let driven = conn.drive(registry, TOKEN, &mut ctx).unwrap();
            events += 1;
            // What one event decodes: what it read, and a partial frame left from before.
            let read = (ctx.tally.reports - before) as usize * per_report;
            assert!(read < READ_BUDGET + per_report, "{read} bytes in one event");
            if ctx.tally.reports == 20_000 {
                break;
            }
            assert!(events < 100_000, "the reports never all arrived");
            if !driven.again {
                // The socket was drained: the rest is still on its way from the client.
                std::thread::yield_now();
            }
        }
        assert!(
            events >= reports.len() / READ_BUDGET,
            "{events} events for {} bytes",
            reports.len()
        );
    }

    #[test]
    fn one_event_answers_at_most_the_answer_budget_and_the_rest_later_without_new_input() {
        let mut f = Fixture::new(Role::Data);
        // Frames of an unknown type: each 3-byte frame earns an answer many times its size.
        const FRAMES: usize = 2_000;
        let frames: Vec<u8> = (0..FRAMES)
            .flat_map(|_| avp_testkit::frame(77, &[]))
            .collect();
        f.client.write_all(&frames).unwrap();
        let (conn, registry, mut ctx) = f.parts();
        let mut events = 0;
        let mut answered = 0;
        while answered < FRAMES as u64 {
            let driven = conn.drive(registry, TOKEN, &mut ctx).unwrap();
            events += 1;
            // Counted by the session's tally: what the client does not read may be in the
            // kernel's socket buffer. Each answer is over 32 bytes (a code and a text).
            let now_answered = ctx.tally.unsupported;
            let this_event = (now_answered - answered) as usize;
            answered = now_answered;
            assert!(
                this_event <= ANSWER_BUDGET / 32,
                "{this_event} answers in one event"
            );
            assert!(events < 100_000, "the frames were never all answered");
            if !driven.again {
                std::thread::yield_now();
            }
        }
        assert!(events > 1, "{FRAMES} error answers took {events} event(s)");
    }

    #[test]
    fn one_event_writes_at_most_the_write_budget_then_asks_to_be_driven_again() {
        let mut f = Fixture::new(Role::Management);
        let mut client = f.client.try_clone().unwrap();
        let (conn, registry, mut ctx) = f.parts();
        let report = Report {
            cpu_percent: 1,
            mem_percent: 2,
            timestamp_ms: Some(1_700_000_000_000),
            // Long names make big pushes: 4 MiB of them within the unacknowledged-push bound.
            node_id: Some("n".repeat(255).into()),
            instance: None,
            fleet: None,
        };
        while conn.pending_output() < 4 * WRITE_BUDGET {
            assert!(conn.push(&report, &mut ctx).unwrap());
        }
        let total = conn.pending_output();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; total];
            client.read_exact(&mut got).unwrap();
        });
        let mut events = 0;
        loop {
            let before = *ctx.bytes_out;
            let driven = conn.drive(registry, TOKEN, &mut ctx).unwrap();
            events += 1;
            let wrote = (*ctx.bytes_out - before) as usize;
            assert!(wrote <= WRITE_BUDGET, "{wrote} bytes in one event");
            if conn.pending_output() == 0 {
                break;
            }
            assert!(events < 100_000, "the output never drained");
            if !driven.again {
                // The socket took no more: the reader catches up.
                std::thread::yield_now();
            }
        }
        assert!(events >= 4, "{events} events for {total} bytes");
        reader.join().unwrap();
    }
}
