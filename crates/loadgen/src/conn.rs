//! One client connection: its socket, its output buffer, its outstanding requests, and what
//! happens to each of its events.
//!
//! TCP answers come back in request order, so an answer is matched with the oldest outstanding
//! request and its SEQUENCE is checked against it; UDP answers may be lost or reordered, so they
//! are matched by SEQUENCE. Input is read into the worker's shared scratch buffer and only a
//! trailing partial frame is copied into the connection, so idle connections hold no buffers.

use crate::check::{check, Verdict};
use crate::inflight::{InFlight, InFlightQueue};
use crate::mix::MixCursor;
use crate::pacing::Pacing;
use crate::request::{RequestKind, RequestWriter};
use crate::worker::Ctx;
use avp_proto::{ack_frame, Codec, Decoded, FramingError, Status, ACK_FRAME_LEN};
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Delay before a failed or closed connection is opened again.
const RECONNECT_DELAY_NS: u64 = 100_000_000;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected; connect at this clock time.
    Waiting(u64),
    /// A TCP connect is in progress.
    Connecting,
    /// Ready to send and receive.
    Open,
}

#[derive(Debug)]
enum Sock {
    Closed,
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    /// The peer closed it or an IO error broke it.
    Disconnect,
    /// The answer stream could not be framed.
    Framing,
    /// Its oldest request timed out (TCP answers are ordered: everything behind it is stuck).
    Timeout,
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    sock: Sock,
    state: State,
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    want_write: bool,
    queued: bool,
    inflight: InFlightQueue,
    next_seq: u32,
    /// True once SEQUENCE has wrapped past `u32::MAX`: every value has then been sent.
    seq_wrapped: bool,
    pacing: Pacing,
    mix: MixCursor,
    writer: RequestWriter,
}

impl Conn {
    /// A connection that will connect at clock time `connect_at`.
    pub fn new(connect_at: u64, pacing: Pacing, mix: MixCursor, writer: RequestWriter) -> Self {
        Conn {
            sock: Sock::Closed,
            state: State::Waiting(connect_at),
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            want_write: false,
            queued: false,
            inflight: InFlightQueue::default(),
            next_seq: 0,
            seq_wrapped: false,
            pacing,
            mix,
            writer,
        }
    }

    /// True when this connection will send nothing more: in closed loop once sending is over;
    /// in open loop once every slot scheduled before the end has gone out (slots that fell due
    /// while the target was slow are still sent late, so a stall at the end is measured too),
    /// or at the end when the connection is not open.
    pub fn sending_done(&self, ctx: &Ctx, now: u64) -> bool {
        if ctx.remaining == Some(0) {
            return true;
        }
        match (self.state, self.pacing.next_due()) {
            (State::Open, Some(due)) => due >= ctx.send_end,
            _ => ctx.sending_over(now),
        }
    }

    /// The next clock time at which [`Conn::service`] has something to do for this connection.
    pub fn next_event(&self, ctx: &Ctx) -> u64 {
        match self.state {
            State::Waiting(at) => at,
            State::Connecting => u64::MAX,
            State::Open => {
                let timeout = self
                    .inflight
                    .front()
                    .map_or(u64::MAX, |f| f.sent.saturating_add(ctx.timeout));
                let due = if self.inflight.len() < ctx.depth {
                    self.pacing.next_due().unwrap_or(u64::MAX)
                } else {
                    u64::MAX
                };
                timeout.min(due)
            }
        }
    }

    /// Timer work at `now`: connect when due, expire timed-out requests, send scheduled ones.
    pub fn service(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx, now: u64) {
        match self.state {
            State::Waiting(at) if at <= now && !ctx.sending_over(now) => {
                self.connect(registry, token, ctx, now)
            }
            State::Open => {
                self.expire(registry, ctx, now);
                if self.state == State::Open {
                    self.fill(ctx, now);
                    self.flush(registry, token, ctx);
                }
            }
            _ => {}
        }
    }

    fn connect(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx, now: u64) {
        let result = match ctx.scheme_is_udp {
            false => TcpStream::connect(ctx.target).and_then(|mut s| {
                registry.register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
                Ok(Sock::Tcp(s))
            }),
            true => udp_socket(ctx.target).and_then(|mut s| {
                registry.register(&mut s, token, Interest::READABLE)?;
                Ok(Sock::Udp(s))
            }),
        };
        match result {
            Ok(sock @ Sock::Tcp(_)) => {
                self.sock = sock;
                self.state = State::Connecting;
            }
            Ok(sock) => {
                self.sock = sock;
                self.on_open(registry, token, ctx, now);
            }
            Err(_) => self.connect_failed(ctx, now),
        }
    }

    fn connect_failed(&mut self, ctx: &mut Ctx, now: u64) {
        if now >= ctx.measure_start {
            ctx.stats.errors.connect_failures += 1;
        }
        ctx.interval.errors += 1;
        self.sock = Sock::Closed;
        self.state = State::Waiting(now + RECONNECT_DELAY_NS);
    }

    fn on_open(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx, now: u64) {
        self.state = State::Open;
        ctx.open += 1;
        self.fill(ctx, now);
        self.flush(registry, token, ctx);
    }

    /// Handles a readiness event.
    pub fn on_event(
        &mut self,
        registry: &Registry,
        token: Token,
        ev: &mio::event::Event,
        ctx: &mut Ctx,
    ) {
        match self.state {
            State::Connecting => self.on_connecting(registry, token, ctx),
            State::Open => {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(registry, token, ctx);
                }
                if self.state == State::Open && ev.is_writable() {
                    self.flush(registry, token, ctx);
                }
            }
            State::Waiting(_) => {}
        }
    }

    fn on_connecting(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        let now = ctx.clock.now();
        let Sock::Tcp(s) = &mut self.sock else {
            return;
        };
        match s.take_error() {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => return self.connect_failed(ctx, now),
        }
        match s.peer_addr() {
            Ok(_) => {
                let ready = s
                    .set_nodelay(true)
                    .and_then(|_| registry.reregister(s, token, Interest::READABLE));
                match ready {
                    Ok(()) => {
                        self.want_write = false;
                        self.on_open(registry, token, ctx, now);
                    }
                    Err(_) => self.connect_failed(ctx, now),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(_) => self.connect_failed(ctx, now),
        }
    }

    fn on_readable(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        // The clock is read once per read that returned bytes: those answers' arrival time.
        let mut now = None;
        loop {
            let mut scratch = std::mem::take(&mut ctx.scratch);
            let read = match &mut self.sock {
                Sock::Tcp(s) => s.read(&mut scratch),
                Sock::Udp(s) => s.recv(&mut scratch),
                Sock::Closed => Err(io::ErrorKind::NotConnected.into()),
            };
            let outcome = match read {
                Ok(0) if matches!(self.sock, Sock::Tcp(_)) => Err(CloseReason::Disconnect),
                Ok(n) => {
                    let at = *now.insert(ctx.clock.now());
                    let r = self.on_bytes(&scratch[..n], ctx, at);
                    // A short TCP read drained the socket: skip the read that would only say
                    // WouldBlock (mio's edge-triggered readiness fires again on new data).
                    match r {
                        Ok(()) if n < scratch.len() && matches!(self.sock, Sock::Tcp(_)) => {
                            Ok(false)
                        }
                        Ok(()) => Ok(true),
                        Err(_) => Err(CloseReason::Framing),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
                // UDP: an ICMP error (port unreachable) surfaces here; the request times out.
                Err(_) if matches!(self.sock, Sock::Udp(_)) => Ok(true),
                Err(_) => Err(CloseReason::Disconnect),
            };
            ctx.scratch = scratch;
            match outcome {
                Ok(true) => continue,
                Ok(false) => break,
                Err(reason) => {
                    let now = now.unwrap_or_else(|| ctx.clock.now());
                    return self.close(registry, ctx, now, reason);
                }
            }
        }
        let now = now.unwrap_or_else(|| ctx.clock.now());
        self.fill(ctx, now);
        // Written once every event of this poll round has been read (see `Conn::flush_queued`),
        // so one wake-up of the target serves several connections.
        if self.out_pos < self.out.len() && !self.queued {
            self.queued = true;
            ctx.queued.push(token.0);
        }
    }

    /// Writes output queued while reading; called once per poll round.
    pub fn flush_queued(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        self.queued = false;
        if self.state == State::Open {
            self.flush(registry, token, ctx);
        }
    }

    /// Handles bytes read at `now`: every complete answer is checked and timed.
    fn on_bytes(&mut self, data: &[u8], ctx: &mut Ctx, now: u64) -> Result<(), FramingError> {
        if let Sock::Udp(_) = self.sock {
            self.on_datagram(data, ctx, now);
            return Ok(());
        }
        if self.pending.is_empty() {
            let used = self.answers(data, ctx, now)?;
            self.pending.extend_from_slice(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(data);
            let used = self.answers(&buf, ctx, now);
            buf.drain(..*used.as_ref().unwrap_or(&0));
            self.pending = buf;
            used?;
        }
        if self.pending.is_empty() {
            // Give a large partial-frame buffer back rather than keep it for an idle peer.
            self.pending = Vec::new();
        }
        Ok(())
    }

    /// Decodes and completes every whole answer at the start of `buf`; returns bytes used.
    fn answers(&mut self, buf: &[u8], ctx: &mut Ctx, now: u64) -> Result<usize, FramingError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            // The common answer, a report's ack in its canonical layout, is checked by comparing
            // bytes; anything else is decoded and checked field by field.
            // Requests of one run share their send time, so the acks matched here in a row
            // are timed and counted together.
            if let Some((req, run)) = self.inflight.front_run() {
                if req.kind == RequestKind::Report && ctx.codec == Codec::Binary {
                    let acks = rest
                        .chunks_exact(ACK_FRAME_LEN)
                        .take(run as usize)
                        .zip(req.seq..)
                        .take_while(|(frame, seq)| *frame == ack_frame(*seq))
                        .count();
                    if acks > 0 {
                        self.inflight.pop_front_n(acks as u32);
                        used += acks * ACK_FRAME_LEN;
                        complete(req, acks as u64, Verdict::Ok, ctx, now);
                        continue;
                    }
                }
            }
            match ctx.codec.decode(rest) {
                Ok(Status::Complete((answer, n))) => {
                    used += n;
                    match self.inflight.pop_front() {
                        Some(req) => complete(req, 1, check(req.kind, req.seq, &answer), ctx, now),
                        None => count(ctx, now, |e| e.unsolicited += 1),
                    }
                }
                Ok(Status::Partial) => return Ok(used),
                Err(e) => {
                    count(ctx, now, |e| e.framing += 1);
                    return Err(e);
                }
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], ctx: &mut Ctx, now: u64) {
        let answer = match ctx.codec.decode(data) {
            Ok(Status::Complete((answer, n))) if n == data.len() => answer,
            _ => return count(ctx, now, |e| e.framing += 1),
        };
        let seq = match &answer {
            Decoded::Message(m) => m.sequence,
            Decoded::Invalid(e) => e.sequence,
        };
        let req = seq
            .and_then(|s| u32::try_from(s).ok())
            .and_then(|s| self.inflight.remove_seq(s));
        match req {
            Some(req) => complete(req, 1, check(req.kind, req.seq, &answer), ctx, now),
            None if seq.is_some_and(|s| was_sent(s, self.next_seq, self.seq_wrapped)) => {
                count(ctx, now, |e| e.late += 1)
            }
            None => count(ctx, now, |e| e.unsolicited += 1),
        }
    }

    /// Sends every request that pacing allows at `now`, into the output buffer (TCP) or
    /// straight to the socket (UDP).
    fn fill(&mut self, ctx: &mut Ctx, now: u64) {
        let epoch_ms = ctx.clock.epoch_ms(now);
        let (mut written, mut sent_by_kind) = (0, [0; RequestKind::ALL.len()]);
        while !self.sending_done(ctx, now) {
            let outstanding = self.inflight.len();
            let Some((scheduled, mut count)) = self.pacing.poll_send(now, outstanding, ctx.depth)
            else {
                break;
            };
            if scheduled >= ctx.send_end {
                break;
            }
            let measured = scheduled >= ctx.measure_start;
            if let (true, Some(r)) = (measured, &mut ctx.remaining) {
                count = count.min(usize::try_from(*r).unwrap_or(usize::MAX));
                *r -= count as u64;
            }
            if count == 0 {
                break;
            }
            // The slot's requests go out in runs of one kind: the whole slot when the mix has
            // a single kind, one request at a time otherwise.
            let mut left = count;
            while left > 0 {
                let (kind, n) = match self.mix.single_kind() {
                    Some(kind) => (kind, left),
                    None => (self.mix.next_kind(), 1),
                };
                // A slot holds at most --pipeline requests, which the command line bounds.
                let run_len = n as u32;
                let seq = self.next_seq;
                let (next, wrapped) = seq.overflowing_add(run_len);
                self.next_seq = next;
                self.seq_wrapped |= wrapped;
                self.send(kind, seq, n, epoch_ms, &mut ctx.datagram);
                let first = InFlight {
                    seq,
                    kind,
                    scheduled,
                    sent: now,
                    measured,
                };
                self.inflight.push_run(first, run_len);
                if measured {
                    sent_by_kind[kind as usize] += n as u64;
                }
                left -= n;
            }
            written += count as u64;
        }
        ctx.outstanding += written;
        ctx.interval.sent += written;
        for (total, n) in ctx.stats.sent.iter_mut().zip(sent_by_kind) {
            *total += n;
        }
    }

    /// Writes `n` requests of `kind` numbered from `seq`: into the output buffer (TCP) or each
    /// as a datagram of its own (UDP), built in `datagram`.
    #[inline(always)]
    fn send(
        &mut self,
        kind: RequestKind,
        seq: u32,
        n: usize,
        epoch_ms: u64,
        datagram: &mut Vec<u8>,
    ) {
        match &self.sock {
            Sock::Udp(s) => {
                for seq in (0..n).map(|i| seq.wrapping_add(i as u32)) {
                    datagram.clear();
                    self.writer.write(kind, seq, epoch_ms, datagram);
                    // A datagram the kernel refuses is lost like one the network drops: it is
                    // counted when its timeout expires.
                    let _ = s.send(datagram);
                }
            }
            _ => {
                self.writer.write_run(kind, seq, n, epoch_ms, &mut self.out);
            }
        }
    }

    /// Writes pending output until done or WouldBlock; asks for WRITABLE only while some is left.
    /// The clock is read only when the connection breaks.
    fn flush(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        let Sock::Tcp(s) = &mut self.sock else {
            return;
        };
        while self.out_pos < self.out.len() {
            match s.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    let now = ctx.clock.now();
                    return self.close(registry, ctx, now, CloseReason::Disconnect);
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        let want = self.out_pos < self.out.len();
        if want != self.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if registry.reregister(s, token, interest).is_err() {
                let now = ctx.clock.now();
                return self.close(registry, ctx, now, CloseReason::Disconnect);
            }
            self.want_write = want;
        }
    }

    /// Counts requests older than the timeout. On TCP the connection is closed (its answers
    /// are ordered, so nothing behind a lost answer can arrive); on UDP they are lost datagrams.
    fn expire(&mut self, registry: &Registry, ctx: &mut Ctx, now: u64) {
        let timeout = ctx.timeout;
        let expired = move |r: &InFlight| r.sent.saturating_add(timeout) <= now;
        match self.sock {
            Sock::Udp(_) => {
                while let Some(req) = self.inflight.front().filter(expired) {
                    self.inflight.pop_front();
                    give_up(req, ctx, now, |e| e.timeouts += 1);
                }
            }
            _ => {
                if self.inflight.front().is_some_and(|r| expired(&r)) {
                    self.close(registry, ctx, now, CloseReason::Timeout);
                }
            }
        }
    }

    /// Gives up on every outstanding request as a timeout (the end of the drain period).
    pub fn abandon(&mut self, ctx: &mut Ctx, now: u64) {
        for req in self.inflight.drain() {
            give_up(req, ctx, now, |e| e.timeouts += 1);
        }
    }

    fn close(&mut self, registry: &Registry, ctx: &mut Ctx, now: u64, reason: CloseReason) {
        if let Sock::Tcp(s) = &mut self.sock {
            let _ = registry.deregister(s);
        }
        if let Sock::Udp(s) = &mut self.sock {
            let _ = registry.deregister(s);
        }
        self.sock = Sock::Closed;
        if self.state == State::Open {
            ctx.open -= 1;
        }
        for req in self.inflight.drain() {
            match reason {
                CloseReason::Timeout => give_up(req, ctx, now, |e| e.timeouts += 1),
                _ => give_up(req, ctx, now, |e| e.aborted += 1),
            }
        }
        if reason == CloseReason::Disconnect {
            count(ctx, now, |e| e.disconnects += 1);
        }
        self.pending = Vec::new();
        self.out = Vec::new();
        self.out_pos = 0;
        self.want_write = false;
        self.state = State::Waiting(now + RECONNECT_DELAY_NS);
    }
}

/// A UDP socket bound to an ephemeral port of the target's address family and connected to it.
fn udp_socket(target: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = UdpSocket::bind(any)?;
    s.connect(target)?;
    Ok(s)
}

/// True when SEQUENCE `seq` has been sent on a connection whose next SEQUENCE is `next_seq`
/// (`wrapped`: SEQUENCE has passed `u32::MAX` at least once, so every value has been sent).
fn was_sent(seq: u64, next_seq: u32, wrapped: bool) -> bool {
    u32::try_from(seq).is_ok_and(|s| wrapped || s < next_seq)
}

/// Counts and times the answers to `n` requests of one run starting at `req`, all found
/// `verdict` by checking.
#[inline]
fn complete(req: InFlight, n: u64, verdict: Verdict, ctx: &mut Ctx, now: u64) {
    ctx.outstanding -= n;
    ctx.interval.answered += n;
    if verdict != Verdict::Ok {
        ctx.interval.errors += n;
    }
    if !req.measured {
        ctx.stats.warmup_answered += n;
        // Warmup answers still feed the live progress line.
        ctx.warmup_latency
            .saturating_record_n(now.saturating_sub(req.scheduled).max(1), n);
        return;
    }
    let s = &mut ctx.stats;
    s.answered += n;
    if verdict == Verdict::Ok {
        s.ok += n;
    } else {
        s.errors.record(verdict, n);
    }
    if ctx.open_loop {
        s.record_latency(now, req.scheduled, req.sent, n);
    } else {
        s.record_closed_loop_latency(now, req.sent, n);
    }
    s.last_done = now;
}

/// Ends `req` without an answer, counting it with `bump` when it was measured.
fn give_up(
    req: InFlight,
    ctx: &mut Ctx,
    now: u64,
    bump: impl FnOnce(&mut crate::stats::ErrorCounts),
) {
    ctx.outstanding -= 1;
    ctx.interval.errors += 1;
    if req.measured {
        bump(&mut ctx.stats.errors);
        ctx.stats.last_done = now;
    }
}

/// Counts an event that belongs to no request, when it happens inside the measurement window.
fn count(ctx: &mut Ctx, now: u64, bump: impl FnOnce(&mut crate::stats::ErrorCounts)) {
    ctx.interval.errors += 1;
    if now >= ctx.measure_start {
        bump(&mut ctx.stats.errors);
    }
}

#[cfg(test)]
mod tests {
    use super::was_sent;

    #[test]
    fn an_answer_is_late_only_for_a_sequence_already_sent() {
        assert!(was_sent(0, 10, false));
        assert!(was_sent(9, 10, false));
        assert!(!was_sent(10, 10, false));
        assert!(!was_sent(4_000_000_000, 10, false));
        // After a wrap, every 32-bit value has gone out once, including those above next_seq.
        assert!(was_sent(4_000_000_000, 10, true));
        assert!(was_sent(10, 10, true));
        // A SEQUENCE wider than the 32 bits the loadgen sends was never sent.
        assert!(!was_sent(u64::from(u32::MAX) + 1, 10, true));
    }
}
