//! One load thread: a mio Poll over its share of the connections, timers, and the per-second
//! progress snapshot it hands to the runner.
//!
//! The loop follows the usual shape: poll (retried on EINTR), dispatch each event to its
//! connection, then run the timer pass (connects, timeouts, open-loop sends) when the earliest
//! timer is due. While sending, a timer pass visits only the connections that are due
//! ([`Timers`]); the first pass and those after sending has ended visit every connection, to
//! tell when all are done. The worker stops when sending is over and every outstanding
//! request has been answered, or at the end of the drain period (`--timeout` after sending
//! stopped), when what is still outstanding counts as timed out.

use crate::busy::BusyMeter;
use crate::clock::{Clock, NANOS_PER_SEC};
use crate::conn::Conn;
use crate::run::Stop;
use crate::stats::{new_histogram, Interval, Stats};
use crate::timers::Timers;
use avp_proto::Codec;
use hdrhistogram::Histogram;
use mio::{Events, Poll, Token};
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::Arc;

/// Longest the loop sleeps without looking at its timers.
const MAX_SLEEP_NS: u64 = 10_000_000;
/// Timers closer than this are waited for without blocking (epoll counts milliseconds).
const SPIN_BELOW_NS: u64 = 1_000_000;
/// Connections whose output waits for the others' reads before it is written. A batch lets
/// one wake-up of the target serve several connections; a small one keeps the target busy
/// while the rest of a poll round is read: writing only after a whole round of 1,000
/// connections had been read left the target idle, to be woken again, every round.
const WRITE_BATCH: usize = 32;
/// Size of the shared read buffer of each worker.
pub const SCRATCH_LEN: usize = 64 * 1024;

/// The state every connection of a worker shares: configuration, the clock, counters.
#[derive(Debug)]
pub struct Ctx {
    /// The run's clock.
    pub clock: Clock,
    /// Wire form of requests and answers.
    pub codec: Codec,
    /// The key reports are signed with, if any.
    pub signer: Option<avp_proto::auth::Key>,
    /// True for UDP, false for the TCP schemes.
    pub scheme_is_udp: bool,
    /// Resolved target address.
    pub target: SocketAddr,
    /// For a `tls://` target: the client configuration and the name its certificate must
    /// carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Most requests outstanding per connection.
    pub depth: usize,
    /// Request timeout, clock nanoseconds.
    pub timeout: u64,
    /// Requests scheduled from this time on are measured (the end of the warmup).
    pub measure_start: u64,
    /// No request scheduled at or after this time is sent.
    pub send_end: u64,
    /// Measured requests this worker may still send (`--requests`), or unlimited.
    pub remaining: Option<u64>,
    /// Requests outstanding over all connections.
    pub outstanding: u64,
    /// Connections open.
    pub open: u64,
    /// The measurement.
    pub stats: Stats,
    /// True in open loop, false in closed loop.
    pub open_loop: bool,
    /// Set when the run is to stop early: sending ends at the next timer pass.
    pub stop: Stop,
    /// The current second's progress figures (its latency is filled in at the tick).
    pub interval: Interval,
    /// Corrected latencies of warmup answers (measured ones are in `stats`), so that the
    /// progress line can show the last second's percentiles without a record per answer.
    pub warmup_latency: Histogram<u64>,
    /// Connections with output queued and not yet written, by token (see `WRITE_BATCH`).
    pub queued: Vec<usize>,
    /// Shared read buffer.
    pub scratch: Vec<u8>,
    /// Receive buffers of UDP batches (`None` only while a batch is being handled).
    pub inbox: Option<avp_udp::Inbox>,
    /// Datagrams queued to send in one batch.
    pub outbox: avp_udp::Outbox,
}

impl Ctx {
    /// True once no more requests will be sent.
    #[inline]
    pub fn sending_over(&self, now: u64) -> bool {
        now >= self.send_end || self.remaining == Some(0)
    }
}

/// What one worker is asked to do.
#[derive(Debug)]
pub struct WorkerPlan {
    /// Shared settings; `stats` and `interval` start empty.
    pub ctx: Ctx,
    /// Its connections.
    pub conns: Vec<Conn>,
}

/// Runs one worker to completion, sending a progress [`Interval`] every second and a last one
/// when it ends, and returns its measurement.
pub fn run_worker(plan: WorkerPlan, progress: Sender<Interval>) -> io::Result<Stats> {
    let WorkerPlan { mut ctx, mut conns } = plan;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut next_tick = NANOS_PER_SEC;
    // Every latency recorded up to the previous tick, to take the last second's as a difference.
    let mut seen = new_histogram();
    let mut next_service = 0;
    let mut timers = Timers::new(conns.len());
    let mut first_pass = true;
    let mut drain_deadline: Option<u64> = None;
    let mut busy = BusyMeter::default();
    // Set when the last iteration was an idle spin (no timer work, a poll that did not block
    // and found nothing): the clock time it started.
    let mut idle_spin_from = None;
    loop {
        let now = ctx.clock.now();
        if let Some(t) = idle_spin_from.take() {
            busy.idle(now.saturating_sub(t));
        }
        busy.observe(now, ctx.measure_start, ctx.sending_over(now));
        let mut timer_work = false;
        if now >= next_tick {
            timer_work = true;
            let _ = progress.send(close_interval(&mut ctx, &mut seen, next_tick, false));
            next_tick += NANOS_PER_SEC;
        }
        if now >= next_service {
            timer_work = true;
            if now < ctx.send_end && ctx.stop.is_stopped() {
                ctx.send_end = now;
            }
            let mut all_done = false;
            if first_pass || ctx.sending_over(now) {
                first_pass = false;
                all_done = true;
                // Every connection is visited: take the due entries out, so that the next
                // wake-up is the earliest timer still to come.
                while timers.pop_due(now).is_some() {}
                for (i, c) in conns.iter_mut().enumerate() {
                    c.service(poll.registry(), Token(i), &mut ctx, now);
                    timers.arm(i, c.next_event(&ctx));
                    all_done &= c.sending_done(&ctx, now);
                }
            } else {
                while let Some(i) = timers.pop_due(now) {
                    let c = &mut conns[i];
                    c.service(poll.registry(), Token(i), &mut ctx, now);
                    timers.arm(i, c.next_event(&ctx));
                }
            }
            next_service = timers.next().unwrap_or(u64::MAX).min(now + MAX_SLEEP_NS);
            if all_done {
                let deadline = *drain_deadline.get_or_insert(now.saturating_add(ctx.timeout));
                if ctx.outstanding == 0 || now >= deadline {
                    for c in &mut conns {
                        c.abandon(&mut ctx, now);
                    }
                    break;
                }
            }
        }
        let sleep = next_service.min(next_tick).saturating_sub(now);
        // epoll's timeout has millisecond resolution (mio rounds up): a timer due sooner is
        // waited for by polling without blocking, so open-loop sends leave on time.
        let sleep = if sleep < SPIN_BELOW_NS { 0 } else { sleep };
        let timeout = std::time::Duration::from_nanos(sleep.min(MAX_SLEEP_NS));
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if sleep == 0 && !timer_work && events.is_empty() {
            idle_spin_from = Some(now);
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if let Some(c) = conns.get_mut(i) {
                c.on_event(poll.registry(), ev.token(), ev, &mut ctx);
                // An answer may have lifted the pipeline cap: its next slot is a timer again.
                timers.arm(i, c.next_event(&ctx));
            }
            if ctx.queued.len() >= WRITE_BATCH {
                write_queued(&mut conns, &poll, &mut timers, &mut ctx);
            }
        }
        write_queued(&mut conns, &poll, &mut timers, &mut ctx);
        next_service = next_service.min(timers.next().unwrap_or(u64::MAX));
        if ctx.outstanding == 0 && drain_deadline.is_some() {
            next_service = 0;
        }
    }
    let end = ctx.clock.now();
    // The runner may have stopped listening (it only needs the final stats).
    let _ = progress.send(close_interval(&mut ctx, &mut seen, end, true));
    if !ctx.open_loop {
        ctx.stats.finish_closed_loop();
    }
    ctx.stats.send_end = ctx.send_end.min(end);
    ctx.stats.busiest_thread = busy.close(end);
    Ok(ctx.stats)
}

/// Writes the output of the connections queued since the last call.
fn write_queued(conns: &mut [Conn], poll: &Poll, timers: &mut Timers, ctx: &mut Ctx) {
    let mut queued = std::mem::take(&mut ctx.queued);
    for i in queued.drain(..) {
        let c = &mut conns[i];
        c.flush_queued(poll.registry(), Token(i), ctx);
        // A failed write closes the connection, which then has a reconnect timer.
        timers.arm(i, c.next_event(ctx));
    }
    ctx.queued = queued;
}

/// Ends the current interval at clock time `end` and starts the next; `seen` holds every
/// latency recorded up to the previous interval's end, so that this one's are a difference.
fn close_interval(ctx: &mut Ctx, seen: &mut Histogram<u64>, end: u64, last: bool) -> Interval {
    let tick = ctx.interval.tick;
    let mut done = std::mem::replace(&mut ctx.interval, Interval::new(tick + 1));
    done.end = end;
    done.last = last;
    done.counts.connections = ctx.open;
    ctx.stats.flush();
    let mut total = ctx.stats.corrected.clone();
    total
        .add(&ctx.warmup_latency)
        .expect("same histogram bounds");
    done.latency = total.clone();
    done.latency.subtract(&*seen).expect("counts only grow");
    *seen = total;
    done
}
