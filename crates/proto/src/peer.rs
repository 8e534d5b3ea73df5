//! The client's side of the protocol: [`PeerSession`], used by the agent, the terminal and the
//! load generator.
//!
//! A peer sends requests (reports, PAUSE, RESUME) and gets answers; the other side may also push
//! reports and send PAUSE or RESUME of its own. The session writes requests into the caller's
//! buffer, remembers each one until its answer comes, matches answers to requests by SEQUENCE,
//! checks them, answers what the other side sends (an ack for a pushed report, 200 for PAUSE and
//! RESUME, 400 or 501 for an invalid message), and keeps the pause the other side asked for. It
//! never touches a socket or a clock.
//!
//! # Call order
//!
//! 1. [`PeerSession::send`] (or [`PeerSession::send_with_sequence`], or
//!    [`PeerSession::send_reports`] for a run) appends requests to `out`; the caller writes
//!    `out` to its socket.
//! 2. [`PeerSession::handle_input`] with received stream bytes, or
//!    [`PeerSession::handle_datagram`] with one received datagram: every event goes to the
//!    caller's closure, and whatever the session answers is appended to `out`.
//! 3. [`PeerSession::poll_timeout`] says when [`PeerSession::handle_timeout`] is due (an answer
//!    overdue, a pause over).
//! 4. When the connection is lost, [`PeerSession::reset`] gives up on every outstanding request.
//!
//! On a stream, answers come in request order, so an answer completes the oldest outstanding
//! request; on datagrams they may be lost or reordered, so they are matched by SEQUENCE.
//! Requests sent together with the same tag are kept as one run, so a pipeline of 128 costs one
//! record, and their canonical acks are recognised by comparing bytes.

use crate::auth::{self, Key};
use crate::avp::AVP_HEADER_LEN;
use crate::canonical::{self, ACK_FRAME_LEN};
use crate::codec::{Codec, Decoded};
use crate::error::{EncodeError, FramingError, MessageError};
use crate::frame::Status;
use crate::message::{result_code, Body, Message, MessageType, Report};
use crate::rules::AUTHENTICATOR_LEN;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How the session's bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A byte stream (TCP): answers in order.
    Stream,
    /// Datagrams (UDP): one frame each, answers in any order or lost.
    Datagram,
}

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RequestKind {
    /// STAT_REPORT, answered by STAT_REPORT_ACK.
    Report = 0,
    /// PAUSE, answered by COMMAND_RESPONSE.
    Pause = 1,
    /// RESUME, answered by COMMAND_RESPONSE.
    Resume = 2,
}

impl RequestKind {
    /// Every kind, in the order of their numbers (`kind as usize` indexes it).
    pub const ALL: [RequestKind; 3] =
        [RequestKind::Report, RequestKind::Pause, RequestKind::Resume];

    /// The kind's name, as the JSON form names its message type.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Report => "report",
            RequestKind::Pause => "pause",
            RequestKind::Resume => "resume",
        }
    }

    /// The kind a name stands for.
    pub fn from_name(name: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The message type that answers this kind.
    pub fn answer_type(self) -> MessageType {
        match self {
            RequestKind::Report => MessageType::StatReportAck,
            RequestKind::Pause | RequestKind::Resume => MessageType::CommandResponse,
        }
    }
}

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// A STAT_REPORT.
    Report(Report<'a>),
    /// PAUSE for `duration_secs` seconds.
    Pause {
        /// Pause length, 1..=[`MAX_PAUSE_SECS`](crate::MAX_PAUSE_SECS).
        duration_secs: u64,
        /// The nodes to pause (a terminal's command, relayed by the node), as a glob over
        /// NODE_IDs; `None` pauses what the other side sends to this peer.
        target: Option<Cow<'a, str>>,
    },
    /// RESUME.
    Resume {
        /// The nodes to resume, as for [`Request::Pause`].
        target: Option<Cow<'a, str>>,
    },
}

impl Request<'_> {
    /// What it asks.
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::Report(_) => RequestKind::Report,
            Request::Pause { .. } => RequestKind::Pause,
            Request::Resume { .. } => RequestKind::Resume,
        }
    }

    fn message(&self, seq: u32) -> Message<'_> {
        let body = match self {
            Request::Report(r) => Body::StatReport(Report {
                node_id: r.node_id.as_deref().map(Cow::Borrowed),
                ..*r
            }),
            Request::Pause {
                duration_secs,
                target,
            } => Body::Pause {
                duration_secs: *duration_secs,
                target: target.as_deref().map(Cow::Borrowed),
            },
            Request::Resume { target } => Body::Resume {
                target: target.as_deref().map(Cow::Borrowed),
            },
        };
        Message {
            sequence: Some(u64::from(seq)),
            body,
        }
    }
}

/// Outstanding requests that share everything but consecutive SEQUENCEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent<T> {
    /// The SEQUENCE of the first of them.
    pub first_seq: u32,
    /// How many (at least one); their SEQUENCEs follow the first one's.
    pub count: u32,
    /// What they asked.
    pub kind: RequestKind,
    /// When they were sent.
    pub sent_at: Instant,
    /// The caller's tag, given when they were sent.
    pub tag: T,
}

impl<T: Copy + PartialEq> Sent<T> {
    fn nth(&self, i: u32) -> Sent<T> {
        Sent {
            first_seq: self.first_seq.wrapping_add(i),
            count: 1,
            ..*self
        }
    }

    fn holds(&self, seq: u32) -> Option<u32> {
        let i = seq.wrapping_sub(self.first_seq);
        (i < self.count).then_some(i)
    }

    /// True when `next` continues this run: equal but for the SEQUENCE right after it.
    fn followed_by(&self, next: &Sent<T>) -> bool {
        next.first_seq == self.first_seq.wrapping_add(self.count)
            && next.kind == self.kind
            && next.sent_at == self.sent_at
            && next.tag == self.tag
    }
}

/// How an answer relates to the request it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// The expected answer: an ack of a report, 200 for a command, with the right SEQUENCE.
    Ok,
    /// An answer whose SEQUENCE is not the request's.
    SeqMismatch,
    /// COMMAND_RESPONSE 4xx.
    Status4xx,
    /// COMMAND_RESPONSE 5xx (503: the other side could not take it now; send it again later).
    Status5xx,
    /// An answer of the wrong type, or a result code that is neither 2xx, 4xx nor 5xx.
    WrongType,
    /// An answer that breaks the protocol's rules.
    Invalid,
}

impl Verdict {
    /// Checks `answer` against a request of `kind` sent with `seq`.
    pub fn of(kind: RequestKind, seq: u32, answer: &Decoded<'_>) -> Verdict {
        let msg = match answer {
            Decoded::Message(m) => m,
            Decoded::Invalid(_) => return Verdict::Invalid,
        };
        if msg.sequence != Some(u64::from(seq)) {
            return Verdict::SeqMismatch;
        }
        if let Body::CommandResponse { code, .. } = msg.body {
            match code {
                400..=499 => return Verdict::Status4xx,
                500..=599 => return Verdict::Status5xx,
                result_code::OK => {}
                _ => return Verdict::WrongType,
            }
        }
        if msg.msg_type() == kind.answer_type() {
            Verdict::Ok
        } else {
            Verdict::WrongType
        }
    }
}

/// The result code and text of a COMMAND_RESPONSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// RESULT_CODE.
    pub code: u16,
    /// INFO, if any.
    pub info: Option<Cow<'a, str>>,
}

/// Something that happened to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent<'a, T> {
    /// Answers arrived for `sent` (all of them, with one verdict).
    Answered {
        /// The requests answered.
        sent: Sent<T>,
        /// How the answers relate to them.
        verdict: Verdict,
        /// The text of the answer when it was a COMMAND_RESPONSE.
        response: Option<Response<'a>>,
    },
    /// The other side pushed a report; its ack is already in `out`.
    Pushed {
        /// The report's SEQUENCE.
        sequence: Option<u64>,
        /// The report.
        report: Report<'a>,
    },
    /// The other side asked for a pause until `until` (answered 200).
    Paused {
        /// The pause length it asked for.
        duration_secs: u64,
        /// When the pause ends, unless RESUME comes first.
        until: Instant,
    },
    /// The other side sent RESUME (answered 200); `was_paused` says whether a pause ended.
    Resumed {
        /// True when a pause was in force.
        was_paused: bool,
    },
    /// The pause the other side asked for has run its course.
    PauseEnded,
    /// One node's result of the targeted command outstanding (a COMMAND_RESPONSE with
    /// NODE_ID); the command's own answer comes after every node's result.
    NodeResult {
        /// The node.
        node: Cow<'a, str>,
        /// Its result code (200, or what went wrong).
        code: u16,
        /// Its text.
        info: Option<Cow<'a, str>>,
    },
    /// The other side sent an invalid message; it has been answered with 400 or 501 unless
    /// it was itself an answer.
    Invalid(MessageError),
    /// An answer that matches no outstanding request. `late` when its SEQUENCE was sent on
    /// this session before (a datagram answer that came after its request timed out).
    Unsolicited {
        /// True for a late answer.
        late: bool,
    },
    /// `sent` got no answer within the answer timeout.
    TimedOut {
        /// The requests given up on.
        sent: Sent<T>,
    },
    /// `sent` were outstanding when the connection was lost ([`PeerSession::reset`]).
    Aborted {
        /// The requests given up on.
        sent: Sent<T>,
    },
}

/// The client's side of one connection. See the module documentation.
///
/// `T` is a tag the caller attaches to what it sends (the load generator's scheduled send
/// time, say); it comes back with the answer.
#[derive(Debug)]
pub struct PeerSession<T = ()> {
    codec: Codec,
    transport: Transport,
    answer_timeout: Duration,
    /// INVARIANT: in send order; the sum of the counts is `outstanding`.
    runs: VecDeque<Sent<T>>,
    outstanding: usize,
    next_seq: u32,
    /// True once SEQUENCE has wrapped past `u32::MAX`: every value has then been sent.
    wrapped: bool,
    paused_until: Option<Instant>,
    /// The key reports are signed with, if any.
    signer: Option<Key>,
}

impl<T: Copy + PartialEq> PeerSession<T> {
    /// A session speaking `codec` over `transport`, giving up on an answer after
    /// `answer_timeout`.
    pub fn new(codec: Codec, transport: Transport, answer_timeout: Duration) -> Self {
        PeerSession {
            codec,
            transport,
            answer_timeout,
            runs: VecDeque::new(),
            outstanding: 0,
            next_seq: 0,
            wrapped: false,
            paused_until: None,
            signer: None,
        }
    }

    /// Signs every report sent from now on with `key` (see [`crate::auth`]).
    pub fn sign_reports_with(&mut self, key: Key) {
        self.signer = Some(key);
    }

    /// Sends reports unsigned from now on.
    pub fn stop_signing(&mut self) {
        self.signer = None;
    }

    /// Gives up on an answer `answer_timeout` after its request from now on, for requests
    /// already waiting too.
    pub fn set_answer_timeout(&mut self, answer_timeout: Duration) {
        self.answer_timeout = answer_timeout;
    }

    /// The wire form.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Requests sent and not yet answered, timed out or aborted.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The SEQUENCE [`PeerSession::send`] uses next.
    pub fn next_sequence(&self) -> u32 {
        self.next_seq
    }

    /// The oldest outstanding requests.
    pub fn oldest(&self) -> Option<&Sent<T>> {
        self.runs.front()
    }

    /// When the pause the other side asked for ends, if one is in force.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Appends `request` with the session's next SEQUENCE to `out`; returns that SEQUENCE.
    pub fn send(
        &mut self,
        now: Instant,
        request: &Request<'_>,
        tag: T,
        out: &mut Vec<u8>,
    ) -> Result<u32, EncodeError> {
        let seq = self.next_seq;
        self.send_with_sequence(now, seq, request, tag, out)?;
        self.advance(1);
        Ok(seq)
    }

    /// Appends `request` with SEQUENCE `seq` to `out` (a caller that numbers its own
    /// requests, as the agent numbers its reports across reconnects, uses only this).
    pub fn send_with_sequence(
        &mut self,
        now: Instant,
        seq: u32,
        request: &Request<'_>,
        tag: T,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let start = out.len();
        self.codec.encode(&request.message(seq), out)?;
        if let (Some(key), RequestKind::Report) = (&self.signer, request.kind()) {
            sign(self.codec, out, start, key)?;
        }
        self.remember(Sent {
            first_seq: seq,
            count: 1,
            kind: request.kind(),
            sent_at: now,
            tag,
        });
        Ok(())
    }

    /// Appends `count` copies of `report`, with the session's next `count` SEQUENCEs, to
    /// `out`; returns the first SEQUENCE. In the binary form every frame of the run has the
    /// same length (so a datagram caller can split `out` evenly).
    pub fn send_reports(
        &mut self,
        now: Instant,
        report: &Report<'_>,
        count: u32,
        tag: T,
        out: &mut Vec<u8>,
    ) -> Result<u32, EncodeError> {
        let first = self.next_seq;
        if count == 0 {
            return Ok(first);
        }
        let start = out.len();
        let request = Request::Report(report.clone());
        self.codec.encode(&request.message(first), out)?;
        match (self.codec, &self.signer) {
            // As unsigned (below), then the copy's signature: SEQUENCE comes just before the
            // AUTHENTICATOR, which the signature appends.
            (Codec::Binary, Some(key)) => {
                sign(Codec::Binary, out, start, key)?;
                let frame_len = out.len() - start;
                let at = frame_len - AUTHENTICATOR_LEN;
                repeat_frame(out, start, count, at - AVP_HEADER_LEN - 4, first);
                auth::resign_binary(&mut out[start + frame_len..], frame_len, at, key);
            }
            // A text frame's SEQUENCE has no fixed width: each is encoded and signed by itself.
            (codec, Some(key)) => {
                out.truncate(start);
                for i in 0..count {
                    let at = out.len();
                    let seq = first.wrapping_add(i);
                    let signed = codec
                        .encode(&request.message(seq), out)
                        .and_then(|_| sign(codec, out, at, key));
                    if let Err(e) = signed {
                        out.truncate(start);
                        return Err(e);
                    }
                }
            }
            // The frame differs from one copy to the next only in its SEQUENCE, which the
            // encoder writes last, in four bytes.
            (Codec::Binary, None) => {
                let frame_len = out.len() - start;
                repeat_frame(out, start, count, frame_len - 4, first);
            }
            (Codec::Json, None) => {
                for i in 1..count {
                    self.codec
                        .encode(&request.message(first.wrapping_add(i)), out)?;
                }
            }
        }
        self.remember(Sent {
            first_seq: first,
            count,
            kind: RequestKind::Report,
            sent_at: now,
            tag,
        });
        self.advance(count);
        Ok(first)
    }

    /// Handles stream bytes received at `now`: consumes the complete frames at the front of
    /// `input` and returns how many bytes they took. Events go to `on_event`; answers the
    /// session owes go to `out`. An error means the stream is unusable: close it.
    pub fn handle_input(
        &mut self,
        now: Instant,
        input: &[u8],
        out: &mut Vec<u8>,
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) -> Result<usize, FramingError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            if let Some(used) = self.canonical_acks(rest, on_event) {
                pos += used;
                continue;
            }
            match self.codec.decode(rest)? {
                Status::Complete((decoded, used)) => {
                    self.on_decoded(now, decoded, out, on_event);
                    pos += used;
                }
                Status::Partial => break,
            }
        }
        Ok(pos)
    }

    /// Handles one datagram received at `now`, which must hold exactly one frame; returns
    /// false (nothing else happens) when it does not.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
        out: &mut Vec<u8>,
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) -> bool {
        match self.codec.decode(datagram) {
            Ok(Status::Complete((decoded, used))) if used == datagram.len() => {
                self.on_decoded(now, decoded, out, on_event);
                true
            }
            _ => false,
        }
    }

    /// When [`PeerSession::handle_timeout`] has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let answer = self.runs.front().map(|r| r.sent_at + self.answer_timeout);
        match (answer, self.paused_until) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    /// Handles the timers due at `now`: a pause that ran out, and requests past the answer
    /// timeout. On a stream an overdue answer means nothing behind it can come either: every
    /// outstanding request times out and the result is true, telling the caller to close the
    /// connection. On datagrams only the overdue requests time out.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) -> bool {
        if self.paused_until.is_some_and(|t| now >= t) {
            self.paused_until = None;
            on_event(PeerEvent::PauseEnded);
        }
        let overdue = |r: &Sent<T>| now >= r.sent_at + self.answer_timeout;
        if !self.runs.front().is_some_and(overdue) {
            return false;
        }
        match self.transport {
            Transport::Stream => {
                self.give_up(|sent| PeerEvent::TimedOut { sent }, on_event);
                true
            }
            Transport::Datagram => {
                while let Some(sent) = self.runs.front().copied().filter(overdue) {
                    self.runs.pop_front();
                    self.outstanding -= sent.count as usize;
                    on_event(PeerEvent::TimedOut { sent });
                }
                false
            }
        }
    }

    /// The connection was lost: every outstanding request is given up on (an
    /// [`PeerEvent::Aborted`] each). A pause stays in force.
    pub fn reset(&mut self, on_event: &mut impl FnMut(PeerEvent<'_, T>)) {
        self.give_up(|sent| PeerEvent::Aborted { sent }, on_event);
    }

    fn give_up(
        &mut self,
        event: impl Fn(Sent<T>) -> PeerEvent<'static, T>,
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) {
        self.outstanding = 0;
        for sent in self.runs.drain(..) {
            on_event(event(sent));
        }
    }

    fn advance(&mut self, count: u32) {
        let (next, wrapped) = self.next_seq.overflowing_add(count);
        self.next_seq = next;
        self.wrapped |= wrapped;
    }

    fn remember(&mut self, sent: Sent<T>) {
        self.outstanding += sent.count as usize;
        if let Some(last) = self.runs.back_mut() {
            if last.followed_by(&sent) {
                last.count += sent.count;
                return;
            }
        }
        self.runs.push_back(sent);
    }

    /// Completes, by comparing bytes, the canonical acks at the front of `input` that answer
    /// the oldest run of reports in order; returns the bytes they took.
    #[inline(always)]
    fn canonical_acks(
        &mut self,
        input: &[u8],
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) -> Option<usize> {
        if self.transport != Transport::Stream || self.codec != Codec::Binary {
            return None;
        }
        let front = self.runs.front_mut()?;
        if front.kind != RequestKind::Report {
            return None;
        }
        let acks = input
            .chunks_exact(ACK_FRAME_LEN)
            .take(front.count as usize)
            .zip(front.first_seq..)
            .take_while(|(frame, seq)| *frame == canonical::ack_frame(*seq))
            .count() as u32;
        if acks == 0 {
            return None;
        }
        let sent = Sent {
            count: acks,
            ..*front
        };
        self.take_front(acks);
        on_event(PeerEvent::Answered {
            sent,
            verdict: Verdict::Ok,
            response: None,
        });
        Some(acks as usize * ACK_FRAME_LEN)
    }

    /// Drops the `n` oldest requests, all of the front run.
    fn take_front(&mut self, n: u32) {
        let Some(front) = self.runs.front_mut() else {
            return;
        };
        debug_assert!(n <= front.count);
        self.outstanding -= n as usize;
        if front.count == n {
            self.runs.pop_front();
        } else {
            front.count -= n;
            front.first_seq = front.first_seq.wrapping_add(n);
        }
    }

    /// Takes the request with SEQUENCE `seq` wherever it is, splitting its run.
    fn take_seq(&mut self, seq: u32) -> Option<Sent<T>> {
        let (at, i) = self
            .runs
            .iter()
            .enumerate()
            .find_map(|(at, run)| run.holds(seq).map(|i| (at, i)))?;
        let run = self.runs[at];
        self.outstanding -= 1;
        let before = Sent { count: i, ..run };
        let after = Sent {
            count: run.count - i - 1,
            ..run.nth(i + 1)
        };
        match (before.count, after.count) {
            (0, 0) => drop(self.runs.remove(at)),
            (0, _) => self.runs[at] = after,
            (_, 0) => self.runs[at] = before,
            _ => {
                self.runs[at] = before;
                self.runs.insert(at + 1, after);
            }
        }
        Some(run.nth(i))
    }

    /// True when SEQUENCE `seq` has been sent on this session.
    fn was_sent(&self, seq: u64) -> bool {
        u32::try_from(seq).is_ok_and(|s| self.wrapped || s < self.next_seq)
    }

    fn on_decoded(
        &mut self,
        now: Instant,
        decoded: Decoded<'_>,
        out: &mut Vec<u8>,
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) {
        let (is_answer, sequence) = match &decoded {
            Decoded::Message(m) => (m.msg_type().is_answer(), m.sequence),
            Decoded::Invalid(e) => (e.is_answer(), e.sequence),
        };
        if is_answer {
            return self.on_answer(decoded, sequence, on_event);
        }
        let msg = match decoded {
            Decoded::Message(msg) => msg,
            Decoded::Invalid(err) => {
                let answer =
                    Message::command_response(err.sequence, err.result_code(), err.to_string());
                self.answer(&answer, out);
                return on_event(PeerEvent::Invalid(err));
            }
        };
        match msg.body {
            Body::StatReport(report) => {
                self.answer(&Message::ack(sequence), out);
                on_event(PeerEvent::Pushed { sequence, report });
            }
            Body::Pause { duration_secs, .. } => {
                let until = now + Duration::from_secs(duration_secs);
                self.paused_until = Some(until);
                let info = format!("paused for {duration_secs} s");
                self.answer(
                    &Message::command_response(sequence, result_code::OK, info),
                    out,
                );
                on_event(PeerEvent::Paused {
                    duration_secs,
                    until,
                });
            }
            Body::Resume { .. } => {
                let was_paused = self.paused_until.take().is_some();
                let info = if was_paused { "resumed" } else { "not paused" };
                self.answer(
                    &Message::command_response(sequence, result_code::OK, info),
                    out,
                );
                on_event(PeerEvent::Resumed { was_paused });
            }
            Body::CommandResponse { .. } | Body::StatReportAck => {
                unreachable!("answers are handled above")
            }
        }
    }

    fn on_answer(
        &mut self,
        decoded: Decoded<'_>,
        sequence: Option<u64>,
        on_event: &mut impl FnMut(PeerEvent<'_, T>),
    ) {
        if let Decoded::Message(Message {
            body:
                Body::CommandResponse {
                    code,
                    info,
                    node: Some(node),
                },
            ..
        }) = decoded
        {
            return on_event(PeerEvent::NodeResult { node, code, info });
        }
        let sent = match self.transport {
            Transport::Stream => self.runs.front().map(|r| r.nth(0)),
            Transport::Datagram => sequence
                .and_then(|s| u32::try_from(s).ok())
                .and_then(|s| self.take_seq(s)),
        };
        let Some(sent) = sent else {
            let late =
                self.transport == Transport::Datagram && sequence.is_some_and(|s| self.was_sent(s));
            return on_event(PeerEvent::Unsolicited { late });
        };
        if self.transport == Transport::Stream {
            self.take_front(1);
        }
        let verdict = Verdict::of(sent.kind, sent.first_seq, &decoded);
        let response = match decoded {
            Decoded::Message(Message {
                body: Body::CommandResponse { code, info, .. },
                ..
            }) => Some(Response { code, info }),
            _ => None,
        };
        on_event(PeerEvent::Answered {
            sent,
            verdict,
            response,
        });
    }

    fn answer(&mut self, answer: &Message<'_>, out: &mut Vec<u8>) {
        // Answers echo values that were read and carry clipped texts: they always encode.
        let _ = self.codec.encode(answer, out);
    }
}

/// Repeats the binary frame at `out[start..]` until `count` frames are there, the SEQUENCE of
/// each copy (4 bytes at `seq_at` from its start) counting on from the frame's `first`.
fn repeat_frame(out: &mut Vec<u8>, start: usize, count: u32, seq_at: usize, first: u32) {
    let frame_len = out.len() - start;
    out.reserve(frame_len * (count as usize - 1));
    for i in 1..count {
        let from = out.len();
        out.extend_from_within(start..start + frame_len);
        let seq = first.wrapping_add(i);
        out[from + seq_at..from + seq_at + 4].copy_from_slice(&seq.to_be_bytes());
    }
}

/// Signs the frame at `out[start..]`, truncating `out` back to `start` when it cannot be.
fn sign(codec: Codec, out: &mut Vec<u8>, start: usize, key: &Key) -> Result<(), EncodeError> {
    auth::sign(codec, out, start, key).map_err(|e| {
        out.truncate(start);
        EncodeError::Unsignable(e)
    })
}

#[cfg(test)]
mod tests;
