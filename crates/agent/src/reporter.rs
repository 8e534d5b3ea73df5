//! The agent's loop: sample on schedule, send, match acknowledgements, obey PAUSE and RESUME,
//! and resend what is unacknowledged after every reconnect.

use super::queue::{Pending, ResendQueue};
use crate::sampler::{HostSample, HostSampler};
use avp_proto::{result_code, Body, Message, Report};
use avpd_client::{Link, LinkEvent};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Longest the loop waits before checking the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Receives every sample as it is taken, with the NODE_ID (feeds the `--listen` plane).
pub type SampleFeed = Box<dyn FnMut(&str, HostSample)>;

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
}

/// Totals over the agent's life, logged when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Samples taken (each one report).
    pub sampled: u64,
    /// Reports acknowledged by the collector (each counted once).
    pub acked: u64,
    /// Reports sent again after a reconnect.
    pub resent: u64,
    /// Reports dropped because the resend queue was full.
    pub dropped: u64,
    /// Reports still unacknowledged.
    pub unacked: u64,
    /// Acknowledgements or responses that matched nothing outstanding.
    pub unsolicited: u64,
}

/// Sampling, sending and acknowledgement state of the agent.
pub struct Reporter {
    config: ReporterConfig,
    link: Link,
    sampler: HostSampler,
    queue: ResendQueue,
    totals: Totals,
    next_sample: Instant,
    paused_until: Option<Instant>,
    on_sample: SampleFeed,
}

impl Reporter {
    /// A reporter sending over `link`; `on_sample` sees every sample as it is taken.
    pub fn new(config: ReporterConfig, link: Link, on_sample: SampleFeed) -> Self {
        Reporter {
            queue: ResendQueue::new(config.buffer),
            config,
            link,
            sampler: HostSampler::new(),
            totals: Totals::default(),
            next_sample: Instant::now(),
            paused_until: None,
            on_sample,
        }
    }

    /// Runs until `stop` is set, or until `count` reports are sampled and acknowledged.
    pub fn run(mut self, stop: &AtomicBool) -> Totals {
        // Connect before the first sample, so it is sent rather than buffered.
        let first = self.link.poll(Instant::now());
        self.on_event(first);
        while !stop.load(Ordering::Relaxed) && !self.finished() {
            let now = Instant::now();
            if self.paused_until.is_some_and(|t| now >= t) {
                info!("pause over, sampling again");
                self.paused_until = None;
                self.next_sample = now;
            }
            if self.sampling() && now >= self.next_sample {
                self.take_sample(now);
            }
            let mut deadline = now + STOP_CHECK;
            if self.sampling() {
                deadline = deadline.min(self.next_sample);
            }
            if let Some(t) = self.paused_until {
                deadline = deadline.min(t);
            }
            let event = self.link.poll(deadline);
            self.on_event(event);
        }
        self.totals.dropped = self.queue.dropped();
        self.totals.unacked = self.queue.len() as u64;
        self.totals
    }

    /// True while samples are due: not paused and `count` not reached.
    fn sampling(&self) -> bool {
        let below_count = match self.config.count {
            Some(c) => self.totals.sampled < c,
            None => true,
        };
        self.paused_until.is_none() && below_count
    }

    /// True once `count` reports are sampled and none is left to acknowledge.
    fn finished(&self) -> bool {
        self.config
            .count
            .is_some_and(|c| self.totals.sampled >= c && self.queue.is_empty())
    }

    fn take_sample(&mut self, now: Instant) {
        let sample = self.sampler.sample();
        self.totals.sampled += 1;
        // SEQUENCE is sent in 4 bytes: stay within u32, never 0.
        let seq = (self.totals.sampled - 1) % u64::from(u32::MAX) + 1;
        debug!(
            "report seq={seq} cpu={} mem={} ts={}",
            sample.cpu_percent, sample.mem_percent, sample.timestamp_ms
        );
        (self.on_sample)(&self.config.node_id, sample);
        let pending = Pending { seq, sample };
        if let Some(old) = self.queue.push(pending) {
            let dropped = self.queue.dropped();
            // The first drop and every hundredth: a long outage must not flood the log.
            if dropped == 1 || dropped % 100 == 0 {
                warn!(
                    "buffer full: dropped unacknowledged report seq={} ({dropped} dropped so far)",
                    old.seq
                );
            } else {
                debug!("buffer full: dropped unacknowledged report seq={}", old.seq);
            }
        }
        if self.link.is_connected() {
            self.send_report(pending);
        }
        self.next_sample += self.config.interval;
        if self.next_sample < now {
            // Fell behind (suspended, or a slow reconnect): do not burst to catch up.
            self.next_sample = now + self.config.interval;
        }
    }

    fn send_report(&mut self, p: Pending) -> bool {
        let msg = Message {
            sequence: Some(p.seq),
            body: Body::StatReport(Report {
                cpu_percent: p.sample.cpu_percent,
                mem_percent: p.sample.mem_percent,
                timestamp_ms: Some(p.sample.timestamp_ms),
                node_id: Some(Cow::Borrowed(&self.config.node_id)),
            }),
        };
        self.link.send(&msg).is_ok()
    }

    fn on_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Idle => {}
            LinkEvent::Up => {
                info!(
                    "connected to {}; resending {} unacknowledged reports",
                    self.link.endpoint(),
                    self.queue.len()
                );
                let backlog: Vec<Pending> = self.queue.iter().copied().collect();
                for p in backlog {
                    if !self.send_report(p) {
                        break;
                    }
                    self.totals.resent += 1;
                }
            }
            LinkEvent::Down { reason, retry_in } => warn!(
                "link to {} down: {reason}; reconnecting in {retry_in:.1?} ({} unacknowledged)",
                self.link.endpoint(),
                self.queue.len()
            ),
            LinkEvent::Invalid(e) => warn!("collector sent an invalid message: {e}"),
            LinkEvent::Message(msg) => self.on_message(msg),
        }
    }

    fn on_message(&mut self, msg: Message<'static>) {
        let seq = msg.sequence;
        match msg.body {
            Body::StatReportAck => match seq {
                Some(s) if self.queue.ack(s) => {
                    self.totals.acked += 1;
                    debug!("acked seq={s}");
                }
                _ => {
                    self.totals.unsolicited += 1;
                    debug!("acknowledgement {seq:?} matches no outstanding report");
                }
            },
            Body::Pause { duration_secs } => {
                info!("paused by the collector for {duration_secs} s");
                self.paused_until = Some(Instant::now() + Duration::from_secs(duration_secs));
                self.answer(seq, format!("agent paused for {duration_secs} s"));
            }
            Body::Resume => {
                info!("resumed by the collector");
                if self.paused_until.take().is_some() {
                    self.next_sample = Instant::now();
                }
                self.answer(seq, "agent resumed".to_string());
            }
            Body::StatReport(_) => {
                // The protocol answers every report, whoever sends it.
                let _ = self.link.send(&Message::ack(seq));
            }
            Body::CommandResponse { code, info } => {
                self.totals.unsolicited += 1;
                debug!("unsolicited response {code}: {}", info.unwrap_or_default());
            }
        }
    }

    fn answer(&mut self, seq: Option<u64>, info: String) {
        // A failed write takes the link down; the next poll reports it.
        let _ = self
            .link
            .send(&Message::command_response(seq, result_code::OK, info));
    }
}
