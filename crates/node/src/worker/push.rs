//! The management plane's part of a worker: the fleet view, merged from the data-plane
//! workers' batches, pushed to every terminal each report interval.

use super::Worker;
use crate::fleet::{FleetView, NodeReport};
use crate::observe::FleetTap;
use avp_proto::Report;
use crossbeam_channel::Receiver;
use std::time::{Duration, Instant};

/// What the management plane needs to push: where the view's updates come from and how often
/// to push.
pub struct Pusher {
    /// Batches of reports from the data-plane workers.
    pub updates: Receiver<Vec<NodeReport>>,
    /// Time between pushes.
    pub interval: Duration,
    /// Where the view's figures go after each merge, when an exporter wants them.
    pub tap: Option<FleetTap>,
}

/// The fleet view and the push schedule.
pub(super) struct PushPlane {
    pusher: Pusher,
    view: FleetView,
    next_push: Instant,
}

impl PushPlane {
    pub(super) fn new(pusher: Pusher, max_nodes: usize) -> PushPlane {
        PushPlane {
            pusher,
            view: FleetView::new(max_nodes),
            next_push: Instant::now(),
        }
    }

    /// When the next push is due.
    pub(super) fn next_push(&self) -> Instant {
        self.next_push
    }

    /// True when a push is due at `now`.
    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.next_push
    }

    /// Pushes every `interval` from now on (at once if the next push was due later).
    pub(super) fn set_interval(&mut self, interval: Duration) {
        self.pusher.interval = interval;
        self.next_push = self.next_push.min(Instant::now() + interval);
    }

    /// Merges a batch of this worker's own reports.
    pub(super) fn apply(&mut self, batch: Vec<NodeReport>) {
        self.view.apply(batch);
    }
}

impl Worker {
    /// Merges the batches that arrived, then pushes one STAT_REPORT per known node to every
    /// terminal that may be pushed to, as far as its session and output bound allow.
    pub(super) fn push_fleet(&mut self, now: Instant, now_ms: u64) {
        let Some(mut plane) = self.push.take() else {
            return;
        };
        let before = plane.view.dropped();
        plane.view.apply(plane.pusher.updates.try_iter().flatten());
        self.counters.fleet_dropped += plane.view.dropped() - before;
        if let Some(tap) = &plane.pusher.tap {
            tap.record(&plane.view, now_ms);
        }
        let max_output = self.limits.max_output;
        let view = &plane.view;
        self.drive_each(now, now_ms, max_output, |conn, ctx| {
            for node in view.iter() {
                match conn.push(&report_of(node), ctx) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(peer = %conn.peer(), "cannot push a report: {e}"),
                }
            }
        });
        plane.next_push = now + plane.pusher.interval;
        self.push = Some(plane);
    }
}

fn report_of(node: &NodeReport) -> Report<'_> {
    Report {
        cpu_percent: node.cpu_percent,
        mem_percent: node.mem_percent,
        timestamp_ms: Some(node.timestamp_ms),
        node_id: Some(node.node.as_str().into()),
        instance: None,
    }
}
