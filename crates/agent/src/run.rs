//! The agent's IO loop: the link to the collector, the clock and the spool around a
//! [`Reporter`].

use crate::queue::Pending;
use crate::reporter::{Reporter, ReporterConfig, Totals};
use crate::sampler::{HostSample, Sampler};
use crate::spool::Spool;
use avp_proto::auth::Key;
use avpd_client::{ClientEvent, PeerLink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Longest the loop waits before checking the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Receives every sample as it is taken, with the NODE_ID (feeds the `--listen` plane).
pub type SampleFeed = Box<dyn FnMut(&str, HostSample)>;

/// The settings a configuration reload changes in a running agent.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Time between samples.
    pub interval: Duration,
    /// How long an answer may take before the link is given up.
    pub answer_timeout: Duration,
    /// While on another collector than the first, how often the first is tried.
    pub failback_after: Duration,
    /// The key reports are signed with; `None` sends them unsigned.
    pub key: Option<Key>,
}

impl LiveSettings {
    /// Applies the settings to `reporter` and `link` at `now`.
    fn apply(self, now: Instant, reporter: &mut Reporter, link: &mut PeerLink) {
        reporter.set_interval(now, self.interval);
        link.set_answer_timeout(self.answer_timeout);
        link.link_mut().set_failback_every(self.failback_after);
        match self.key {
            Some(key) => link.sign_reports_with(key),
            None => link.stop_signing(),
        }
    }
}

/// An open spool and the reports it kept from an earlier run.
pub struct Spooled {
    /// The spool, written as reports are taken and acknowledged.
    pub spool: Spool,
    /// Reports an earlier run took and never saw acknowledged, oldest first.
    pub pending: Vec<Pending>,
}

/// Runs `config` over `link` until `stop` is set, or until `count` reports are sampled and
/// acknowledged; returns the totals. With a spool, its reports are sent first and every report
/// is on disk before it is sent. Settings that arrive on `reloads` apply within
/// 200 ms.
pub fn run(
    config: ReporterConfig,
    mut link: PeerLink,
    sampler: &mut dyn Sampler,
    mut on_sample: SampleFeed,
    spooled: Option<Spooled>,
    reloads: &Receiver<LiveSettings>,
    stop: &AtomicBool,
) -> Totals {
    let mut reporter = Reporter::new(config, Instant::now());
    let mut spool = spooled.map(|s| {
        reporter.restore(s.pending);
        SpoolWriter {
            spool: s.spool,
            errors: 0,
        }
    });
    // Connect before the first sample, so it is sent rather than buffered.
    link.poll(Instant::now(), &mut |e| {
        reporter.on_event(Instant::now(), &e)
    });
    while !stop.load(Ordering::Relaxed) && !reporter.finished() {
        let now = Instant::now();
        while let Ok(settings) = reloads.try_recv() {
            settings.apply(now, &mut reporter, &mut link);
        }
        let paused_until = link.session().paused_until();
        let (sample, outgoing) = reporter.due(now, paused_until, link.is_connected(), sampler);
        if let Some(sample) = sample {
            on_sample(reporter.node_id(), sample);
        }
        if let Some(spool) = spool.as_mut() {
            spool.write(&mut reporter);
        }
        for o in &outgoing {
            let request = reporter.request(&o.pending);
            if link
                .send_with_sequence(now, o.pending.seq, &request, ())
                .is_err()
            {
                // The link is down: what was not written waits for the next connection.
                for rest in outgoing
                    .iter()
                    .skip_while(|r| r.pending.seq != o.pending.seq)
                {
                    reporter.not_sent(&rest.pending);
                }
                break;
            }
        }
        let mut deadline = now + STOP_CHECK;
        if let Some(t) = reporter.wake_at(link.session().paused_until()) {
            deadline = deadline.min(t);
        }
        let mut on_event = |e: ClientEvent<'_, ()>| reporter.on_event(Instant::now(), &e);
        link.poll(deadline, &mut on_event);
    }
    if let Some(spool) = spool.as_mut() {
        spool.write(&mut reporter);
    }
    reporter.totals()
}

/// The spool and its failures.
struct SpoolWriter {
    spool: Spool,
    errors: u64,
}

impl SpoolWriter {
    /// Writes the reporter's journal: the new reports synced, then those that left the buffer.
    /// A failure is logged (the first and every hundredth) and the agent goes on: its reports
    /// are still in memory.
    fn write(&mut self, reporter: &mut Reporter) {
        let journal = reporter.take_journal();
        if journal.sampled.is_empty() && journal.removed.is_empty() {
            return;
        }
        let result = self.spool.sampled(&journal.sampled).and_then(|()| {
            self.spool
                .removed(&journal.removed, || reporter.spool_state())
        });
        if let Err(e) = result {
            self.errors += 1;
            if self.errors == 1 || self.errors.is_multiple_of(100) {
                tracing::error!("cannot write the spool ({} failures): {e}", self.errors);
            }
        }
    }
}
