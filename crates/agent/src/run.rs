//! The agent's IO loop: the link to the collector and the clock around a [`Reporter`].

use crate::reporter::{Reporter, ReporterConfig, Totals};
use crate::sampler::{HostSample, Sampler};
use avpd_client::{ClientEvent, PeerLink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest the loop waits before checking the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Receives every sample as it is taken, with the NODE_ID (feeds the `--listen` plane).
pub type SampleFeed = Box<dyn FnMut(&str, HostSample)>;

/// Runs `config` over `link` until `stop` is set, or until `count` reports are sampled and
/// acknowledged; returns the totals.
pub fn run(
    config: ReporterConfig,
    mut link: PeerLink,
    sampler: &mut dyn Sampler,
    mut on_sample: SampleFeed,
    stop: &AtomicBool,
) -> Totals {
    let mut reporter = Reporter::new(config, Instant::now());
    // Connect before the first sample, so it is sent rather than buffered.
    link.poll(Instant::now(), &mut |e| {
        reporter.on_event(Instant::now(), &e)
    });
    while !stop.load(Ordering::Relaxed) && !reporter.finished() {
        let now = Instant::now();
        let paused_until = link.session().paused_until();
        let (sample, outgoing) = reporter.due(now, paused_until, link.is_connected(), sampler);
        if let Some(sample) = sample {
            on_sample(reporter.node_id(), sample);
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
    reporter.totals()
}
