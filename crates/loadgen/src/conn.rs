//! One client connection: its socket, its output buffer, its protocol session, and what
//! happens to each of its events.
//!
//! The protocol is the [`PeerSession`]'s: it writes the requests, keeps them until they are
//! answered, matches answers to them (in order on TCP, by SEQUENCE on UDP), checks them and
//! times them out. This module moves bytes between the socket and the session and turns the
//! session's events into the run's figures. Input is read into the worker's shared scratch
//! buffer and only a trailing partial frame is copied into the connection, so idle
//! connections hold no buffers. A `tls://` connection moves its bytes through rustls
//! ([`avp_tls::stream`]); its handshake is part of its first exchange, so a run with a warmup
//! measures records, not handshakes.

use crate::mix::MixCursor;
use crate::pacing::Pacing;
use crate::request::{command, RequestWriter};
use crate::stats::ErrorCounts;
use crate::worker::Ctx;
use avp_proto::peer::{PeerEvent, PeerSession, RequestKind, Sent, Transport, Verdict};
use avp_proto::FramingError;
use avp_tls::stream::TlsStream;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

enum Sock {
    Closed,
    Tcp(TcpStream),
    Tls(Box<TlsStream<ClientConnection, TcpStream>>),
    Udp(UdpSocket),
}

impl Sock {
    /// The TCP socket of a stream connection.
    fn tcp_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            Sock::Tcp(s) => Some(s),
            Sock::Tls(t) => Some(t.socket_mut()),
            Sock::Closed | Sock::Udp(_) => None,
        }
    }

    /// True when TLS records wait for the socket.
    fn tls_wants_write(&self) -> bool {
        matches!(self, Sock::Tls(t) if t.wants_write())
    }
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sock::Closed => f.write_str("Closed"),
            Sock::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            Sock::Tls(t) => f.debug_tuple("Tls").field(t.socket()).finish(),
            Sock::Udp(s) => f.debug_tuple("Udp").field(s).finish(),
        }
    }
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

/// What the loadgen remembers of a request until its answer: its slot in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// When it was due (open loop) or sent (closed loop), clock nanoseconds.
    pub scheduled: u64,
    /// When it was written, clock nanoseconds.
    pub sent: u64,
    /// Whether it falls in the measurement window (false during the warmup).
    pub measured: bool,
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    sock: Sock,
    state: State,
    session: PeerSession<Due>,
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    want_write: bool,
    queued: bool,
    pacing: Pacing,
    mix: MixCursor,
    writer: RequestWriter,
    source: Option<IpAddr>,
}

impl Conn {
    /// A connection that will connect at clock time `connect_at` from `source` (any local
    /// address when `None`), speaking `ctx`'s codec.
    pub fn new(
        connect_at: u64,
        ctx: &Ctx,
        pacing: Pacing,
        mix: MixCursor,
        writer: RequestWriter,
        source: Option<IpAddr>,
    ) -> Self {
        Conn {
            sock: Sock::Closed,
            state: State::Waiting(connect_at),
            session: new_session(ctx),
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            want_write: false,
            queued: false,
            pacing,
            mix,
            writer,
            source,
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
                    .session
                    .oldest()
                    .map_or(u64::MAX, |f| f.tag.sent.saturating_add(ctx.timeout));
                let due = if self.session.outstanding() < ctx.depth {
                    self.pacing.next_due().unwrap_or(u64::MAX)
                } else {
                    u64::MAX
                };
                let pause_end = self
                    .session
                    .paused_until()
                    .map_or(u64::MAX, |t| ctx.clock.at(t));
                timeout.min(due).min(pause_end)
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
            false => tcp_connect(ctx.target, self.source).and_then(|mut s| {
                registry.register(&mut s, token, Interest::READABLE | Interest::WRITABLE)?;
                match &ctx.tls {
                    None => Ok(Sock::Tcp(s)),
                    Some((config, name)) => {
                        let tls = ClientConnection::new(config.clone(), name.clone())
                            .map_err(io::Error::other)?;
                        Ok(Sock::Tls(Box::new(TlsStream::new(s, tls))))
                    }
                }
            }),
            true => udp_socket(ctx.target, self.source).and_then(|mut s| {
                registry.register(&mut s, token, Interest::READABLE)?;
                Ok(Sock::Udp(s))
            }),
        };
        match result {
            Ok(sock @ (Sock::Tcp(_) | Sock::Tls(_))) => {
                self.sock = sock;
                self.state = State::Connecting;
            }
            Ok(sock) => {
                self.sock = sock;
                self.on_open(registry, token, ctx, now);
            }
            Err(e) => self.connect_failed(ctx, now, &e),
        }
    }

    fn connect_failed(&mut self, ctx: &mut Ctx, now: u64, why: &io::Error) {
        count(ctx, now, |e, n| e.connect_failures += n);
        ctx.stats.connect_error = Some(why.to_string());
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
        let Some(s) = self.sock.tcp_mut() else {
            return;
        };
        match s.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => return self.connect_failed(ctx, now, &e),
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
                    Err(e) => self.connect_failed(ctx, now, &e),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => self.connect_failed(ctx, now, &e),
        }
    }

    fn on_readable(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        let result = match self.sock {
            Sock::Udp(_) => {
                self.read_datagrams(ctx);
                Ok(())
            }
            _ => self.read_stream(ctx),
        };
        let now = match result {
            Ok(()) => ctx.clock.now(),
            Err(reason) => {
                let now = ctx.clock.now();
                return self.close(registry, ctx, now, reason);
            }
        };
        self.fill(ctx, now);
        // Written once a batch of connections has been read (see `Conn::flush_queued`), so
        // one wake-up of the target serves several of them. TLS may owe records of its own
        // (the handshake's).
        if (self.out_pos < self.out.len() || self.sock.tls_wants_write()) && !self.queued {
            self.queued = true;
            ctx.queued.push(token.0);
        }
    }

    /// Reads the stream until it would block; every complete answer goes to the session.
    fn read_stream(&mut self, ctx: &mut Ctx) -> Result<(), CloseReason> {
        loop {
            let mut scratch = std::mem::take(&mut ctx.scratch);
            let read = match &mut self.sock {
                Sock::Tcp(s) => s.read(&mut scratch),
                Sock::Tls(t) => t.read(&mut scratch),
                _ => Err(io::ErrorKind::NotConnected.into()),
            };
            let outcome = match read {
                Ok(0) => Err(CloseReason::Disconnect),
                Ok(n) => {
                    // The clock is read once per read: those answers' arrival time.
                    let now = ctx.clock.now();
                    match self.on_bytes(&scratch[..n], ctx, now) {
                        // A short read drained the socket: skip the read that would only say
                        // WouldBlock (mio's edge-triggered readiness fires again on new data).
                        Ok(()) => Ok(n == scratch.len()),
                        Err(_) => Err(CloseReason::Framing),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
                Err(_) => Err(CloseReason::Disconnect),
            };
            ctx.scratch = scratch;
            match outcome? {
                true => continue,
                false => return Ok(()),
            }
        }
    }

    /// Receives datagrams in batches until none are left; each goes to the session.
    fn read_datagrams(&mut self, ctx: &mut Ctx) {
        let Sock::Udp(s) = &self.sock else {
            return;
        };
        loop {
            let Some(inbox) = ctx.inbox.as_mut() else {
                return;
            };
            match inbox.recv(s) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock; or an ICMP error (port unreachable): the requests time out.
                Err(_) => return,
            }
            let now = ctx.clock.now();
            let at = ctx.clock.instant(now);
            // Answers the session owes a datagram peer are not sent: the target pushes nothing.
            let mut owed = Vec::new();
            let inbox = ctx
                .inbox
                .take()
                .expect("the inbox is back after each batch");
            for (_, datagram) in inbox.datagrams() {
                let ok = self
                    .session
                    .handle_datagram(at, datagram, &mut owed, &mut |e| {
                        on_event(e, ctx, now, false)
                    });
                if !ok {
                    count(ctx, now, |e, n| e.framing += n);
                }
            }
            ctx.inbox = Some(inbox);
        }
    }

    /// Writes output queued while reading; called for a batch of connections at a time.
    pub fn flush_queued(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        self.queued = false;
        if self.state == State::Open {
            self.flush(registry, token, ctx);
        }
    }

    /// Handles stream bytes read at `now`: every complete answer is checked and timed.
    fn on_bytes(&mut self, data: &[u8], ctx: &mut Ctx, now: u64) -> Result<(), FramingError> {
        let at = ctx.clock.instant(now);
        let mut feed = |session: &mut PeerSession<Due>, buf: &[u8], out: &mut Vec<u8>| {
            session.handle_input(at, buf, out, &mut |e| on_event(e, ctx, now, false))
        };
        if self.pending.is_empty() {
            let used = feed(&mut self.session, data, &mut self.out);
            if let Err(e) = used {
                count(ctx, now, |e, n| e.framing += n);
                return Err(e);
            }
            self.pending.extend_from_slice(&data[used.unwrap_or(0)..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(data);
            let used = feed(&mut self.session, &buf, &mut self.out);
            buf.drain(..*used.as_ref().unwrap_or(&0));
            self.pending = buf;
            if let Err(e) = used {
                count(ctx, now, |e, n| e.framing += n);
                return Err(e);
            }
        }
        if self.pending.is_empty() {
            // Give a large partial-frame buffer back rather than keep it for an idle peer.
            self.pending = Vec::new();
        }
        Ok(())
    }

    /// Sends every request that pacing allows at `now`, into the output buffer (TCP) or as
    /// datagrams (UDP).
    fn fill(&mut self, ctx: &mut Ctx, now: u64) {
        if self.session.paused_until().is_some() {
            return self.skip_paused(ctx, now);
        }
        let epoch_ms = ctx.clock.epoch_ms(now);
        let at = ctx.clock.instant(now);
        let (mut written, mut sent_by_kind) = (0, [0; RequestKind::ALL.len()]);
        let udp = matches!(self.sock, Sock::Udp(_));
        while !self.sending_done(ctx, now) {
            let outstanding = self.session.outstanding();
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
            let tag = Due {
                scheduled,
                sent: now,
                measured,
            };
            // The slot's requests go out in runs of one kind: the whole slot when the mix has
            // a single kind, one request at a time otherwise; reports in runs of one sample.
            // A slot holds at most --pipeline requests, which the command line bounds.
            let mut left = count as u32;
            while left > 0 {
                let (kind, n) = match self.mix.single_kind() {
                    Some(kind) => (kind, left),
                    None => (self.mix.next_kind(), 1),
                };
                let out = if udp {
                    ctx.outbox.buffer()
                } else {
                    &mut self.out
                };
                let start = out.len();
                let n: u32 = match command(kind) {
                    None => {
                        let seq = self.session.next_sequence();
                        let n = self.writer.run_length(seq, n);
                        let report = self.writer.report(seq, epoch_ms);
                        self.session
                            .send_reports(at, &report, n, tag, out)
                            .map(|_| n)
                    }
                    Some(request) => self.session.send(at, &request, tag, out).map(|_| 1),
                }
                .expect("the loadgen only builds messages whose values are in range");
                let written = out.len() - start;
                if udp {
                    // The run's frames have one length: one datagram each.
                    ctx.outbox.queue_each(written / n as usize, None);
                }
                if measured {
                    sent_by_kind[kind as usize] += u64::from(n);
                }
                left -= n;
            }
            written += count as u64;
        }
        if let (Sock::Udp(s), true) = (&self.sock, ctx.outbox.queued() > 0) {
            // A datagram the kernel refuses is lost like one the network drops: it is counted
            // when its timeout expires.
            let _ = ctx.outbox.send(s);
        }
        ctx.outstanding += written;
        ctx.interval.counts.sent += written;
        for (total, n) in ctx.stats.sent.iter_mut().zip(sent_by_kind) {
            *total += n;
        }
    }

    /// Gives up, unsent, every slot due by `now` while the target has the connection paused,
    /// as a paused agent skips its reports.
    fn skip_paused(&mut self, ctx: &mut Ctx, now: u64) {
        while let Some(due) = self.pacing.next_due() {
            if due > now || due >= ctx.send_end {
                return;
            }
            self.pacing.skip();
            ctx.interval.counts.skipped_while_paused += 1;
            if due >= ctx.measure_start {
                ctx.stats.from_target.skipped_while_paused += 1;
            }
        }
    }

    /// Writes pending output until done or WouldBlock; asks for WRITABLE only while some is left
    /// (in the output, or TLS records). The clock is read only when the connection breaks.
    fn flush(&mut self, registry: &Registry, token: Token, ctx: &mut Ctx) {
        if !matches!(self.sock, Sock::Tcp(_) | Sock::Tls(_)) {
            return;
        }
        while self.out_pos < self.out.len() {
            let out = &self.out[self.out_pos..];
            let written = match &mut self.sock {
                Sock::Tcp(s) => s.write(out),
                Sock::Tls(t) => t.write(out),
                Sock::Closed | Sock::Udp(_) => return,
            };
            match written {
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
        if let Sock::Tls(t) = &mut self.sock {
            if t.flush().is_err() {
                let now = ctx.clock.now();
                return self.close(registry, ctx, now, CloseReason::Disconnect);
            }
        }
        let want = self.out_pos < self.out.len() || self.sock.tls_wants_write();
        if want != self.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let s = self.sock.tcp_mut().expect("a stream connection");
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
        let at = ctx.clock.instant(now);
        let stuck = self
            .session
            .handle_timeout(at, &mut |e| on_event(e, ctx, now, false));
        if stuck {
            self.close(registry, ctx, now, CloseReason::Timeout);
        }
    }

    /// Gives up on every outstanding request as a timeout (the end of the drain period).
    pub fn abandon(&mut self, ctx: &mut Ctx, now: u64) {
        self.session.reset(&mut |e| on_event(e, ctx, now, true));
    }

    fn close(&mut self, registry: &Registry, ctx: &mut Ctx, now: u64, reason: CloseReason) {
        match &mut self.sock {
            Sock::Tcp(s) => drop(registry.deregister(s)),
            Sock::Tls(t) => drop(registry.deregister(t.socket_mut())),
            Sock::Udp(s) => drop(registry.deregister(s)),
            Sock::Closed => {}
        }
        self.sock = Sock::Closed;
        if self.state == State::Open {
            ctx.open -= 1;
        }
        self.session.reset(&mut |e| on_event(e, ctx, now, false));
        if reason == CloseReason::Disconnect {
            count(ctx, now, |e, n| e.disconnects += n);
        }
        self.session = new_session(ctx);
        self.pending = Vec::new();
        self.out = Vec::new();
        self.out_pos = 0;
        self.want_write = false;
        self.state = State::Waiting(now + RECONNECT_DELAY_NS);
    }
}

/// A fresh session for a connection of `ctx`'s run.
fn new_session(ctx: &Ctx) -> PeerSession<Due> {
    let transport = match ctx.scheme_is_udp {
        true => Transport::Datagram,
        false => Transport::Stream,
    };
    let mut session = PeerSession::new(ctx.codec, transport, Duration::from_nanos(ctx.timeout));
    if let Some(key) = &ctx.signer {
        session.sign_reports_with(key.clone());
    }
    session
}

/// A UDP socket bound to an ephemeral port of `source` (by default, any address of the
/// target's family) and connected to the target.
fn udp_socket(target: SocketAddr, source: Option<IpAddr>) -> io::Result<UdpSocket> {
    let any: IpAddr = if target.is_ipv4() {
        [0, 0, 0, 0].into()
    } else {
        [0u16; 8].into()
    };
    let s = UdpSocket::bind(SocketAddr::new(source.unwrap_or(any), 0))?;
    s.connect(target)?;
    Ok(s)
}

/// A non-blocking TCP connect to `target` begun from an ephemeral port of `source` (chosen
/// by the kernel when `None`).
fn tcp_connect(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(target);
    };
    let s = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(ip, 0).into())?;
    match s.connect(&target.into()) {
        Ok(()) => {}
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// Linux's "operation now in progress": a non-blocking connect under way.
const EINPROGRESS: i32 = 115;

/// Turns one event of a connection's session at `now` into the run's figures; `abandoned`
/// counts requests given up on as timeouts (the end of the drain) rather than as aborted.
fn on_event(event: PeerEvent<'_, Due>, ctx: &mut Ctx, now: u64, abandoned: bool) {
    match event {
        PeerEvent::Answered { sent, verdict, .. } => complete(sent, verdict, ctx, now),
        PeerEvent::TimedOut { sent } => give_up(sent, ctx, now, |e, n| e.timeouts += n),
        PeerEvent::Aborted { sent } if abandoned => give_up(sent, ctx, now, |e, n| e.timeouts += n),
        PeerEvent::Aborted { sent } => give_up(sent, ctx, now, |e, n| e.aborted += n),
        PeerEvent::Unsolicited { late: true } => count(ctx, now, |e, n| e.late += n),
        // The session has answered these (and obeys the pause: see `Conn::fill`).
        PeerEvent::Paused { .. } => from_target(ctx, now, |f| f.pauses += 1),
        PeerEvent::Resumed { .. } => from_target(ctx, now, |f| f.resumes += 1),
        PeerEvent::Pushed { .. } => from_target(ctx, now, |f| f.pushed += 1),
        PeerEvent::PauseEnded => {}
        // An unasked answer or an invalid message answers no request of the run (nor does a
        // node's result of a targeted command, which the loadgen never sends).
        PeerEvent::Unsolicited { late: false }
        | PeerEvent::Invalid(_)
        | PeerEvent::NodeResult { .. } => count(ctx, now, |e, n| e.unsolicited += n),
    }
}

/// Counts and times the answers to the requests `sent`, all found `verdict` by checking.
#[inline]
fn complete(sent: Sent<Due>, verdict: Verdict, ctx: &mut Ctx, now: u64) {
    let n = u64::from(sent.count);
    let req = sent.tag;
    ctx.outstanding -= n;
    ctx.interval.counts.answered += n;
    if verdict == Verdict::Ok {
        ctx.interval.counts.ok += n;
    } else {
        ctx.interval.counts.errors.record(verdict, n);
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

/// Ends the requests `sent` without an answer, counting them with `bump`.
fn give_up(sent: Sent<Due>, ctx: &mut Ctx, now: u64, bump: impl Fn(&mut ErrorCounts, u64)) {
    let n = u64::from(sent.count);
    ctx.outstanding -= n;
    counts(ctx, sent.tag.measured, n, bump);
    if sent.tag.measured {
        ctx.stats.last_done = now;
    }
}

/// Counts one error that belongs to no request, in the run's figures when it happens inside
/// the measurement window.
fn count(ctx: &mut Ctx, now: u64, bump: impl Fn(&mut ErrorCounts, u64)) {
    counts(ctx, now >= ctx.measure_start, 1, bump);
}

/// Counts `n` errors with `bump`: always in the current second's figures, and in the run's
/// when `measured`.
fn counts(ctx: &mut Ctx, measured: bool, n: u64, bump: impl Fn(&mut ErrorCounts, u64)) {
    bump(&mut ctx.interval.counts.errors, n);
    if measured {
        bump(&mut ctx.stats.errors, n);
    }
}

/// Counts something the target sent of its own accord, inside the measurement window.
fn from_target(ctx: &mut Ctx, now: u64, bump: impl FnOnce(&mut crate::stats::FromTarget)) {
    if now >= ctx.measure_start {
        bump(&mut ctx.stats.from_target);
    }
}
