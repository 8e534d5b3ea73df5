//! The deadlines of one worker's connections, in a hashed timer wheel.
//!
//! Each connection keeps a [`TimerSlot`]: the tick it is armed for and a generation that tells
//! its entries from those of an earlier connection in the same slab slot. Arming for a later
//! time than the one armed does nothing (the entry fires early, the session finds nothing due,
//! the worker arms again for the session's next deadline), so activity costs nothing here; an
//! earlier deadline (a partial frame's) adds an entry. Expiring visits only the entries of the
//! ticks that passed, never every connection.

use std::time::{Duration, Instant};

/// How often the wheel turns: deadlines fire up to this late.
pub const TICK: Duration = Duration::from_millis(250);
/// Ticks in one turn of the wheel (2048 x 250 ms = 512 s): deadlines further away stay in
/// their slot for another turn.
const SLOTS: usize = 2048;

/// A connection's place in the wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSlot {
    generation: u32,
    /// The tick of the entry that counts ([`NOT_ARMED`]: none); entries for any other tick
    /// are stale.
    armed: u32,
}

/// [`TimerSlot::armed`] when no entry counts.
const NOT_ARMED: u32 = u32::MAX;

impl Default for TimerSlot {
    fn default() -> Self {
        TimerSlot {
            generation: 0,
            armed: NOT_ARMED,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u32,
    generation: u32,
    tick: u32,
}

/// The wheel of one worker.
#[derive(Debug)]
pub struct Timers {
    origin: Instant,
    wheel: Vec<Vec<Entry>>,
    /// The first tick not expired yet.
    next: u32,
    generations: u32,
    entries: usize,
}

impl Timers {
    /// An empty wheel whose ticks count from `origin`.
    pub fn new(origin: Instant) -> Timers {
        Timers {
            origin,
            wheel: vec![Vec::new(); SLOTS],
            next: 0,
            generations: 0,
            entries: 0,
        }
    }

    /// A fresh slot for a new connection.
    pub fn slot(&mut self) -> TimerSlot {
        self.generations = self.generations.wrapping_add(1);
        TimerSlot {
            generation: self.generations,
            armed: NOT_ARMED,
        }
    }

    /// Arms connection `key` for `at`, unless it is already armed for that tick or earlier.
    pub fn arm(&mut self, key: usize, slot: &mut TimerSlot, at: Instant) {
        // Rounded up, and never in a tick already expired.
        // Ticks stop short of NOT_ARMED (u32::MAX ticks is 34 years).
        let tick = self.tick_of(at, true).max(self.next).min(NOT_ARMED - 1);
        if slot.armed <= tick {
            return;
        }
        slot.armed = tick;
        let Ok(key) = u32::try_from(key) else {
            return;
        };
        self.wheel[tick as usize % SLOTS].push(Entry {
            key,
            generation: slot.generation,
            tick,
        });
        self.entries += 1;
    }

    /// Takes the entries due by `now` and hands each connection key to `due` with a check:
    /// `due` gets `(key, is_current)` where `is_current(slot)` tells whether the entry is the
    /// one that counts for the connection now in that slab slot. The worker then handles the
    /// connection's timeout and arms it again.
    pub fn expire(
        &mut self,
        now: Instant,
        mut due: impl FnMut(usize, &dyn Fn(&TimerSlot) -> bool),
    ) {
        let last = self.tick_of(now, false);
        while self.next <= last {
            let tick = self.next;
            let slot = &mut self.wheel[tick as usize % SLOTS];
            let mut kept = Vec::new();
            for entry in std::mem::take(slot) {
                if entry.tick != tick {
                    kept.push(entry);
                    continue;
                }
                self.entries -= 1;
                let is_current =
                    move |s: &TimerSlot| s.generation == entry.generation && s.armed == tick;
                due(entry.key as usize, &is_current);
            }
            // Entries of a later turn stay where they are.
            self.wheel[tick as usize % SLOTS].extend(kept);
            self.next += 1;
        }
    }

    /// Marks `slot` as not armed (its entry, if any, is now stale).
    pub fn disarm(slot: &mut TimerSlot) {
        slot.armed = NOT_ARMED;
    }

    /// When the next tick with entries is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.entries > 0).then(|| self.origin + TICK * self.next)
    }

    /// Entries in the wheel, stale ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when the wheel holds no entry.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn tick_of(&self, at: Instant, round_up: bool) -> u32 {
        let d = at.saturating_duration_since(self.origin);
        let ticks = d.as_nanos() / TICK.as_nanos();
        let exact = d.as_nanos().is_multiple_of(TICK.as_nanos());
        let ticks = if round_up && !exact { ticks + 1 } else { ticks };
        u32::try_from(ticks).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(t: &mut Timers, now: Instant, slots: &[TimerSlot]) -> Vec<usize> {
        let mut keys = Vec::new();
        t.expire(now, |key, current| {
            if current(&slots[key]) {
                keys.push(key);
            }
        });
        keys
    }

    #[test]
    fn entries_fire_once_at_their_tick_and_stale_ones_are_told_apart() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let mut slots = vec![t.slot(), t.slot(), t.slot()];
        t.arm(0, &mut slots[0], t0 + Duration::from_secs(1));
        t.arm(1, &mut slots[1], t0 + Duration::from_secs(300));
        // A later deadline for an armed slot changes nothing; an earlier one adds an entry.
        t.arm(0, &mut slots[0], t0 + Duration::from_secs(5));
        t.arm(1, &mut slots[1], t0 + Duration::from_millis(600));
        assert_eq!(t.len(), 3);
        assert_eq!(t.next_deadline(), Some(t0));
        assert!(
            expired(&mut t, t0 + Duration::from_millis(600), &slots).is_empty(),
            "0.6 s rounds up to 0.75 s"
        );
        assert_eq!(expired(&mut t, t0 + Duration::from_secs(1), &slots), [1, 0]);
        // The 300 s entry of slot 1 is stale now; a new connection in slot 2 is not affected.
        slots[2] = t.slot();
        assert!(expired(&mut t, t0 + Duration::from_secs(600), &slots).is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_turn() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let mut slots = vec![t.slot()];
        let far = t0 + TICK * (SLOTS as u32 + 3);
        t.arm(0, &mut slots[0], far);
        assert!(expired(&mut t, t0 + TICK * 3, &slots).is_empty());
        assert!(expired(&mut t, far - TICK, &slots).is_empty());
        assert_eq!(expired(&mut t, far, &slots), [0]);
    }

    #[test]
    fn a_reused_slab_slot_ignores_the_entries_of_its_previous_connection() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let mut old = t.slot();
        t.arm(0, &mut old, t0 + Duration::from_secs(1));
        let mut new = t.slot();
        t.arm(0, &mut new, t0 + Duration::from_secs(2));
        assert!(expired(&mut t, t0 + Duration::from_secs(1), &[new]).is_empty());
        assert_eq!(expired(&mut t, t0 + Duration::from_secs(2), &[new]), [0]);
        Timers::disarm(&mut new);
        assert_eq!(new.armed, NOT_ARMED);
    }
}
