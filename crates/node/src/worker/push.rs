//! The management plane's part of a worker: the fleet view, merged from the data-plane
//! workers' batches (and the store's bucket of latest reports), pushed to every terminal.
//!
//! Each terminal has a cursor into the view's change log ([`crate::fleet::FleetView::changes`]):
//! the version up to which it has every row. Each report interval the view ages its rows and
//! every terminal's target moves to the view's head; the terminal is sent the rows that
//! changed between its cursor and its target, as far as its output bound and push credit
//! allow, and the rest as its socket drains. So a terminal that connects gets every row, then
//! only what changed; every row reaches it (a row changed twice is sent once, as it is now),
//! and no row is sent twice in one interval.

use super::Worker;
use crate::fleet::{FleetRules, FleetView, NodeReport};
use crate::net::conn::{Connection, Context};
use crate::observe::FleetTap;
use crate::relay::Relayer;
use crate::worker::unix_millis;
use crossbeam_channel::Receiver;
use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

/// What the management plane needs to push: where the view's updates come from and how often
/// to push.
pub struct Pusher {
    /// Batches of reports from the data-plane workers.
    pub updates: Receiver<Vec<NodeReport>>,
    /// Time between pushes.
    pub interval: Duration,
    /// How rows age.
    pub rules: FleetRules,
    /// Where terminals' commands for the fleet go; `None` treats their TARGET as absent.
    pub relayer: Option<Relayer>,
    /// Where the view's figures go after each merge, when an exporter wants them.
    pub tap: Option<FleetTap>,
}

/// Where a terminal is in the view's change log.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// Every change up to this version was sent.
    sent: u64,
    /// The head of the log at the last push interval: what is owed now.
    target: u64,
}

/// The fleet view and the push schedule.
pub(super) struct PushPlane {
    pusher: Pusher,
    pub(super) view: FleetView,
    next_push: Instant,
    /// By connection key.
    cursors: FxHashMap<usize, Cursor>,
}

impl PushPlane {
    pub(super) fn new(pusher: Pusher) -> PushPlane {
        PushPlane {
            view: FleetView::new(pusher.rules),
            pusher,
            next_push: Instant::now(),
            cursors: FxHashMap::default(),
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

    /// Forgets the cursor of a connection that closed.
    pub(super) fn forget(&mut self, key: usize) {
        self.cursors.remove(&key);
    }

    /// Sends `conn` (connection `key`) the rows it is owed, as far as it can take them.
    fn send_owed(&mut self, key: usize, conn: &mut Connection, ctx: &mut Context<'_>) {
        let cursor = self.cursors.entry(key).or_insert(Cursor {
            sent: 0,
            target: self.view.head(),
        });
        if cursor.sent >= cursor.target {
            return;
        }
        for (version, row) in self.view.changes(cursor.sent, cursor.target) {
            match conn.push(&row.report(), ctx) {
                Ok(true) => cursor.sent = version,
                Ok(false) => return,
                Err(e) => {
                    // A row the view holds always encodes; skip it rather than stall.
                    tracing::warn!(peer = %conn.peer(), "cannot push a report: {e}");
                    cursor.sent = version;
                }
            }
        }
    }
}

impl Worker {
    /// Merges the batches that arrived, ages the view, moves every terminal's target to the
    /// view's head and sends each what it is owed.
    pub(super) fn push_fleet(&mut self, now: Instant, now_ms: u64) {
        let Some(mut plane) = self.push.take() else {
            return;
        };
        let before = plane.view.refused();
        plane.view.apply(plane.pusher.updates.try_iter().flatten());
        plane.view.tick(now_ms);
        self.counters.fleet_dropped += plane.view.refused() - before;
        if let Some(tap) = &plane.pusher.tap {
            tap.record(&plane.view);
        }
        let head = plane.view.head();
        // Tombstones every terminal has got are not needed any more.
        let oldest = plane.cursors.values().map(|c| c.sent).min().unwrap_or(head);
        plane.view.purge(oldest.min(head));
        for cursor in plane.cursors.values_mut() {
            cursor.target = head;
        }
        let max_output = self.budget.output_bound();
        self.drive_each(now, now_ms, max_output, |key, conn, ctx| {
            plane.send_owed(key, conn, ctx)
        });
        plane.next_push = now + plane.pusher.interval;
        self.push = Some(plane);
    }

    /// After an event on terminal `key`: sends what it is still owed if its output drained.
    pub(super) fn push_owed(&mut self, key: usize, now: Instant) {
        let Some(mut plane) = self.push.take() else {
            return;
        };
        let owed = plane.cursors.get(&key).is_some_and(|c| c.sent < c.target);
        if owed {
            self.drive_one(key, now, unix_millis(), |key, conn, ctx| {
                plane.send_owed(key, conn, ctx)
            });
        }
        self.push = Some(plane);
    }
}
