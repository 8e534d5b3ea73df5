//! The status reporter: one thread that takes every worker's snapshots, logs a status line
//! each status interval (and hands it to the [`StatusHook`]), and keeps the node's
//! [`Observer`] current.

use crate::live::LiveWatch;
use crate::observe::Observer;
use crate::stats::{Counters, StatusLine, StoreLine, WorkerSnapshot};
use avpd_store::{Store, StoreStatus};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Called with every status line after it is logged (the service manager's status, say).
pub type StatusHook = Box<dyn FnMut(&StatusLine) + Send>;

/// Everything the status reporter reads and writes.
pub(crate) struct StatusReporter {
    /// The workers' snapshots; disconnected once every worker has gone.
    pub snapshots: Receiver<WorkerSnapshot>,
    /// Where the interval comes from.
    pub live: LiveWatch,
    /// The node's store, when it stores reports.
    pub store: Option<Arc<Store>>,
    /// Where the latest figures go.
    pub observer: Observer,
    /// Who else gets each line.
    pub hook: Option<StatusHook>,
    /// Kept at the sum of the workers' latest counters ([`crate::Node::counters`]).
    pub totals: Arc<Mutex<Counters>>,
    /// `--max-buffer-memory`, shown beside what the connections buffer.
    pub buffer_limit: usize,
    /// Called before each line (the agent keys' check for a changed file).
    pub on_tick: Box<dyn FnMut() + Send>,
}

impl StatusReporter {
    /// Logs one status line every interval until every worker has gone, then a final one.
    pub(crate) fn run(mut self, interval: std::time::Duration) {
        let mut interval = interval;
        let mut latest: Vec<Option<WorkerSnapshot>> = Vec::new();
        let mut previous = Counters::default();
        let mut previous_store = StoreStatus::default();
        let mut previous_at = Instant::now();
        let mut next = previous_at + interval;
        let mut line = |latest: &[Option<WorkerSnapshot>], now: Instant, limit: usize| {
            let mut total = Counters::default();
            let (mut open, mut buffered) = (0, 0);
            for s in latest.iter().flatten() {
                total.add(&s.counters);
                open += s.open;
                buffered += s.buffered;
            }
            let secs = now.duration_since(previous_at).as_secs_f64();
            let store_line = self.store.as_ref().map(|s| {
                let now = s.status();
                let line = StoreLine::new(now, &previous_store, secs);
                previous_store = now;
                line
            });
            let buffered = (buffered, limit);
            let status = StatusLine::new(open, buffered, total, &previous, secs, store_line);
            tracing::info!("{status}");
            if let Some(hook) = self.hook.as_mut() {
                hook(&status);
            }
            previous = total;
            previous_at = now;
        };
        loop {
            if let Some(live) = self.live.changed() {
                interval = live.status_interval;
                self.buffer_limit = live.max_buffer_memory;
                self.observer.set_buffer_limit(live.max_buffer_memory);
                next = Instant::now() + interval;
            }
            match self.snapshots.recv_deadline(next) {
                Ok(s) => {
                    let now = Instant::now();
                    self.observer.record_worker(s, now);
                    if let Some(store) = &self.store {
                        self.observer.record_store(store.status());
                    }
                    if latest.len() <= s.worker {
                        latest.resize(s.worker + 1, None);
                    }
                    latest[s.worker] = Some(s);
                    let mut sum = Counters::default();
                    latest.iter().flatten().for_each(|s| sum.add(&s.counters));
                    *self.totals.lock().unwrap_or_else(|e| e.into_inner()) = sum;
                }
                Err(RecvTimeoutError::Timeout) => {
                    (self.on_tick)();
                    let now = Instant::now();
                    line(&latest, now, self.buffer_limit);
                    next = now + interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    line(&latest, Instant::now(), self.buffer_limit);
                    return;
                }
            }
        }
    }
}
