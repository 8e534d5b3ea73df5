//! The store buffer: a bound on the bytes of reports a node holds for the store, queued or in
//! flight (`--store-buffer`).
//!
//! Workers take credit from it in chunks, so that a report costs a subtraction, not an atomic
//! operation; the store thread gives bytes back as the store confirms them. When a worker can
//! get no more credit, the buffer is full: it answers 503 until the store catches up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes a worker takes from the buffer at a time.
const CHUNK: usize = 64 * 1024;

/// The node-wide bound.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A buffer of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes taken, by records held and by credit not used yet.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `n` bytes if they fit under the limit.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Gives `n` bytes back.
    pub fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One worker's share of the buffer: credit taken and not used yet.
#[derive(Debug)]
pub struct Credit {
    budget: Arc<Budget>,
    credit: usize,
}

impl Credit {
    /// No credit yet from `budget`.
    pub fn new(budget: Arc<Budget>) -> Credit {
        Credit { budget, credit: 0 }
    }

    /// Uses `n` bytes of credit, taking more from the buffer when needed; false when the buffer
    /// is full.
    #[inline]
    pub fn spend(&mut self, n: usize) -> bool {
        if self.credit < n {
            let want = n.max(CHUNK);
            if self.budget.take(want) {
                self.credit += want;
            } else if self.budget.take(n) {
                self.credit += n;
            } else {
                return false;
            }
        }
        self.credit -= n;
        true
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.budget.give(self.credit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_comes_in_chunks_and_stops_at_the_limit() {
        let budget = Budget::new(CHUNK + 100);
        let mut a = Credit::new(budget.clone());
        assert!(a.spend(10));
        assert_eq!(budget.used(), CHUNK, "a whole chunk taken");
        assert!(a.spend(CHUNK - 10), "the rest of the chunk");
        assert!(
            a.spend(100),
            "only 100 bytes were left: exactly those taken"
        );
        assert_eq!(budget.used(), CHUNK + 100);
        assert!(!a.spend(1), "full");
        budget.give(50);
        assert!(a.spend(50));
        let mut b = Credit::new(budget.clone());
        assert!(!b.spend(1));
        drop(a);
        assert_eq!(
            budget.used(),
            CHUNK + 100,
            "spent bytes stay taken until given back"
        );
        budget.give(CHUNK + 100);
        assert!(b.spend(1));
        drop(b);
        assert_eq!(
            budget.used(),
            1,
            "unused credit goes back, the byte spent stays taken"
        );
    }
}
