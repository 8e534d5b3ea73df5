//! When a connection may send its next request, and at what scheduled time.
//!
//! Closed loop: whenever fewer than `depth` requests are outstanding, the request is scheduled
//! "now", so corrected and uncorrected latency are the same.
//!
//! Open loop (`--rate R` over `C` connections): the run has one global schedule, message `n`
//! due at `begin + n / R`, and connection `i` owns the slots `n = i, i + C, i + 2C, ...`, so
//! the connections are staggered evenly and each sends at `R / C` per second. A request keeps
//! its slot's time even when it goes out late (the target was slow and `depth` requests were
//! already outstanding): its latency is measured from the slot, as wrk2 does, so a stall of the
//! target shows up as the tail it really caused for a client sending on that schedule. This
//! module is pure arithmetic on clock nanoseconds, driven by a fake clock in the tests.

use crate::clock::NANOS_PER_SEC;

/// Sending discipline of one connection.
#[derive(Debug, Clone)]
pub enum Pacing {
    /// As fast as answers come back, `depth` outstanding.
    Closed,
    /// On a fixed schedule.
    Open(Schedule),
}

/// A connection's share of the open-loop schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    begin: u64,
    slot: u64,
    stride: u64,
    ns_per_slot: f64,
}

impl Schedule {
    /// Connection `index` of `connections`, the whole run sending `rate` messages per second
    /// from clock time `begin`.
    pub fn new(begin: u64, index: usize, connections: usize, rate: f64) -> Self {
        Schedule {
            begin,
            slot: index as u64,
            stride: connections.max(1) as u64,
            ns_per_slot: NANOS_PER_SEC as f64 / rate,
        }
    }

    /// Scheduled time of this connection's next request.
    #[inline]
    pub fn due(&self) -> u64 {
        self.begin + (self.slot as f64 * self.ns_per_slot) as u64
    }

    /// The same share with the slots due before clock time `t` left out: a connection that
    /// the ramp (`--connect-rate`) opens at `t` owes nothing from before it existed.
    pub fn starting_at(mut self, t: u64) -> Self {
        if t > self.begin {
            let first = ((t - self.begin) as f64 / self.ns_per_slot).ceil() as u64;
            let steps = first.saturating_sub(self.slot).div_ceil(self.stride);
            self.slot += steps * self.stride;
        }
        self
    }

    fn advance(&mut self) {
        self.slot += self.stride;
    }
}

impl Pacing {
    /// If requests may be sent at `now` with `outstanding` requests in flight and at most
    /// `depth` allowed, consumes a slot and returns its scheduled time and how many requests
    /// may go out at it: every free pipeline place in closed loop, one in open loop.
    #[inline]
    pub fn poll_send(
        &mut self,
        now: u64,
        outstanding: usize,
        depth: usize,
    ) -> Option<(u64, usize)> {
        if outstanding >= depth {
            return None;
        }
        match self {
            Pacing::Closed => Some((now, depth - outstanding)),
            Pacing::Open(s) => {
                let due = s.due();
                (due <= now).then(|| {
                    s.advance();
                    (due, 1)
                })
            }
        }
    }

    /// Gives up the next open-loop slot unsent (the target paused the connection); nothing in
    /// closed loop.
    pub fn skip(&mut self) {
        if let Pacing::Open(s) = self {
            s.advance();
        }
    }

    /// Scheduled time of the next request in open loop; `None` in closed loop.
    pub fn next_due(&self) -> Option<u64> {
        match self {
            Pacing::Closed => None,
            Pacing::Open(s) => Some(s.due()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;
    use std::collections::VecDeque;

    const MS: u64 = 1_000_000;

    #[test]
    fn connections_share_one_evenly_spaced_schedule() {
        // 4 connections at 1000/s: slots every 1 ms, each connection every 4 ms.
        let mut all: Vec<u64> = Vec::new();
        for i in 0..4 {
            let mut p = Pacing::Open(Schedule::new(10 * MS, i, 4, 1000.0));
            all.extend((0..3).map(|_| p.poll_send(u64::MAX / 2, 0, 1).unwrap().0));
        }
        all.sort();
        let want: Vec<u64> = (0..12).map(|n| 10 * MS + n * MS).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn a_connection_opened_late_by_the_ramp_starts_at_its_first_slot_after_it() {
        // Connection 1 of 4 at 1000/s owns slots 1, 5, 9, ... ms; opened at 6 ms, it starts at 9.
        let s = Schedule::new(0, 1, 4, 1000.0).starting_at(6 * MS);
        assert_eq!(s.due(), 9 * MS);
        // Opened exactly on one of its slots, it keeps that slot.
        assert_eq!(
            Schedule::new(0, 1, 4, 1000.0).starting_at(5 * MS).due(),
            5 * MS
        );
        assert_eq!(Schedule::new(0, 1, 4, 1000.0).starting_at(0).due(), MS);
        let mut p = Pacing::Open(Schedule::new(0, 0, 1, 1000.0));
        p.skip();
        assert_eq!(p.next_due(), Some(MS));
    }

    #[test]
    fn closed_loop_is_bounded_by_depth_only() {
        let mut p = Pacing::Closed;
        assert_eq!(p.poll_send(5, 0, 2), Some((5, 2)));
        assert_eq!(p.poll_send(6, 1, 2), Some((6, 1)));
        assert_eq!(p.poll_send(7, 2, 2), None);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn late_sends_keep_their_slot_times_and_catch_up() {
        let mut p = Pacing::Open(Schedule::new(0, 0, 1, 1000.0));
        // Nothing may go out before its time.
        assert_eq!(p.poll_send(0, 0, 10), Some((0, 1)));
        assert_eq!(p.poll_send(MS - 1, 0, 10), None);
        // Woken 5 ms late: the missed slots go out at once, each with its own scheduled time.
        let burst: Vec<_> =
            std::iter::from_fn(|| p.poll_send(5 * MS, 0, 10).map(|(t, _)| t)).collect();
        assert_eq!(burst, vec![MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]);
        assert_eq!(p.next_due(), Some(6 * MS));
    }

    /// A discrete-event simulation of one open-loop connection with depth 1 against a target
    /// that answers in 100 µs but stalls from 2 s to 3 s; returns the recorded latencies.
    fn simulate_stall(rate: f64, secs: u64) -> Stats {
        let service = MS / 10;
        let (stall_from, stall_to) = (2_000 * MS, 3_000 * MS);
        let answer_at = |sent: u64| {
            let start = if (stall_from..stall_to).contains(&sent) {
                stall_to
            } else {
                sent
            };
            start + service
        };
        let mut pacing = Pacing::Open(Schedule::new(0, 0, 1, rate));
        let mut stats = Stats::default();
        let mut inflight: VecDeque<(u64, u64, u64)> = VecDeque::new(); // scheduled, sent, answer
        let mut now = 0;
        let end = secs * 1_000 * MS;
        while now < end {
            while let Some((scheduled, _)) = pacing.poll_send(now, inflight.len(), 1) {
                inflight.push_back((scheduled, now, answer_at(now)));
            }
            // Advance the fake clock to the next event: an answer or the next slot.
            let next_answer = inflight.front().map_or(u64::MAX, |f| f.2);
            let next_slot = pacing.next_due().unwrap_or(u64::MAX);
            now = if inflight.is_empty() {
                next_slot
            } else {
                next_answer.max(now)
            };
            if next_answer <= now {
                let (scheduled, sent, _) = inflight.pop_front().unwrap();
                stats.record_latency(now, scheduled, sent, 1);
            }
        }
        stats
    }

    #[test]
    fn a_one_second_stall_shows_as_a_one_second_corrected_tail() {
        // 1000/s for 10 s: 10,000 requests, 1,000 of them due during the stall.
        let s = simulate_stall(1000.0, 10);
        let (c, u) = (&s.corrected, &s.uncorrected);
        assert!((9_990..=10_001).contains(&c.len()), "{}", c.len());
        // Corrected: the request due at 2 s + x (0 <= x < 1 s) waits for the stall to end and
        // for the 1000·x requests queued before it (100 µs each, depth 1), so it completes at
        // 3 s + 0.1·x and its latency is 1 s - 0.9·x: a ramp from 1 s down to 0.1 s over 10 %
        // of the samples. Hence p99 (x = 0.1) is 910 ms and p95 (x = 0.5) is 550 ms.
        let ms = |v: u64| v as f64 / MS as f64;
        assert!(
            (999.0..=1_002.0).contains(&ms(c.max())),
            "corrected max {}",
            ms(c.max())
        );
        let p99 = ms(c.value_at_quantile(0.99));
        assert!((890.0..=930.0).contains(&p99), "corrected p99 {p99}");
        let p95 = ms(c.value_at_quantile(0.95));
        assert!((530.0..=570.0).contains(&p95), "corrected p95 {p95}");
        assert!(ms(c.value_at_quantile(0.5)) < 0.2);
        // Uncorrected: only the one request caught in the stall saw it; p99 hides it entirely.
        assert!(
            (999.0..=1_002.0).contains(&ms(u.max())),
            "uncorrected max {}",
            ms(u.max())
        );
        assert!(ms(u.value_at_quantile(0.999)) < 0.2);
        assert_eq!(u.count_between(500 * MS, 2_000 * MS), 1);
    }
}
