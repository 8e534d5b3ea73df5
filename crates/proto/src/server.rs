//! The node's side of the protocol: [`ServerSession`], one per TCP connection or UDP socket.
//!
//! A session turns received bytes into answers and accepted reports. It never touches a socket
//! or a clock: the caller passes the time of every input, the output buffer to append answers
//! to, and a [`ReportSink`] that decides what becomes of each valid report.
//!
//! # Call order (streams)
//!
//! 1. [`ServerSession::handle_input`] with the unprocessed bytes: complete frames are consumed,
//!    their answers appended to `out` in request order, every valid report handed to the sink.
//!    It stops at a partial frame, or once the output reaches the caller's bound (read again
//!    after writing), or at a framing error (send what is in `out`, then close).
//! 2. When the sink held an answer ([`Acceptance::Hold`]), [`ServerSession::release`] appends
//!    it, and everything after it, once the ticket is confirmed. Until then later answers wait
//!    inside the session, so that answers stay in request order.
//! 3. On the management plane, [`ServerSession::push_credit`] says how many reports may be
//!    pushed now and [`ServerSession::push_report`] encodes one. A PAUSE or RESUME with TARGET
//!    goes to [`ReportSink::on_fleet_command`]; when the sink takes it, its answer waits (like
//!    a held one) until [`ServerSession::complete_command`] gives the per-node results.
//! 4. On the data plane, [`ServerSession::send_command`] sends a relayed PAUSE or RESUME to the
//!    agent; its COMMAND_RESPONSE goes to [`ReportSink::on_command_result`].
//! 5. [`ServerSession::poll_timeout`] says when [`ServerSession::handle_timeout`] is due: the
//!    idle timeout, the deadline of a partial frame, the watchdog on unacknowledged pushes, and
//!    the end of a pause.
//!
//! # Datagrams
//!
//! [`ServerSession::handle_datagram`] answers one datagram, which must hold exactly one frame.
//! An answer is never larger than the datagram it answers: error answers lose their INFO text
//! or, when even that is too large, are dropped.
//!
//! # Authentication
//!
//! When the sink provides a [`Verifier`] ([`ReportSink::verifier`]), every report must be
//! signed ([`crate::auth`]): one that fails is answered 401 and never reaches
//! [`ReportSink::on_report`]. On the management plane reports are not accepted at all: they are
//! answered 501.
//!
//! # Fast paths
//!
//! Two layouts make up nearly all data-plane traffic and are read by comparing bytes instead of
//! walking AVPs: the minimal report (CPU, MEM, 4-byte SEQUENCE) and a report laid out exactly
//! as the previous one of the same session, with the same NODE_ID (what an agent sends over and
//! over, signed or not). Both give what the general parser gives; a test checks it on arbitrary
//! streams.

use crate::auth::{self, AuthFailure, KeyCache, Run, RunVerdicts, SignedFrame, Verifier};
use crate::avp::{read_uint, Attribute, AVP_HEADER_LEN};
use crate::canonical::{self, ACK_FRAME_LEN, MINIMAL_REPORT_LEN};
use crate::codec::{Codec, Decoded};
use crate::error::{DatagramError, EncodeError, FramingError};
use crate::frame::{decode_datagram, Status};
use crate::message::{result_code, Body, Message, Report};
use crate::rules::{AUTHENTICATOR_LEN, MAX_PERCENT};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which plane a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Agents report; the node answers.
    Data,
    /// Terminals watch; the node also pushes reports, which PAUSE, RESUME and acks gate.
    Management,
}

/// Settings shared by the sessions of one listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The time the sessions count from (they keep their times as offsets from it, to stay
    /// small); any instant before the first session starts.
    pub epoch: Instant,
    /// The wire form.
    pub codec: Codec,
    /// The plane.
    pub role: Role,
    /// A session that receives nothing for this long times out.
    pub idle_timeout: Duration,
    /// A frame must be complete this long after its first bytes arrived.
    pub frame_timeout: Duration,
    /// Management plane: pushes awaiting their ack at which pushing stops.
    pub max_unacked: usize,
    /// Management plane: pushes left unacknowledged this long (no ack arriving while some are
    /// outstanding) time the session out.
    pub ack_timeout: Duration,
    /// A peer whose unsent output stays at the caller's bound this long is closed (the caller,
    /// which owns the output, enforces it).
    pub slow_peer_timeout: Duration,
}

impl ServerConfig {
    /// A configuration with the node's default timeouts and bounds, counting from `epoch`.
    pub fn new(codec: Codec, role: Role, epoch: Instant) -> ServerConfig {
        ServerConfig {
            epoch,
            codec,
            role,
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(10),
            max_unacked: 65_536,
            ack_timeout: Duration::from_secs(30),
            slow_peer_timeout: Duration::from_secs(10),
        }
    }
}

/// A valid report, as the session hands it to its [`ReportSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedReport<'a> {
    /// The report's SEQUENCE, if it had one.
    pub sequence: Option<u64>,
    /// What it reports.
    pub report: Report<'a>,
    /// The frame as received (binary frame or text frame, by the session's codec).
    pub frame: &'a [u8],
}

/// What becomes of a valid report, as the [`ReportSink`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Acknowledge it now.
    Ack,
    /// Acknowledge it once [`ServerSession::release`] confirms `ticket` (tickets increase with
    /// every hold, across the sessions of one caller).
    Hold(u64),
    /// Do not acknowledge it; answer with this refusal so that the peer keeps it.
    Refuse(Refusal),
}

/// Why a valid report is not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The node cannot take it now (its store queue is full): 503, try again later.
    Overloaded,
}

impl Refusal {
    fn answer(self, sequence: Option<u64>) -> Message<'static> {
        match self {
            Refusal::Overloaded => Message::command_response(
                sequence,
                result_code::OVERLOADED,
                "overloaded: the report was not stored, send it again later",
            ),
        }
    }
}

/// Decides what becomes of each valid report a session receives, and takes the commands it
/// relays.
pub trait ReportSink {
    /// Called for every valid report, in order; the answer follows the decision.
    fn on_report(&mut self, report: &AcceptedReport<'_>) -> Acceptance;

    /// The keys and replay ledger reports must pass before [`ReportSink::on_report`]; `None`
    /// (the default) accepts reports unsigned.
    #[inline(always)]
    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        None
    }

    /// Called for every report that failed authentication (answered 401), in order.
    fn on_unauthorized(&mut self, _failure: AuthFailure) {}
    /// Called for a PAUSE or RESUME with TARGET (a terminal's command for the fleet). Returns
    /// the command's id when the sink carries it out: its answer then waits for
    /// [`ServerSession::complete_command`]. `None` (the default): the node relays no command,
    /// and the terminal is answered 501.
    fn on_fleet_command(&mut self, command: &FleetCommand<'_>) -> Option<u64> {
        let _ = command;
        None
    }

    /// Called with the answer to a command sent by [`ServerSession::send_command`] as `id`.
    fn on_command_result(&mut self, id: u64, code: u16, info: Option<&str>) {
        let _ = (id, code, info);
    }
}

/// What a command asks of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop sampling and reporting for `duration_secs`.
    Pause {
        /// Seconds.
        duration_secs: u64,
    },
    /// Start again.
    Resume,
}

/// A terminal's command for the nodes TARGET names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetCommand<'a> {
    /// The command's SEQUENCE, echoed by its results and its answer.
    pub sequence: Option<u64>,
    /// A glob over NODE_IDs.
    pub target: &'a str,
    /// What to do.
    pub action: Action,
}

/// Counts of what sessions handled, added to by every call (the caller sums or resets them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Valid STAT_REPORTs (acknowledged, held or refused).
    pub reports: u64,
    /// Valid PAUSE/RESUME commands (answered 200, or with their results for a fleet command).
    pub commands: u64,
    /// Invalid messages (answered 400).
    pub invalid: u64,
    /// Unknown message types (answered 501).
    pub unsupported: u64,
    /// STAT_REPORT_ACKs of pushed reports.
    pub push_acks: u64,
    /// Answers nobody asked for, or invalid answers (ignored).
    pub unsolicited: u64,
    /// Reports refused (503) by the sink.
    pub refused: u64,
    /// Answers written (acks and command responses).
    pub answers: u64,
    /// Reports pushed.
    pub pushes: u64,
    /// Commands relayed to the peer, and answers to them received.
    pub relayed: u64,
    /// UDP error answers dropped because even without INFO they were larger than the datagram.
    pub oversize_dropped: u64,
    /// Reports that failed authentication (answered 401).
    pub unauthorized: u64,
    /// Fleet commands (PAUSE or RESUME with TARGET) answered 501: this plane relays none.
    pub unrelayed: u64,
}

/// Applies `$op` to every field of two tallies, in a macro so that a new counter cannot be
/// forgotten in one of the operations.
macro_rules! each_count {
    ($a:expr, $b:expr, $op:expr) => {{
        let (a, b) = ($a, $b);
        let op = $op;
        Tally {
            reports: op(a.reports, b.reports),
            commands: op(a.commands, b.commands),
            invalid: op(a.invalid, b.invalid),
            unsupported: op(a.unsupported, b.unsupported),
            push_acks: op(a.push_acks, b.push_acks),
            unsolicited: op(a.unsolicited, b.unsolicited),
            refused: op(a.refused, b.refused),
            answers: op(a.answers, b.answers),
            pushes: op(a.pushes, b.pushes),
            relayed: op(a.relayed, b.relayed),
            oversize_dropped: op(a.oversize_dropped, b.oversize_dropped),
            unauthorized: op(a.unauthorized, b.unauthorized),
            unrelayed: op(a.unrelayed, b.unrelayed),
        }
    }};
}

impl Tally {
    /// Adds every count of `other` to `self`.
    pub fn add(&mut self, other: &Tally) {
        *self = each_count!(&*self, other, |x: u64, y: u64| x + y);
    }

    /// Every count minus the one in `earlier` (zero where `earlier` is larger).
    pub fn since(&self, earlier: &Tally) -> Tally {
        each_count!(self, earlier, u64::saturating_sub)
    }

    /// Messages received, of every kind.
    pub fn received(&self) -> u64 {
        self.reports
            + self.commands
            + self.invalid
            + self.unsupported
            + self.push_acks
            + self.unsolicited
            + self.unauthorized
    }
}

/// Why a session ends: the caller sends what is owed and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The stream cannot be split into frames any more.
    Framing(FramingError),
    /// Nothing was received for the idle timeout.
    Idle,
    /// A frame was still incomplete at its deadline.
    FrameTimeout,
    /// Pushed reports stayed unacknowledged past the ack timeout.
    AckTimeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Framing(e) => write!(f, "framing error: {e}"),
            CloseReason::Idle => f.write_str("idle timeout"),
            CloseReason::FrameTimeout => f.write_str("frame not completed in time"),
            CloseReason::AckTimeout => f.write_str("pushed reports left unacknowledged"),
        }
    }
}

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramAnswer {
    /// Nothing to send back.
    None,
    /// The answer was appended to `out`: send it now.
    Now,
    /// The answer was appended to `out`: send it once `ticket` is confirmed.
    Held(u64),
}

/// An instant as nanoseconds since the config's epoch, so that a session stays small (an
/// idle node holds one per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u64);

impl Stamp {
    /// Not set.
    const NONE: Stamp = Stamp(u64::MAX);

    fn of(epoch: Instant, t: Instant) -> Stamp {
        let nanos = t.saturating_duration_since(epoch).as_nanos();
        Stamp(
            u64::try_from(nanos)
                .unwrap_or(u64::MAX - 1)
                .min(u64::MAX - 1),
        )
    }

    fn get(self, epoch: Instant) -> Option<Instant> {
        (self != Stamp::NONE).then(|| epoch + Duration::from_nanos(self.0))
    }
}

/// The node's side of one connection or UDP socket. See the module documentation.
#[derive(Debug)]
pub struct ServerSession {
    config: Arc<ServerConfig>,
    last_input: Stamp,
    /// When the partial frame at the front of the input was first seen.
    partial_since: Stamp,
    /// Answers waiting for a ticket, and the ones behind them.
    held: Option<Box<Held>>,
    /// Pause, push and relayed-command state, from the first PAUSE, push or command on.
    push: Option<Box<PushState>>,
    /// The layout of the last named report, for the fast path.
    shape: Option<Box<ReportShape>>,
    /// The key of the last signed report's node.
    last_key: Option<Box<KeyCache>>,
    /// Off only in tests that compare the fast paths with the general path.
    #[cfg(any(test, feature = "fuzzing"))]
    fast_paths: bool,
}

#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    /// `(hold, offset)`: the bytes from `offset` on wait until the hold is released.
    /// INVARIANT: offsets increase from front to back, offsets <= bytes.len(); store tickets
    /// increase from front to back.
    marks: VecDeque<(HoldOn, usize)>,
}

/// What held bytes wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldOn {
    /// The sink's ticket (and those before it) to be confirmed ([`ServerSession::release`]).
    Ticket(u64),
    /// A fleet command's results ([`ServerSession::complete_command`]), which go at the
    /// mark's offset.
    Command(u64),
}

/// Most commands a session keeps waiting for the peer's answer; past it the oldest is
/// forgotten (its caller times it out).
const MAX_RELAYS: usize = 64;

/// Commands sent to the peer: `(SEQUENCE, id)`, oldest first.
#[derive(Debug, Default)]
struct Relays {
    next_seq: u32,
    waiting: VecDeque<(u32, u64)>,
}

/// What a session sends its peer unasked, and what the peer asked of it: the pause, pushed
/// reports, relayed commands. Few sessions need it, so it is boxed, and only when used.
#[derive(Debug, Default)]
struct PushState {
    paused_until: Option<Instant>,
    unacked: usize,
    /// Since when pushes have been outstanding without an ack arriving.
    waiting_since: Option<Instant>,
    next_sequence: u32,
    /// Commands sent to the peer and not answered yet.
    relays: Relays,
}

impl ServerSession {
    /// A session that starts at `now` (its idle timer runs from here).
    pub fn new(config: Arc<ServerConfig>, now: Instant) -> ServerSession {
        ServerSession {
            last_input: Stamp::of(config.epoch, now),
            config,
            partial_since: Stamp::NONE,
            held: None,
            push: None,
            shape: None,
            last_key: None,
            #[cfg(any(test, feature = "fuzzing"))]
            fast_paths: true,
        }
    }

    /// The session's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Handles bytes received at `now`: consumes the complete frames at the front of `input`
    /// and returns how many bytes they took. Answers are appended to `out` in request order
    /// (or held, see [`ServerSession::release`]); decoding stops once `out` plus the held
    /// answers reach `limit` bytes. Every valid report goes to `sink`; `tally` counts.
    ///
    /// An error means the stream is unusable: the answers owed for the frames before the bad
    /// one are already in `out` or held; send them, then close.
    pub fn handle_input<S: ReportSink>(
        &mut self,
        now: Instant,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        sink: &mut S,
        tally: &mut Tally,
    ) -> Result<usize, CloseReason> {
        let epoch = self.config.epoch;
        if !input.is_empty() {
            self.last_input = Stamp::of(epoch, now);
        }
        let mut pos = 0;
        let mut verdicts = RunVerdicts::default();
        let result = loop {
            let used = out.len() + self.held_len();
            if used >= limit || pos == input.len() {
                break Ok(());
            }
            let run = Run {
                input,
                pos,
                room: limit - used,
                verdicts: &mut verdicts,
            };
            if let Some(used) = self.fast_report(run, None, out, sink, tally) {
                pos += used;
                continue;
            }
            let rest = &input[pos..];
            match self.config.codec.decode(rest) {
                Ok(Status::Complete((decoded, used))) => {
                    let frame = &rest[..used];
                    self.answer(now, frame, decoded, out, Cap::NONE, sink, tally);
                    pos += used;
                }
                Ok(Status::Partial) => break Ok(()),
                Err(e) => break Err(CloseReason::Framing(e)),
            }
        };
        if pos > 0 {
            self.partial_since = Stamp::NONE;
        }
        if result.is_ok() && pos < input.len() && self.partial_since == Stamp::NONE {
            let waiting_for_output = out.len() + self.held_len() >= limit;
            if !waiting_for_output {
                self.partial_since = Stamp::of(epoch, now);
            }
        }
        result.map(|()| pos)
    }

    /// Handles one datagram received at `now`; an answer is appended to `out`.
    pub fn handle_datagram<S: ReportSink>(
        &mut self,
        now: Instant,
        datagram: &[u8],
        out: &mut Vec<u8>,
        sink: &mut S,
        tally: &mut Tally,
    ) -> Result<DatagramAnswer, DatagramError> {
        let start = out.len();
        let mut hold = None;
        let mut staging = DatagramStaging {
            sink,
            hold: &mut hold,
        };
        let cap = Cap(datagram.len());
        let run = Run {
            input: datagram,
            pos: 0,
            room: ACK_FRAME_LEN,
            verdicts: &mut RunVerdicts::default(),
        };
        if self
            .fast_report(run, Some(cap), out, &mut staging, tally)
            .is_none()
        {
            let frame = decode_datagram(datagram)?;
            let decoded = Decoded::from(Message::parse(frame));
            self.answer(now, datagram, decoded, out, cap, &mut staging, tally);
        }
        Ok(match (out.len() > start, hold) {
            (false, _) => DatagramAnswer::None,
            (true, Some(ticket)) => DatagramAnswer::Held(ticket),
            (true, None) => DatagramAnswer::Now,
        })
    }

    /// Appends to `out` the held answers whose tickets are confirmed, every ticket up to and
    /// including `confirmed`, and the answers behind them up to the next unconfirmed hold.
    /// Returns true when nothing is held any more.
    pub fn release(&mut self, confirmed: u64, out: &mut Vec<u8>) -> bool {
        let Some(held) = self.held.as_mut() else {
            return true;
        };
        while held
            .marks
            .front()
            .is_some_and(|&(h, _)| matches!(h, HoldOn::Ticket(t) if t <= confirmed))
        {
            held.marks.pop_front();
        }
        self.flush_ready(out)
    }

    /// Puts the answers of fleet command `id` (its per-node results, then its own answer)
    /// where its answer belongs, and appends to `out` whatever is no longer held. Returns true
    /// when nothing is held any more.
    pub fn complete_command(
        &mut self,
        id: u64,
        answers: &[Message<'_>],
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> bool {
        let codec = self.config.codec;
        let Some(held) = self.held.as_mut() else {
            return true;
        };
        let Some(i) = held
            .marks
            .iter()
            .position(|&(h, _)| h == HoldOn::Command(id))
        else {
            return self.held.is_none();
        };
        let (_, at) = held.marks.remove(i).expect("found above");
        let mut encoded = Vec::new();
        for answer in answers {
            // Results carry texts clipped to an INFO AVP: they always encode.
            if codec.encode(answer, &mut encoded).is_ok() {
                tally.answers += 1;
            }
        }
        held.bytes.splice(at..at, encoded.iter().copied());
        for (_, offset) in held.marks.iter_mut().skip(i) {
            *offset += encoded.len();
        }
        self.flush_ready(out)
    }

    /// Moves the held bytes before the first mark to `out`; true when nothing is held.
    fn flush_ready(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(held) = self.held.as_mut() else {
            return true;
        };
        let ready = held.marks.front().map_or(held.bytes.len(), |&(_, at)| at);
        out.extend_from_slice(&held.bytes[..ready]);
        if held.marks.is_empty() {
            self.held = None;
            return true;
        }
        held.bytes.drain(..ready);
        for (_, at) in held.marks.iter_mut() {
            *at -= ready;
        }
        false
    }

    /// Appends to `out` a PAUSE or RESUME for the peer (an agent), to be answered to the sink
    /// as `id` ([`ReportSink::on_command_result`]).
    pub fn send_command(
        &mut self,
        action: Action,
        id: u64,
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Result<(), EncodeError> {
        let relays = &mut self.push.get_or_insert_with(Box::default).relays;
        // The node numbers its commands apart from the agent's own requests, from the top of
        // the 4-byte range down, so that their answers are told apart by SEQUENCE alone.
        let seq = u32::MAX - relays.next_seq;
        let msg = match action {
            Action::Pause { duration_secs } => {
                Message::pause(Some(u64::from(seq)), duration_secs, None)
            }
            Action::Resume => Message::resume(Some(u64::from(seq)), None),
        };
        self.config.codec.encode(&msg, out)?;
        relays.next_seq = relays.next_seq.wrapping_add(1);
        if relays.waiting.len() == MAX_RELAYS {
            relays.waiting.pop_front();
        }
        relays.waiting.push_back((seq, id));
        tally.relayed += 1;
        Ok(())
    }

    /// Bytes of answers held back, waiting for a ticket or behind one.
    pub fn held_len(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.bytes.len())
    }

    /// How many reports may be pushed at `now`: none on the data plane, while paused, or once
    /// `max_unacked` pushes await their ack.
    pub fn push_credit(&mut self, now: Instant) -> usize {
        if self.config.role != Role::Management {
            return 0;
        }
        let push = self.push.get_or_insert_with(Box::default);
        if push.paused_until.is_some_and(|t| now >= t) {
            push.paused_until = None;
        }
        if push.paused_until.is_some() {
            return 0;
        }
        self.config.max_unacked.saturating_sub(push.unacked)
    }

    /// Appends `report`, pushed at `now`, to `out` with the session's next push SEQUENCE. The
    /// caller asks [`ServerSession::push_credit`] first.
    pub fn push_report(
        &mut self,
        now: Instant,
        report: &Report<'_>,
        out: &mut Vec<u8>,
        tally: &mut Tally,
    ) -> Result<(), EncodeError> {
        let push = self.push.get_or_insert_with(Box::default);
        let msg = Message {
            sequence: Some(u64::from(push.next_sequence)),
            body: Body::StatReport(report.clone()),
        };
        self.config.codec.encode(&msg, out)?;
        push.next_sequence = push.next_sequence.wrapping_add(1);
        push.unacked += 1;
        push.waiting_since.get_or_insert(now);
        tally.pushes += 1;
        Ok(())
    }

    /// Pushed reports awaiting their ack.
    pub fn unacked_pushes(&self) -> usize {
        self.push.as_ref().map_or(0, |p| p.unacked)
    }

    /// Since when the input has ended in a frame not complete yet, if it has.
    pub fn partial_since(&self) -> Option<Instant> {
        self.partial_since.get(self.config.epoch)
    }

    /// When the current pause ends, if the peer paused the pushes.
    pub fn paused_until(&self) -> Option<Instant> {
        self.push.as_ref().and_then(|p| p.paused_until)
    }

    /// When [`ServerSession::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let c = &self.config;
        let last_input = self.last_input.get(c.epoch).unwrap_or(c.epoch);
        let mut at = last_input + c.idle_timeout;
        if let Some(t) = self.partial_since.get(c.epoch) {
            at = at.min(t + c.frame_timeout);
        }
        if let Some(p) = &self.push {
            if let Some(t) = p.waiting_since {
                at = at.min(t + c.ack_timeout);
            }
            if let Some(t) = p.paused_until {
                at = at.min(t);
            }
        }
        at
    }

    /// Handles the timers due at `now`: ends an expired pause, and returns why the session
    /// must close when a deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CloseReason> {
        let c = &self.config;
        if let Some(p) = self.push.as_mut() {
            if p.paused_until.is_some_and(|t| now >= t) {
                p.paused_until = None;
            }
            if p.waiting_since.is_some_and(|t| now >= t + c.ack_timeout) {
                return Err(CloseReason::AckTimeout);
            }
        }
        let partial_since = self.partial_since.get(c.epoch);
        if partial_since.is_some_and(|t| now >= t + c.frame_timeout) {
            return Err(CloseReason::FrameTimeout);
        }
        let last_input = self.last_input.get(c.epoch).unwrap_or(c.epoch);
        if now >= last_input + c.idle_timeout {
            return Err(CloseReason::Idle);
        }
        Ok(())
    }

    /// Reads a report of a fast-path layout at `run`'s position and answers it; returns the
    /// bytes it took, or `None` to leave the frame to the general path. A datagram (`cap` set
    /// to its size) must be that one frame.
    #[inline(always)]
    fn fast_report<S: ReportSink>(
        &mut self,
        run: Run<'_>,
        datagram: Option<Cap>,
        out: &mut Vec<u8>,
        sink: &mut S,
        tally: &mut Tally,
    ) -> Option<usize> {
        #[cfg(any(test, feature = "fuzzing"))]
        if !self.fast_paths {
            return None;
        }
        if self.config.codec != Codec::Binary || self.config.role != Role::Data {
            return None;
        }
        let input = &run.input[run.pos..];
        // The AUTHENTICATOR's place is the layout's: none in a minimal report, after the
        // SEQUENCE in a signed one of the learnt shape.
        let (len, seq, report, authenticator) =
            if let Some((cpu, mem, seq)) = canonical::minimal_report(input) {
                let report = canonical::report(cpu, mem, None, None, None);
                (MINIMAL_REPORT_LEN, seq, report, None)
            } else {
                let shape = self.shape.as_deref()?;
                let (cpu, mem, ts, seq) = shape.read(input)?;
                let node = Cow::Borrowed(shape.node_in(input)?);
                let report = canonical::report(cpu, mem, Some(ts), Some(node), shape.instance);
                (shape.len(), seq, report, shape.authenticator_at())
            };
        if datagram.is_some() && len != input.len() {
            return None;
        }
        let signed = match authenticator {
            Some(at) => SignedFrame::InRun { run, len, at },
            None => SignedFrame::One {
                frame: &input[..len],
                at: None,
            },
        };
        let cap = datagram.unwrap_or(Cap::NONE);
        let (frame, sequence) = (&input[..len], Some(u64::from(seq)));
        // Built in place before the check reads it: a report copied out of the stack after the
        // check cost a store-forwarding stall per report.
        let accepted = AcceptedReport {
            sequence,
            report,
            frame,
        };
        if let Some(Err(failure)) = sink.verifier().map(|v| {
            auth::check(
                v,
                &mut self.last_key,
                Codec::Binary,
                signed,
                &accepted.report,
                sequence,
            )
        }) {
            self.refuse_unauthorized(failure, sequence, out, cap, sink, tally);
            return Some(len);
        }
        tally.reports += 1;
        let decision = sink.on_report(&accepted);
        match decision {
            Acceptance::Ack => {
                answer_buffer(&mut self.held, out).extend_from_slice(&canonical::ack_frame(seq));
                tally.answers += 1;
            }
            Acceptance::Hold(ticket) => {
                hold(&mut self.held, ticket).extend_from_slice(&canonical::ack_frame(seq));
                tally.answers += 1;
            }
            Acceptance::Refuse(refusal) => {
                if let Some(v) = sink.verifier() {
                    auth::withdraw(v, &self.last_key, &accepted.report, sequence);
                }
                tally.refused += 1;
                let answer = refusal.answer(Some(u64::from(seq)));
                self.write_answer(&answer, None, out, cap, tally);
            }
        }
        Some(len)
    }

    /// Answers one decoded frame (`frame` is its bytes), the general path; `cap` bounds the
    /// answer's size.
    #[allow(clippy::too_many_arguments)]
    fn answer<S: ReportSink>(
        &mut self,
        now: Instant,
        frame: &[u8],
        decoded: Decoded<'_>,
        out: &mut Vec<u8>,
        cap: Cap,
        sink: &mut S,
        tally: &mut Tally,
    ) {
        let msg = match decoded {
            Decoded::Message(msg) => msg,
            Decoded::Invalid(err) if err.is_answer() => {
                tally.unsolicited += 1;
                return;
            }
            Decoded::Invalid(err) => {
                let code = err.result_code();
                if code == result_code::UNSUPPORTED_TYPE {
                    tally.unsupported += 1;
                } else {
                    tally.invalid += 1;
                }
                let answer = Message::command_response(err.sequence, code, err.to_string());
                self.write_answer(&answer, None, out, cap, tally);
                return;
            }
        };
        let seq = msg.sequence;
        match msg.body {
            Body::StatReport(_) if self.config.role != Role::Data => {
                tally.unsupported += 1;
                let answer = Message::command_response(
                    seq,
                    result_code::UNSUPPORTED_TYPE,
                    "reports are not accepted on the management plane",
                );
                self.write_answer(&answer, None, out, cap, tally);
            }
            Body::StatReport(report) => {
                if let Some(Err(failure)) = sink.verifier().map(|v| {
                    let at = auth::authenticator_at(self.config.codec, frame);
                    let signed = SignedFrame::One { frame, at };
                    auth::check(
                        v,
                        &mut self.last_key,
                        self.config.codec,
                        signed,
                        &report,
                        seq,
                    )
                }) {
                    self.refuse_unauthorized(failure, seq, out, cap, sink, tally);
                    return;
                }
                tally.reports += 1;
                self.learn_shape(frame, &report, seq, cap.is_datagram());
                let accepted = AcceptedReport {
                    sequence: seq,
                    report,
                    frame,
                };
                match sink.on_report(&accepted) {
                    Acceptance::Ack => self.write_answer(&Message::ack(seq), None, out, cap, tally),
                    Acceptance::Hold(t) => {
                        self.write_answer(&Message::ack(seq), Some(t), out, cap, tally)
                    }
                    Acceptance::Refuse(refusal) => {
                        if let Some(v) = sink.verifier() {
                            auth::withdraw(v, &self.last_key, &accepted.report, seq);
                        }
                        tally.refused += 1;
                        self.write_answer(&refusal.answer(seq), None, out, cap, tally);
                    }
                }
            }
            Body::Pause {
                duration_secs,
                target: Some(target),
            } if self.config.role == Role::Management => {
                let action = Action::Pause { duration_secs };
                self.fleet_command(seq, &target, action, out, cap, sink, tally);
            }
            Body::Resume {
                target: Some(target),
            } if self.config.role == Role::Management => {
                self.fleet_command(seq, &target, Action::Resume, out, cap, sink, tally);
            }
            Body::Pause { duration_secs, .. } => {
                tally.commands += 1;
                let push = self.push.get_or_insert_with(Box::default);
                push.paused_until = now.checked_add(Duration::from_secs(duration_secs));
                let info = format!("paused for {duration_secs} s");
                let answer = Message::command_response(seq, result_code::OK, info);
                self.write_answer(&answer, None, out, cap, tally);
            }
            Body::Resume { .. } => {
                tally.commands += 1;
                let was_paused = self
                    .push
                    .as_mut()
                    .and_then(|p| p.paused_until.take())
                    .is_some();
                let info = if was_paused { "resumed" } else { "not paused" };
                let answer = Message::command_response(seq, result_code::OK, info);
                self.write_answer(&answer, None, out, cap, tally);
            }
            Body::StatReportAck => match self.push.as_mut() {
                Some(p) if p.unacked > 0 => {
                    tally.push_acks += 1;
                    p.unacked -= 1;
                    p.waiting_since = (p.unacked > 0).then_some(now);
                }
                _ => tally.unsolicited += 1,
            },
            Body::CommandResponse { code, info, .. } => {
                match seq.and_then(|s| self.take_relay(s)) {
                    Some(id) => {
                        tally.relayed += 1;
                        sink.on_command_result(id, code, info.as_deref());
                    }
                    None => tally.unsolicited += 1,
                }
            }
        }
    }

    /// Answers a report that failed authentication with 401.
    #[cold]
    fn refuse_unauthorized<S: ReportSink>(
        &mut self,
        failure: AuthFailure,
        sequence: Option<u64>,
        out: &mut Vec<u8>,
        cap: Cap,
        sink: &mut S,
        tally: &mut Tally,
    ) {
        tally.unauthorized += 1;
        sink.on_unauthorized(failure);
        let answer =
            Message::command_response(sequence, result_code::UNAUTHORIZED, failure.to_string());
        self.write_answer(&answer, None, out, cap, tally);
    }

    /// Hands a fleet command to the sink; its answer waits for its results when the sink takes
    /// it, and is 501 otherwise (this node relays no command to agents).
    #[allow(clippy::too_many_arguments)]
    fn fleet_command<S: ReportSink>(
        &mut self,
        sequence: Option<u64>,
        target: &str,
        action: Action,
        out: &mut Vec<u8>,
        cap: Cap,
        sink: &mut S,
        tally: &mut Tally,
    ) {
        tally.commands += 1;
        let command = FleetCommand {
            sequence,
            target,
            action,
        };
        if let Some(id) = sink.on_fleet_command(&command) {
            let h = self.held.get_or_insert_with(Box::default);
            h.marks.push_back((HoldOn::Command(id), h.bytes.len()));
            return;
        }
        tally.unrelayed += 1;
        let refusal = Message::command_response(
            sequence,
            result_code::UNSUPPORTED_TYPE,
            "this node does not relay commands to agents",
        );
        self.write_answer(&refusal, None, out, cap, tally);
    }

    /// The id of the relayed command answered with SEQUENCE `seq`, forgetting it.
    fn take_relay(&mut self, seq: u64) -> Option<u64> {
        let relays = &mut self.push.as_mut()?.relays;
        let i = relays
            .waiting
            .iter()
            .position(|&(s, _)| u64::from(s) == seq)?;
        relays.waiting.remove(i).map(|(_, id)| id)
    }

    /// Encodes `answer` after every answer before it: into `out`, or behind a hold; `ticket`
    /// holds this answer itself until it is confirmed. An answer over `cap` is sent without its
    /// INFO text, or not at all when even that is too large; an error answering a datagram
    /// (`cap` set) never carries INFO.
    fn write_answer(
        &mut self,
        answer: &Message<'_>,
        ticket: Option<u64>,
        out: &mut Vec<u8>,
        cap: Cap,
        tally: &mut Tally,
    ) {
        let codec = self.config.codec;
        let dst = match ticket {
            Some(t) => hold(&mut self.held, t),
            None => answer_buffer(&mut self.held, out),
        };
        let start = dst.len();
        // An error answering a datagram is code-only: it may not be larger than what it
        // answers, and its text would only help someone reflecting traffic.
        let datagram_error = cap.is_datagram()
            && matches!(answer.body, Body::CommandResponse { code, .. } if code != result_code::OK);
        // Every answer the session builds is within the rules: error texts are clipped to fit
        // an INFO AVP, SEQUENCE echoes a value that was read.
        if !datagram_error && codec.encode(answer, dst).is_err() {
            return;
        }
        if datagram_error || dst.len() - start > cap.0 {
            dst.truncate(start);
            let bare = match &answer.body {
                Body::CommandResponse { code, .. } => Message {
                    sequence: answer.sequence,
                    body: Body::CommandResponse {
                        code: *code,
                        info: None,
                        node: None,
                    },
                },
                _ => answer.clone(),
            };
            if codec.encode(&bare, dst).is_err() || dst.len() - start > cap.0 {
                dst.truncate(start);
                tally.oversize_dropped += 1;
                return;
            }
        }
        tally.answers += 1;
    }

    /// Remembers the layout of a named report so that the next one like it takes the fast
    /// path; a `datagram`'s layout is taken with its NODE_ID as a value, since one UDP socket
    /// hears from many nodes.
    fn learn_shape(&mut self, frame: &[u8], report: &Report<'_>, seq: Option<u64>, datagram: bool) {
        if self.config.codec != Codec::Binary {
            return;
        }
        // A connection speaks for one node: keep the first node's shape rather than chase a
        // peer that cycles through names.
        let keep = match self.shape.as_deref() {
            None => false,
            Some(s) => s.read(frame).is_some() || report.node_id.as_deref() != Some(&*s.node),
        };
        if !keep {
            if let Some(shape) = ReportShape::learn(frame, report, seq, datagram) {
                self.shape = Some(Box::new(shape));
            }
        }
    }

    /// The same session without its fast paths, so that tests and fuzz targets can check
    /// that the fast paths answer what the general path answers.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn without_fast_paths(mut self) -> ServerSession {
        self.fast_paths = false;
        self
    }
}

/// Where the next answer goes: straight to `out`, or behind the answers already held.
#[inline(always)]
fn answer_buffer<'b>(held: &'b mut Option<Box<Held>>, out: &'b mut Vec<u8>) -> &'b mut Vec<u8> {
    match held {
        Some(h) => &mut h.bytes,
        None => out,
    }
}

/// The held bytes, with a new hold for `ticket` starting at their end.
fn hold(held: &mut Option<Box<Held>>, ticket: u64) -> &mut Vec<u8> {
    let h = held.get_or_insert_with(Box::default);
    match h.marks.back_mut() {
        // Consecutive tickets, each acked in turn, share one mark: the run is released with
        // its last ticket.
        Some((HoldOn::Ticket(t), _)) if *t + 1 == ticket => *t = ticket,
        _ => h.marks.push_back((HoldOn::Ticket(ticket), h.bytes.len())),
    }
    &mut h.bytes
}

/// A sink that records the ticket of a held datagram answer.
struct DatagramStaging<'s, S> {
    sink: &'s mut S,
    hold: &'s mut Option<u64>,
}

impl<S: ReportSink> ReportSink for DatagramStaging<'_, S> {
    #[inline(always)]
    fn verifier(&mut self) -> Option<&mut dyn Verifier> {
        self.sink.verifier()
    }

    fn on_unauthorized(&mut self, failure: AuthFailure) {
        self.sink.on_unauthorized(failure);
    }

    #[inline(always)]
    fn on_report(&mut self, report: &AcceptedReport<'_>) -> Acceptance {
        match self.sink.on_report(report) {
            // A datagram's answer is sent on its own once confirmed: nothing queues behind it.
            Acceptance::Hold(ticket) => {
                *self.hold = Some(ticket);
                Acceptance::Ack
            }
            other => other,
        }
    }
}

/// The layout of a named report: CPU, MEM, TIMESTAMP, NODE_ID, optionally INSTANCE, a 4-byte
/// SEQUENCE, in the order the encoder writes them, and optionally the AUTHENTICATOR a signer
/// appends. A frame of the same layout, INSTANCE, widths and NODE_ID (with `any_node`, any
/// printable-ASCII NODE_ID of its length) is read by comparing its fixed bytes with this
/// one's, sixteen at a time under a mask, and reading its values where they sit.
#[derive(Debug)]
struct ReportShape {
    /// The report the shape was learnt from, then as many mask bytes: 0xFF over each byte a
    /// report of this shape repeats, 0 over each value it may change (CPU, MEM, TIMESTAMP,
    /// SEQUENCE and the AUTHENTICATOR's value, and NODE_ID's when `any_node`).
    template: Box<[u8]>,
    /// Its NODE_ID.
    node: Box<str>,
    /// Whether a report of this shape may name any NODE_ID of `node`'s length that is
    /// printable ASCII.
    any_node: bool,
    /// Its INSTANCE.
    instance: Option<u64>,
    /// Width of its TIMESTAMP.
    ts_width: usize,
    /// Offset of its SEQUENCE value; an AUTHENTICATOR follows it when the frame goes on.
    seq_at: usize,
}

/// Offsets in a report of the shape: header, CPU AVP (3 bytes), MEM AVP (3), TIMESTAMP AVP.
const CPU_AT: usize = 5;
const MEM_AT: usize = 8;
const TS_AT: usize = 11;

/// Bytes compared at once when a frame is matched against a shape.
const WINDOW: usize = 16;

impl ReportShape {
    /// Length of a report of this shape.
    #[inline(always)]
    fn len(&self) -> usize {
        self.template.len() / 2
    }

    /// Where the AUTHENTICATOR's value starts in a report of this shape, if it is signed.
    #[inline(always)]
    fn authenticator_at(&self) -> Option<usize> {
        let seq_end = self.seq_at + 4;
        (self.len() > seq_end).then_some(seq_end + AVP_HEADER_LEN)
    }

    /// The shape of `frame`, which holds `report` with SEQUENCE `seq`, when it is laid out
    /// exactly as the encoder writes such a report: CPU and MEM in one byte, TIMESTAMP in its
    /// shortest width, NODE_ID, INSTANCE (if any) in its shortest width, SEQUENCE in four
    /// bytes, nothing else. With `any_node` the shape takes the NODE_ID's bytes as a value.
    fn learn(
        frame: &[u8],
        report: &Report<'_>,
        seq: Option<u64>,
        any_node: bool,
    ) -> Option<ReportShape> {
        let node = report.node_id.as_deref()?;
        let ts_width = crate::avp::uint_width(report.timestamp_ms?);
        u32::try_from(seq?).ok()?;
        let node_at = TS_AT + ts_width;
        let instance_at = node_at + 2 + node.len();
        let instance_width = report.instance.map(crate::avp::uint_width);
        let seq_at = instance_at + instance_width.map_or(0, |w| 2 + w);
        let end = seq_at + 6;
        let signed = [Attribute::Authenticator as u8, AUTHENTICATOR_LEN as u8];
        let laid_out = (frame.len() == end
            || frame.len() == end + AVP_HEADER_LEN + AUTHENTICATOR_LEN
                && frame[end..end + AVP_HEADER_LEN] == signed)
            && frame.len() >= WINDOW
            && frame[3..CPU_AT] == [Attribute::CpuUsage as u8, 1]
            && frame[CPU_AT + 1..MEM_AT] == [Attribute::MemUsage as u8, 1]
            && frame[MEM_AT + 1..TS_AT] == [Attribute::Timestamp as u8, ts_width as u8]
            && frame[node_at..node_at + 2] == [Attribute::NodeId as u8, node.len() as u8]
            && instance_width.is_none_or(|w| {
                frame[instance_at..instance_at + 2] == [Attribute::Instance as u8, w as u8]
            })
            && frame[seq_at..seq_at + 2] == [Attribute::Sequence as u8, 4];
        if !laid_out {
            return None;
        }
        // A shape must read the report it was learnt from.
        let any_node = any_node && printable_ascii(node.as_bytes());
        let seq_at = seq_at + AVP_HEADER_LEN;
        let mut template = frame.to_vec();
        template.resize(2 * frame.len(), 0xFF);
        let mask = &mut template[frame.len()..];
        mask[CPU_AT] = 0;
        mask[MEM_AT] = 0;
        mask[TS_AT..node_at].fill(0);
        mask[seq_at..seq_at + 4].fill(0);
        if any_node {
            mask[node_at + AVP_HEADER_LEN..instance_at].fill(0);
        }
        if frame.len() > end {
            mask[end + AVP_HEADER_LEN..].fill(0);
        }
        Some(ReportShape {
            template: template.into(),
            node: node.into(),
            any_node,
            instance: report.instance,
            ts_width,
            seq_at,
        })
    }

    /// CPU, MEM, TIMESTAMP and SEQUENCE of the report of this shape at the front of `input`.
    #[inline(always)]
    fn read(&self, input: &[u8]) -> Option<(u8, u8, u64, u32)> {
        let (t, m) = self.template.split_at(self.len());
        let f = input.get(..t.len())?;
        // INVARIANT: t.len() >= WINDOW; the last window overlaps the one before it.
        let window = |bytes: &[u8], at: usize| {
            u128::from_ne_bytes(bytes[at..at + WINDOW].try_into().unwrap_or_default())
        };
        let differs = |at: usize| (window(f, at) ^ window(t, at)) & window(m, at);
        let last = t.len() - WINDOW;
        let mut diff = differs(last);
        let mut at = 0;
        while at < last {
            diff |= differs(at);
            at += WINDOW;
        }
        let node_at = TS_AT + self.ts_width;
        let (cpu, mem) = (f[CPU_AT], f[MEM_AT]);
        if diff != 0 || cpu > MAX_PERCENT || mem > MAX_PERCENT {
            return None;
        }
        let ts = read_uint(&f[TS_AT..node_at]).ok()?;
        let seq = u32::from_be_bytes(f[self.seq_at..self.seq_at + 4].try_into().ok()?);
        Some((cpu, mem, ts, seq))
    }

    /// The NODE_ID of the report of this shape at the front of `input`, which [`Self::read`]
    /// read: this shape's, or with `any_node` the report's own when it is printable ASCII.
    #[inline(always)]
    fn node_in<'a>(&'a self, input: &'a [u8]) -> Option<&'a str> {
        if !self.any_node {
            return Some(&self.node);
        }
        let name = &input[TS_AT + self.ts_width + AVP_HEADER_LEN..][..self.node.len()];
        if !printable_ascii(name) {
            return None;
        }
        std::str::from_utf8(name).ok()
    }
}

/// True when `text` is printable ASCII: a NODE_ID the rules allow, whose other values (any
/// other UTF-8 text without control characters) the general path checks.
#[inline(always)]
fn printable_ascii(text: &[u8]) -> bool {
    text.iter().all(|b| (b' '..=b'~').contains(b))
}

/// A bound on the size of an answer.
#[derive(Debug, Clone, Copy)]
struct Cap(usize);

impl Cap {
    /// No bound: stream answers.
    const NONE: Cap = Cap(usize::MAX);

    /// True when the answer is to a datagram (bounded by its size).
    fn is_datagram(self) -> bool {
        self.0 != Cap::NONE.0
    }
}

#[cfg(test)]
mod tests;
