//! One node's CPU and memory over the last minutes, from the pushes this terminal received,
//! for the detail view's charts.
//!
//! Bounded per node: [`SLOTS`] slots of [`SLOT`] each (the latest push in a slot wins), two
//! bytes a slot, so a node costs at most about 300 bytes of history whatever its report
//! interval. Times are the terminal's own monotonic clock: when the pushes arrived.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How much time one slot covers.
pub const SLOT: Duration = Duration::from_secs(2);
/// How many slots are kept: [`SLOT`] times this is the span of the charts (5 minutes).
pub const SLOTS: usize = 150;
/// Chart points: `(seconds before now, percent)`, oldest first.
pub type Points = Vec<(f64, f64)>;
/// A slot with no push in it.
const EMPTY: [u8; 2] = [u8::MAX; 2];

/// The recent samples of one node. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Number of the newest slot (counted from the terminal's start).
    newest: u64,
    /// INVARIANT: at most [`SLOTS`] long; the last one is slot `newest`, the ones before it
    /// the slots just before.
    slots: VecDeque<[u8; 2]>,
}

impl History {
    /// Records CPU and memory percentages received at `at` (the terminal started at
    /// `started`).
    pub fn record(&mut self, started: Instant, at: Instant, cpu: u8, mem: u8) {
        let slot = slot_of(started, at);
        if self.slots.is_empty() {
            self.slots.reserve_exact(SLOTS);
        } else if slot < self.newest {
            // The monotonic clock does not go back; a stale `at` is ignored.
            return;
        } else if slot == self.newest {
            self.slots.pop_back();
        } else {
            let gap = (slot - self.newest - 1).min(SLOTS as u64 - 1) as usize;
            // Make room first, so the buffer never grows past its first allocation.
            let excess = (self.slots.len() + gap + 1).saturating_sub(SLOTS);
            self.slots.drain(..excess.min(self.slots.len()));
            self.slots.extend(std::iter::repeat_n(EMPTY, gap));
        }
        self.slots.push_back([cpu, mem]);
        self.newest = slot;
    }

    /// The samples as chart points: CPU and memory. Slots older than the span are left out.
    pub fn points(&self, started: Instant, now: Instant) -> (Points, Points) {
        let now_slot = slot_of(started, now).max(self.newest);
        let secs_per_slot = SLOT.as_secs_f64();
        let (mut cpu, mut mem) = (Vec::new(), Vec::new());
        let first = self.newest + 1 - self.slots.len() as u64;
        for (i, sample) in self.slots.iter().enumerate() {
            let slot = first + i as u64;
            if *sample == EMPTY || now_slot - slot >= SLOTS as u64 {
                continue;
            }
            let x = -((now_slot - slot) as f64) * secs_per_slot;
            cpu.push((x, f64::from(sample[0])));
            mem.push((x, f64::from(sample[1])));
        }
        (cpu, mem)
    }

    /// Number of slots holding a sample.
    pub fn samples(&self) -> usize {
        self.slots.iter().filter(|s| **s != EMPTY).count()
    }
}

fn slot_of(started: Instant, at: Instant) -> u64 {
    (at.saturating_duration_since(started).as_millis() / SLOT.as_millis()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_per_slot_and_leaves_gaps() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record(t0, t0, 10, 20);
        h.record(t0, t0 + Duration::from_millis(500), 11, 21);
        h.record(t0, t0 + SLOT * 3, 30, 40);
        assert_eq!(h.samples(), 2);
        let (cpu, mem) = h.points(t0, t0 + SLOT * 3);
        assert_eq!(cpu, [(-6.0, 11.0), (0.0, 30.0)]);
        assert_eq!(mem, [(-6.0, 21.0), (0.0, 40.0)]);
        let (cpu, _) = h.points(t0, t0 + SLOT * 4);
        assert_eq!(cpu, [(-8.0, 11.0), (-2.0, 30.0)], "points age with now");
    }

    #[test]
    fn stays_bounded() {
        let t0 = Instant::now();
        let mut h = History::default();
        for i in 0..(SLOTS as u32 * 3) {
            h.record(t0, t0 + SLOT * i, (i % 100) as u8, 1);
        }
        assert_eq!(h.slots.len(), SLOTS);
        assert_eq!(h.samples(), SLOTS);
        let capacity = h.slots.capacity();
        assert!(capacity < SLOTS * 2, "{capacity}");
        // A long silence empties the chart without growing the buffer.
        let later = t0 + SLOT * (SLOTS as u32 * 10);
        h.record(t0, later, 5, 5);
        assert_eq!(h.slots.len(), SLOTS);
        assert_eq!(h.slots.capacity(), capacity, "no growth");
        assert_eq!(h.samples(), 1);
        let (cpu, _) = h.points(t0, later + SLOT * SLOTS as u32);
        assert!(cpu.is_empty(), "{cpu:?}");
    }
}
