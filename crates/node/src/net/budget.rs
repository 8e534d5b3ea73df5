//! The node's global memory budget (`--max-buffer-memory`) over the input and output buffers
//! its connections hold, and each worker's share of the accounting.
//!
//! Every worker keeps its own count of what its connections hold (plain integers, updated
//! after each connection is driven) and of the free buffers its pool keeps and publishes the change to one node-wide atomic once per
//! event-loop round, reading the others' total back at the same time: one atomic operation per
//! round, none per message. Between two rounds a worker sees its own holdings exactly and the
//! others' as of its last round.
//!
//! Below three quarters of the budget a connection's output bound is the configured one, or a
//! quarter of what is left of the budget if that is less. Above three quarters it drops to an
//! equal share of the budget, so the connections holding the most stop being read first while
//! the others keep being served; past the budget it drops to
//! [`FLOOR`] (one answer at a time) and input buffers stop growing for partial frames. Memory
//! held by peers that do not read can only be reclaimed by closing them: over the budget the
//! worker closes its slow peers (see [`crate::net::conn`]), largest holders first, until it is
//! under again. This module only counts and decides; the worker acts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The smallest output bound under pressure: room for one answer, so that a peer that reads
/// its answers is still served one at a time.
pub const FLOOR: usize = 1024;

/// The node-wide figures every worker publishes to.
#[derive(Debug, Default)]
pub struct Totals {
    /// Bytes held over all workers, as each last published.
    pub held: AtomicUsize,
    /// The most `held` has been after any worker's round.
    pub peak: AtomicUsize,
}

/// One worker's view of the node's buffer budget.
#[derive(Debug)]
pub struct Budget {
    shared: Arc<Totals>,
    limit: usize,
    max_output: usize,
    /// What this worker's connections hold now.
    local: usize,
    /// Free buffers this worker's pool keeps, as of the last round.
    pooled: usize,
    /// What this worker last added to `shared`.
    published: usize,
    /// The other workers' holdings as of the last round.
    others: usize,
    /// Connections open over the node as of the last round.
    open: usize,
}

impl Budget {
    /// A worker's share of the budget of `limit` bytes whose node-wide count is `shared`;
    /// connections are bounded to `max_output` of unsent output when there is no pressure.
    pub fn new(shared: Arc<Totals>, limit: usize, max_output: usize) -> Budget {
        Budget {
            shared,
            limit,
            max_output,
            local: 0,
            pooled: 0,
            published: 0,
            others: 0,
            open: 1,
        }
    }

    /// Bounds the node's buffers to `limit` bytes and connections' unsent output to
    /// `max_output` from now on.
    pub fn set_limits(&mut self, limit: usize, max_output: usize) {
        self.limit = limit;
        self.max_output = max_output;
    }

    /// Records that a connection's holdings went from `before` to `after` bytes.
    #[inline]
    pub fn charge(&mut self, before: usize, after: usize) {
        self.local = (self.local + after).saturating_sub(before);
    }

    /// Publishes this worker's holdings, with `pooled` bytes of free buffers its pool keeps,
    /// and reads the node's (once per round); `open` is the number of connections open over
    /// the node.
    pub fn reconcile(&mut self, open: usize, pooled: usize) {
        self.pooled = pooled;
        let mine = self.local();
        let held = &self.shared.held;
        let total = if mine == self.published {
            held.load(Ordering::Relaxed)
        } else if mine > self.published {
            let up = mine - self.published;
            held.fetch_add(up, Ordering::Relaxed) + up
        } else {
            let down = self.published - mine;
            held.fetch_sub(down, Ordering::Relaxed) - down
        };
        if mine > self.published {
            self.shared.peak.fetch_max(total, Ordering::Relaxed);
        }
        self.published = mine;
        self.others = total.saturating_sub(mine);
        self.open = open.max(1);
    }

    /// Bytes held over the node, as this worker knows it.
    pub fn total(&self) -> usize {
        self.others + self.local()
    }

    /// Bytes this worker holds: its connections' buffers and its pool's free ones.
    pub fn local(&self) -> usize {
        self.local + self.pooled
    }

    /// True when the node holds the whole budget or more.
    pub fn over(&self) -> bool {
        self.total() >= self.limit
    }

    /// True while input buffers may grow past their standard size (for a large partial
    /// frame): not over the budget.
    pub fn may_grow_input(&self) -> bool {
        !self.over()
    }

    /// The unsent output at which a connection stops being read, now.
    pub fn output_bound(&self) -> usize {
        let total = self.total();
        if total >= self.limit {
            return FLOOR.min(self.max_output);
        }
        let share = if total < self.limit / 4 * 3 {
            self.max_output
        } else {
            // Input and output of every connection within the budget.
            self.limit / self.open / 2
        };
        // One event may fill a connection's output to the bound, and its buffer's capacity to
        // twice that, while other workers do the same unseen until their round ends.
        let headroom = (self.limit - total) / 4;
        share.min(headroom).clamp(FLOOR, self.max_output.max(FLOOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_see_each_others_holdings_after_a_round() {
        let shared = Arc::new(Totals::default());
        let mut a = Budget::new(shared.clone(), 1000, 100);
        let mut b = Budget::new(shared.clone(), 1000, 100);
        a.charge(0, 300);
        assert_eq!(b.total(), 0, "not published yet");
        a.reconcile(2, 0);
        b.reconcile(2, 0);
        assert_eq!(b.total(), 300);
        b.charge(0, 500);
        b.reconcile(2, 0);
        a.charge(300, 100);
        a.reconcile(2, 0);
        assert_eq!((a.total(), shared.held.load(Ordering::Relaxed)), (600, 600));
        assert_eq!(shared.peak.load(Ordering::Relaxed), 800);
        assert_eq!(a.local(), 100);
    }

    #[test]
    fn the_bound_falls_with_pressure() {
        let shared = Arc::new(Totals::default());
        let mut w = Budget::new(shared, 64 << 20, 1 << 20);
        w.reconcile(100, 0);
        assert_eq!(
            w.output_bound(),
            1 << 20,
            "no pressure: the configured bound"
        );
        w.charge(0, 50 << 20);
        w.reconcile(100, 0);
        assert_eq!(w.output_bound(), 335_544, "an equal share of the budget");
        assert!(w.may_grow_input());
        w.charge(0, (14 << 20) - 40_000);
        assert_eq!(w.output_bound(), 10_000, "a quarter of what is left");
        w.charge(0, 40_000);
        assert_eq!(
            w.output_bound(),
            FLOOR,
            "over the budget: one answer at a time"
        );
        assert!(w.over() && !w.may_grow_input());
        w.charge(64 << 20, 0);
        assert_eq!(w.output_bound(), 1 << 20);
    }

    #[test]
    fn new_limits_apply_to_the_next_bound() {
        let shared = Arc::new(Totals::default());
        let mut w = Budget::new(shared, 64 << 20, 1 << 20);
        w.charge(0, 40 << 20);
        w.reconcile(1, 0);
        assert!(!w.over());
        w.set_limits(32 << 20, 1 << 16);
        assert!(w.over(), "the holdings are over the smaller budget");
        assert_eq!(w.output_bound(), FLOOR);
        w.charge(40 << 20, 0);
        assert_eq!(w.output_bound(), 1 << 16, "the smaller output bound");
    }
}
