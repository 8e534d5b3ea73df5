//! One TCP connection: its socket, its buffers and its session, driven by readiness events.
//!
//! [`Connection::drive`] reads until the socket is drained, decodes every complete frame (a
//! read may hold many frames or a fraction of one), hands each to the session, appends the
//! answers to the output in request order, and writes until the socket would block. Runs of
//! reports in the canonical layout, the bulk of a loaded node's input, are acknowledged in one
//! pass ([`Codec::ack_report_run`]) with the same answers and counts as frame by frame. WRITABLE
//! interest is registered only while output is pending. A connection whose unsent output
//! reaches the bound stops reading and processing until it has drained, so a peer that never
//! reads cannot grow the node's memory.

use super::buffer::{BufferPool, InputBuffer};
use crate::fleet::{ConnectionReport, FleetShard};
use crate::session::{Kind, Session};
use crate::stats::Counters;
use avp_proto::{Codec, Decoded, FramingError, HandleDecoded, Message, Status};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// Worker-wide state a connection uses while handling an event.
pub struct Context<'a> {
    /// Buffer pool of the worker.
    pub pool: &'a mut BufferPool,
    /// Counters of the worker.
    pub counters: &'a mut Counters,
    /// Where valid reports are recorded.
    pub fleet: &'a mut FleetShard,
    /// Time of the current loop iteration.
    pub now: Instant,
    /// Wall-clock time of the current loop iteration, ms since the Unix epoch.
    pub now_ms: u64,
    /// Unsent output at which reading pauses.
    pub max_output: usize,
}

/// Why a connection is being closed.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed its side and every answer owed was sent.
    PeerClosed,
    /// The stream could not be split into frames.
    Framing(FramingError),
    /// A socket error (reset, broken pipe...).
    Io(io::Error),
    /// No traffic for the idle timeout.
    Idle,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::Framing(e) => write!(f, "framing error: {e}"),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::Idle => f.write_str("idle timeout"),
        }
    }
}

/// A TCP connection and its protocol state.
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    codec: Codec,
    session: Session,
    input: Option<InputBuffer>,
    output: Option<Vec<u8>>,
    // INVARIANT: written <= output.len(); 0 when output is None.
    written: usize,
    writable_registered: bool,
    read_paused: bool,
    input_closed: bool,
    peer_sent_fin: bool,
    framing_error: Option<FramingError>,
    last_activity: Instant,
    next_push_sequence: u32,
    latest_report: ConnectionReport,
}

impl Connection {
    /// Wraps an accepted, registered (READABLE) stream.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        codec: Codec,
        session: Session,
        now: Instant,
    ) -> Self {
        Connection {
            stream,
            peer,
            codec,
            session,
            input: None,
            output: None,
            written: 0,
            writable_registered: false,
            read_paused: false,
            input_closed: false,
            peer_sent_fin: false,
            framing_error: None,
            last_activity: now,
            next_push_sequence: 0,
            latest_report: ConnectionReport::default(),
        }
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The socket, for deregistration.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// When the connection last had traffic.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// The protocol session.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Bytes of output not yet written to the socket.
    pub fn pending_output(&self) -> usize {
        self.output.as_ref().map_or(0, |o| o.len() - self.written)
    }

    /// Records that a readiness event reported the peer's FIN (EPOLLRDHUP): from now on the
    /// connection reads until EOF instead of stopping at a short read.
    pub fn note_read_closed(&mut self) {
        self.peer_sent_fin = true;
    }

    /// Handles a readiness event: reads, processes, writes as far as possible.
    ///
    /// Returns an error when the connection must be closed.
    pub fn drive(
        &mut self,
        registry: &Registry,
        token: Token,
        ctx: &mut Context<'_>,
    ) -> Result<(), CloseReason> {
        self.last_activity = ctx.now;
        loop {
            self.read_and_process(ctx)?;
            let drained = self.write_output(ctx)?;
            if drained && self.read_paused {
                self.read_paused = false;
                self.process(ctx);
                continue;
            }
            break;
        }
        if self.input_closed && self.output.is_none() && !self.read_paused {
            return Err(self
                .framing_error
                .take()
                .map_or(CloseReason::PeerClosed, CloseReason::Framing));
        }
        self.update_interest(registry, token)
    }

    /// Stops reading: what is already buffered is still answered, then the connection closes.
    /// Used for graceful shutdown.
    pub fn close_input(&mut self) {
        self.input_closed = true;
    }

    /// Appends a pushed report to the output (the caller then calls [`Connection::drive`]).
    ///
    /// Returns false, pushing nothing, when the output is at its bound.
    pub fn push(&mut self, mut msg: Message<'_>, ctx: &mut Context<'_>) -> bool {
        if self.pending_output() >= ctx.max_output {
            return false;
        }
        msg.sequence = Some(self.next_push_sequence as u64);
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        match self.codec.encode(&msg, output) {
            Ok(_) => {
                self.next_push_sequence = self.next_push_sequence.wrapping_add(1);
                self.session.on_pushed();
                ctx.counters.pushes += 1;
                true
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, "cannot push report: {e}");
                false
            }
        }
    }

    /// Moves the latest report received on this connection into the worker's fleet shard.
    pub fn flush_report(&mut self, fleet: &mut FleetShard) {
        self.latest_report.flush(fleet, self.peer);
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

    fn read_and_process(&mut self, ctx: &mut Context<'_>) -> Result<(), CloseReason> {
        while !self.read_paused && !self.input_closed {
            let input = self.input.get_or_insert_with(|| ctx.pool.take_input());
            let spare = input.spare_mut();
            let wanted = spare.len();
            match self.stream.read(spare) {
                Ok(0) => self.input_closed = true,
                Ok(n) => {
                    input.commit(n);
                    self.process(ctx);
                    // A short read emptied the socket's receive queue, and data or a FIN that
                    // arrives later raises a new edge, so another read would only return
                    // WouldBlock. A FIN that arrived earlier raises none: the event that
                    // reported it set `peer_sent_fin`, and then we read on until EOF.
                    if n < wanted && !self.peer_sent_fin {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
        if self.input.as_ref().is_some_and(InputBuffer::is_empty) {
            ctx.pool
                .give_input(self.input.take().expect("checked above"));
        }
        Ok(())
    }

    /// Decodes and answers every complete frame in the input, stopping at the output bound.
    ///
    /// A framing error ends the input: the answers owed for the frames before it are still
    /// sent, then [`Connection::drive`] closes the connection with that error.
    fn process(&mut self, ctx: &mut Context<'_>) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        let output = self.output.get_or_insert_with(|| ctx.pool.take_output());
        loop {
            let pending = output.len() - self.written;
            if pending >= ctx.max_output {
                self.read_paused = true;
                break;
            }
            let room = ctx.max_output - pending;
            if let Some(run) = self.codec.ack_report_run(input.filled(), room, output) {
                let count = run.count as u64;
                ctx.counters.count(Kind::Report, count);
                ctx.counters.answers += count;
                self.latest_report
                    .record(ctx.fleet, self.peer, &run.last, run.count, ctx.now_ms);
                input.consume(run.bytes);
                continue;
            }
            let mut responder = Responder {
                session: &mut self.session,
                latest_report: &mut self.latest_report,
                peer: self.peer,
                codec: self.codec,
                output,
                ctx,
            };
            let decoded = self.codec.decode_with(input.filled(), &mut responder);
            let used = match decoded {
                Ok(Status::Complete(((), used))) => used,
                Ok(Status::Partial) => break,
                Err(e) => {
                    self.framing_error = Some(e);
                    self.input_closed = true;
                    input.consume(input.filled().len());
                    break;
                }
            };
            input.consume(used);
        }
        if output.is_empty() {
            ctx.pool.give_output(self.output.take().expect("just used"));
        }
    }

    /// Writes pending output until done or the socket would block; true when all is sent.
    fn write_output(&mut self, ctx: &mut Context<'_>) -> Result<bool, CloseReason> {
        let Some(output) = self.output.as_ref() else {
            return Ok(true);
        };
        while self.written < output.len() {
            match self.stream.write(&output[self.written..]) {
                Ok(0) => return Err(CloseReason::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
        ctx.pool
            .give_output(self.output.take().expect("checked above"));
        self.written = 0;
        Ok(true)
    }

    fn update_interest(&mut self, registry: &Registry, token: Token) -> Result<(), CloseReason> {
        let want_writable = self.output.is_some();
        if want_writable != self.writable_registered {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry
                .reregister(&mut self.stream, token, interest)
                .map_err(CloseReason::Io)?;
            self.writable_registered = want_writable;
        }
        Ok(())
    }
}

/// Answers one decoded frame of a connection: the session's verdict, the answer appended to the
/// output, the report recorded, the frame counted.
struct Responder<'r, 'a> {
    session: &'r mut Session,
    latest_report: &'r mut ConnectionReport,
    peer: SocketAddr,
    codec: Codec,
    output: &'r mut Vec<u8>,
    ctx: &'r mut Context<'a>,
}

impl<'d> HandleDecoded<'d> for Responder<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn handle(&mut self, decoded: Decoded<'d>) {
        let ctx = &mut *self.ctx;
        let outcome = self.session.handle(ctx.now, &decoded);
        if let Some(answer) = &outcome.answer {
            match self.codec.encode(answer, self.output) {
                Ok(_) => ctx.counters.answers += 1,
                Err(e) => tracing::error!(peer = %self.peer, "cannot encode answer: {e}"),
            }
        }
        if let Some(report) = outcome.report {
            self.latest_report
                .record(ctx.fleet, self.peer, report, 1, ctx.now_ms);
        }
        ctx.counters.count(outcome.kind, 1);
    }
}
