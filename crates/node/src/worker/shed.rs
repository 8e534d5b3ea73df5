//! The memory budget's side of a worker: its holdings published, and peers closed while the
//! node is over the budget (`--max-buffer-memory`).

use super::Worker;
use crate::net::conn::CloseReason;
use crate::timers::TICK;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Worker {
    /// Publishes this worker's buffer holdings and reads the node's; over the budget, closes
    /// slow peers (those that leave their output unread), largest holders first, then peers
    /// holding a partial frame, until the node is under it again as far as this worker can
    /// tell.
    pub(super) fn reconcile_budget(&mut self, now: Instant) {
        let open = self.limits.open.load(Ordering::Relaxed);
        self.budget.reconcile(open, self.pool.pooled_bytes());
        self.pool.keep_free_buffers(!self.budget.over());
        if !self.budget.over() {
            return;
        }
        self.shed_slow_peers();
        self.shed_partial_frames(now);
    }

    /// Over the budget: closes the slow peers, largest holders first, while it lasts.
    fn shed_slow_peers(&mut self) {
        if self.slow.is_empty() {
            return;
        }
        let mut slow: Vec<(usize, usize)> = Vec::with_capacity(self.slow.len());
        let mut listed = std::mem::take(&mut self.slow);
        // A slot reused by a new connection may be listed twice.
        listed.sort_unstable();
        listed.dedup();
        for key in listed {
            if let Some(Some(conn)) = self.conns.get_mut(key) {
                if conn.still_slow() {
                    slow.push((conn.holdings(), key));
                }
            }
        }
        slow.sort_unstable_by(|a, b| b.cmp(a));
        for (_, key) in slow {
            if self.budget.over() {
                self.close(key, CloseReason::SlowPeer);
            } else {
                self.slow.push(key);
            }
        }
        self.free_closed_slots();
    }

    /// Still over the budget once the slow peers are gone: closes the connections whose input
    /// ends in an incomplete frame, the oldest frame first (a peer trickling frames in holds
    /// an input buffer until its frame deadline), while it lasts. It walks every connection,
    /// so at most once per [`TICK`].
    fn shed_partial_frames(&mut self, now: Instant) {
        if !self.budget.over() || now < self.next_shed {
            return;
        }
        self.next_shed = now + TICK;
        let mut partial: Vec<(Instant, usize)> = self
            .conns
            .iter()
            .filter_map(|(key, c)| Some((c.as_ref()?.partial_since()?, key)))
            .collect();
        partial.sort_unstable();
        for (_, key) in partial {
            if !self.budget.over() {
                break;
            }
            self.close(key, CloseReason::SlowPeer);
        }
        self.free_closed_slots();
    }
}
