//! The agent's logic, free of IO: when to sample, what to send, and what the answers mean.
//!
//! [`Reporter`] is driven by its caller: [`Reporter::due`] takes the sample due at a time and
//! returns the reports to send then (the new one, and any waiting after a reconnect or a
//! refusal), [`Reporter::on_event`] takes what the link and its session saw, and
//! [`Reporter::wake_at`] says when to call again. PAUSE and RESUME are the session's state
//! ([`avp_proto::PeerSession::paused_until`]): while a pause is in force nothing is sampled.
//! Tests drive it on a fake clock.
//!
//! Every report carries the agent's INSTANCE and a SEQUENCE that only grows within it, so the
//! collector stores a resent report once. With a spool, [`Reporter::take_journal`] says what
//! to write to it: the reports taken (to sync before they are sent) and those that left the
//! buffer.

use crate::queue::{Pending, ResendQueue};
use crate::sampler::{HostSample, Sampler};
use avp_proto::peer::{PeerEvent, Request, Verdict};
use avp_proto::result_code;
use avp_proto::Report;
use avpd_client::ClientEvent;
use std::borrow::Cow;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// What the agent does, apart from where it sends.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// NODE_ID of every report.
    pub node_id: String,
    /// Time between samples.
    pub interval: Duration,
    /// Capacity of the resend queue.
    pub buffer: usize,
    /// Stop after this many samples, once all are acknowledged.
    pub count: Option<u64>,
    /// The agent's instance (random at first start, kept in the spool).
    pub instance: u64,
    /// The SEQUENCE of the first report taken (1 on a fresh instance).
    pub first_seq: u32,
    /// Keep a journal of the buffer's changes for a spool.
    pub journal: bool,
}

/// How long reports the collector refused (503) wait before they are sent again.
pub const RETRY_REFUSED_AFTER: Duration = Duration::from_secs(1);

/// What changed in the buffer since the last [`Reporter::take_journal`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Journal {
    /// Reports taken, in order.
    pub sampled: Vec<Pending>,
    /// (INSTANCE, SEQUENCE) of the reports that left the buffer: acknowledged or dropped.
    pub removed: Vec<(u64, u32)>,
}

/// Totals over the agent's life, logged when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Samples taken (each one report).
    pub sampled: u64,
    /// Reports acknowledged by the collector (each counted once).
    pub acked: u64,
    /// Reports sent again after a reconnect or a refusal.
    pub resent: u64,
    /// Reports the collector refused for now (503), to be sent again.
    pub refused: u64,
    /// Reports dropped because the resend queue was full.
    pub dropped: u64,
    /// Reports still unacknowledged.
    pub unacked: u64,
    /// Acknowledgements or responses that matched nothing outstanding.
    pub unsolicited: u64,
    /// Reports the collector refused as unauthorized (401): dropped, since sending them again
    /// would not change the answer (a replay means the collector has the report).
    pub unauthorized: u64,
}

/// A report to send now, with what the agent does once it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// The report.
    pub pending: Pending,
    /// True when it was sent before (a resend).
    pub resend: bool,
}

/// Sampling, sending and acknowledgement state of the agent. See the module documentation.
#[derive(Debug)]
pub struct Reporter {
    config: ReporterConfig,
    queue: ResendQueue,
    totals: Totals,
    next_sample: Instant,
    /// True while a pause was in force at the last [`Reporter::due`] (its start is logged once).
    was_paused: bool,
    instance: u64,
    next_seq: u32,
    /// Set when the collector refused a report: nothing is sent before then.
    resend_after: Option<Instant>,
    journal: Option<Journal>,
}

impl Reporter {
    /// A reporter whose first sample is due at `now`.
    pub fn new(config: ReporterConfig, now: Instant) -> Self {
        Reporter {
            queue: ResendQueue::new(config.buffer),
            instance: config.instance,
            next_seq: config.first_seq.max(1),
            journal: config.journal.then(Journal::default),
            config,
            totals: Totals::default(),
            next_sample: now,
            was_paused: false,
            resend_after: None,
        }
    }

    /// Puts back the reports a spool kept from an earlier run, oldest first; they are sent
    /// once connected (beyond the buffer's capacity the oldest are dropped).
    pub fn restore(&mut self, pending: Vec<Pending>) {
        for p in pending {
            self.push(p);
        }
    }

    /// The changes to write to the spool since the last call (empty without a journal).
    pub fn take_journal(&mut self) -> Journal {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The instance and SEQUENCE of the next report, and the reports in the buffer: what a
    /// rewritten spool holds.
    pub fn spool_state(&self) -> ((u64, u32), Vec<Pending>) {
        ((self.instance, self.next_seq), self.queue.all())
    }

    /// Samples every `interval` from now on: the next sample is due one new interval from
    /// `now` at the latest.
    pub fn set_interval(&mut self, now: Instant, interval: Duration) {
        self.config.interval = interval;
        self.next_sample = self.next_sample.min(now + interval);
    }

    /// The NODE_ID the reports carry.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// The request that carries `p`.
    pub fn request(&self, p: &Pending) -> Request<'_> {
        Request::Report(Report {
            fleet: None,
            cpu_percent: p.sample.cpu_percent,
            mem_percent: p.sample.mem_percent,
            timestamp_ms: Some(p.sample.timestamp_ms),
            node_id: Some(Cow::Borrowed(&self.config.node_id)),
            instance: Some(p.instance),
        })
    }

    /// Takes the sample due at `now`, if one is and no pause (until `paused_until`) is in
    /// force, and returns the reports to send now when `connected`: those waiting (oldest
    /// first), the new one last. Disconnected, the new sample only waits in the queue.
    pub fn due(
        &mut self,
        now: Instant,
        paused_until: Option<Instant>,
        connected: bool,
        sampler: &mut dyn Sampler,
    ) -> (Option<HostSample>, Vec<Outgoing>) {
        let paused = paused_until.is_some_and(|t| now < t);
        if paused && !self.was_paused {
            info!("paused: no sampling until the pause ends");
        }
        self.was_paused = paused;
        let mut taken = None;
        if !paused && self.below_count() && now >= self.next_sample {
            let sample = sampler.sample();
            self.totals.sampled += 1;
            let seq = self.take_seq();
            debug!(
                "report seq={seq} cpu={} mem={} ts={}",
                sample.cpu_percent, sample.mem_percent, sample.timestamp_ms
            );
            let pending = Pending {
                instance: self.instance,
                seq,
                sample,
            };
            if let Some(j) = self.journal.as_mut() {
                j.sampled.push(pending);
            }
            self.push(pending);
            self.next_sample += self.config.interval;
            if self.next_sample < now {
                // Fell behind (suspended, or a slow reconnect): do not burst to catch up.
                self.next_sample = now + self.config.interval;
            }
            taken = Some((seq, sample));
        }
        let refused_wait = self.resend_after.is_some_and(|t| now < t);
        if !connected || refused_wait {
            return (taken.map(|t| t.1), Vec::new());
        }
        self.resend_after = None;
        let latest = taken.map(|t| t.0);
        let out = self
            .queue
            .take_waiting()
            .into_iter()
            .map(|pending| Outgoing {
                resend: Some(pending.seq) != latest,
                pending,
            })
            .collect::<Vec<_>>();
        self.totals.resent += out.iter().filter(|o| o.resend).count() as u64;
        (taken.map(|t| t.1), out)
    }

    /// The SEQUENCE of the next report: sent in 4 bytes, never 0, and growing within an
    /// instance; past the last one the agent goes on as the next instance.
    fn take_seq(&mut self) -> u32 {
        if self.next_seq == u32::MAX {
            self.instance = self.instance.wrapping_add(1);
            self.next_seq = 1;
            info!(
                "SEQUENCE wrapped: reporting as instance {:016x}",
                self.instance
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Adds `p` to the buffer, dropping (and logging) the oldest report when it is full.
    fn push(&mut self, p: Pending) {
        let Some(old) = self.queue.push(p) else {
            return;
        };
        if let Some(j) = self.journal.as_mut() {
            j.removed.push((old.instance, old.seq));
        }
        let dropped = self.queue.dropped();
        // The first drop and every hundredth: a long outage must not flood the log.
        if dropped == 1 || dropped.is_multiple_of(100) {
            warn!(
                "buffer full: dropped unacknowledged report seq={} ({dropped} dropped so far)",
                old.seq
            );
        } else {
            debug!("buffer full: dropped unacknowledged report seq={}", old.seq);
        }
    }

    /// Puts `p` back among the waiting reports: it could not be written.
    pub fn not_sent(&mut self, p: &Pending) {
        self.queue.mark_waiting(p.seq);
    }

    /// When [`Reporter::due`] has something to do next: the next sample, or the end of the
    /// pause in force (until `paused_until`); `None` when the count is reached.
    pub fn wake_at(&self, paused_until: Option<Instant>) -> Option<Instant> {
        let resend = self.resend_after.filter(|_| !self.queue.is_empty());
        if !self.below_count() {
            return resend;
        }
        let sample = match paused_until {
            Some(t) => t.max(self.next_sample),
            None => self.next_sample,
        };
        Some(resend.map_or(sample, |r| r.min(sample)))
    }

    /// True once `count` reports are sampled and none is left to acknowledge.
    pub fn finished(&self) -> bool {
        self.config
            .count
            .is_some_and(|c| self.totals.sampled >= c && self.queue.is_empty())
    }

    /// The totals so far.
    pub fn totals(&self) -> Totals {
        Totals {
            dropped: self.queue.dropped(),
            unacked: self.queue.len() as u64,
            ..self.totals
        }
    }

    /// What the agent makes of something its link saw at `now`.
    pub fn on_event(&mut self, now: Instant, event: &ClientEvent<'_, ()>) {
        match event {
            ClientEvent::Up => {
                info!(
                    "connected; resending {} unacknowledged reports",
                    self.queue.len()
                );
                self.queue.all_waiting();
            }
            ClientEvent::Down { reason, retry_in } => {
                warn!(
                    "link down: {reason}; reconnecting in {retry_in:.1?} ({} unacknowledged)",
                    self.queue.len()
                );
                self.queue.all_waiting();
            }
            ClientEvent::Peer(e) => self.on_peer_event(now, e),
        }
    }

    fn on_peer_event(&mut self, now: Instant, event: &PeerEvent<'_, ()>) {
        match event {
            PeerEvent::Answered {
                sent,
                verdict,
                response,
            } => {
                for i in 0..sent.count {
                    let seq = sent.first_seq.wrapping_add(i);
                    let info = || {
                        response
                            .as_ref()
                            .and_then(|r| r.info.as_deref())
                            .unwrap_or("")
                    };
                    let unauthorized = response
                        .as_ref()
                        .is_some_and(|r| r.code == result_code::UNAUTHORIZED);
                    match verdict {
                        Verdict::Ok if self.forget(seq) => {
                            self.totals.acked += 1;
                            debug!("acked seq={seq}");
                        }
                        Verdict::Ok => {
                            self.totals.unsolicited += 1;
                            debug!("acknowledgement {seq} matches no outstanding report");
                        }
                        Verdict::Status4xx if unauthorized => {
                            self.totals.unauthorized += 1;
                            self.forget(seq);
                            warn!("report seq={seq} refused, dropped: {}", info());
                        }
                        Verdict::Status5xx => {
                            self.totals.refused += 1;
                            self.queue.mark_waiting(seq);
                            self.resend_after = Some(now + RETRY_REFUSED_AFTER);
                            debug!("report seq={seq} refused for now: {}", info());
                        }
                        other => warn!("report seq={seq} answered {other:?}"),
                    }
                }
            }
            PeerEvent::Paused { duration_secs, .. } => {
                info!("paused by the collector for {duration_secs} s");
            }
            PeerEvent::Resumed { was_paused: true } | PeerEvent::PauseEnded => {
                info!("pause over, sampling again");
                self.next_sample = now;
            }
            PeerEvent::Resumed { was_paused: false } => debug!("resumed while not paused"),
            // A node's result of a targeted command answers nothing an agent sends.
            PeerEvent::Unsolicited { .. } | PeerEvent::NodeResult { .. } => {
                self.totals.unsolicited += 1;
                debug!("an answer that matches no outstanding report");
            }
            PeerEvent::Invalid(e) => warn!("collector sent an invalid message: {e}"),
            PeerEvent::Pushed { .. } => debug!("the collector pushed a report; acknowledged"),
            // The reports stay in the queue; they wait for the next connection.
            PeerEvent::TimedOut { .. } | PeerEvent::Aborted { .. } => {}
        }
    }

    /// Takes report `seq` off the queue (and the spool); false when it was not on it.
    fn forget(&mut self, seq: u32) -> bool {
        let Some(p) = self.queue.ack(seq) else {
            return false;
        };
        if let Some(j) = self.journal.as_mut() {
            j.removed.push((p.instance, p.seq));
        }
        true
    }

    fn below_count(&self) -> bool {
        self.config.count.is_none_or(|c| self.totals.sampled < c)
    }
}

#[cfg(test)]
mod tests;
