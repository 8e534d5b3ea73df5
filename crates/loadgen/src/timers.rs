//! When each connection of a worker next needs timer work (a connect, a timeout, an open-loop
//! send), kept in a min-heap so that a timer pass visits only the connections that are due.
//!
//! Each connection is *armed* at the earliest time it has an entry for. Arming it later than
//! that adds nothing: waking a connection early is harmless, because its timer work finds
//! nothing due and it is armed again at its real time. An entry whose time is no longer its
//! connection's armed time is stale and skipped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The timer entries of one worker's connections, indexed by connection number.
#[derive(Debug)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    armed: Vec<u64>,
}

impl Timers {
    /// Timers for `n` connections, none armed.
    pub fn new(n: usize) -> Self {
        Timers {
            heap: BinaryHeap::with_capacity(n),
            armed: vec![u64::MAX; n],
        }
    }

    /// Makes sure connection `i` is due at `at` at the latest (`u64::MAX`: no timer).
    #[inline]
    pub fn arm(&mut self, i: usize, at: u64) {
        if at < self.armed[i] {
            self.armed[i] = at;
            self.heap.push(Reverse((at, i)));
        }
    }

    /// A connection due at or before `now`, disarmed; `None` once none is.
    pub fn pop_due(&mut self, now: u64) -> Option<usize> {
        while let Some(&Reverse((at, i))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if at == self.armed[i] {
                self.armed[i] = u64::MAX;
                return Some(i);
            }
        }
        None
    }

    /// The earliest entry's time (perhaps a stale one, which only wakes the worker early).
    pub fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(t: &mut Timers, now: u64) -> Vec<usize> {
        std::iter::from_fn(|| t.pop_due(now)).collect()
    }

    #[test]
    fn due_connections_come_out_earliest_first_and_only_once() {
        let mut t = Timers::new(3);
        t.arm(0, 30);
        t.arm(1, 10);
        t.arm(2, 20);
        assert_eq!(t.next(), Some(10));
        assert_eq!(drain(&mut t, 25), vec![1, 2]);
        assert_eq!(drain(&mut t, 25), Vec::<usize>::new());
        assert_eq!(t.next(), Some(30));
        assert_eq!(drain(&mut t, 30), vec![0]);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn arming_earlier_replaces_and_arming_later_keeps_the_earlier_time() {
        let mut t = Timers::new(1);
        t.arm(0, 50);
        t.arm(0, 20);
        // The entry at 50 is stale now; the connection comes out once, at 20.
        t.arm(0, 90);
        assert_eq!(drain(&mut t, 19), Vec::<usize>::new());
        assert_eq!(drain(&mut t, 100), vec![0]);
        // Disarmed: it can be armed again, later than before.
        t.arm(0, 200);
        assert_eq!(drain(&mut t, 199), Vec::<usize>::new());
        assert_eq!(drain(&mut t, 200), vec![0]);
    }

    #[test]
    fn no_timer_is_never_due() {
        let mut t = Timers::new(1);
        t.arm(0, u64::MAX);
        assert_eq!(t.next(), None);
        assert_eq!(drain(&mut t, u64::MAX), Vec::<usize>::new());
    }
}
