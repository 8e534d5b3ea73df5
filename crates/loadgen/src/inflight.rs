//! The requests a connection has sent and not yet seen answered, oldest first.
//!
//! Requests written together usually share everything but their SEQUENCE: the same kind, the
//! same scheduled and send times (closed loop schedules "now"), consecutive sequence numbers.
//! They are kept as runs of such requests, so a pipeline of 128 costs one record, not 128, and
//! taking the oldest request is a counter update. Each request still comes out on its own, with
//! its own SEQUENCE, to be checked and timed one by one.

use crate::request::RequestKind;
use std::collections::VecDeque;

/// One request sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Its SEQUENCE.
    pub seq: u32,
    /// What it asked.
    pub kind: RequestKind,
    /// When it was due (open loop) or sent (closed loop), clock nanoseconds.
    pub scheduled: u64,
    /// When it was written, clock nanoseconds.
    pub sent: u64,
    /// Whether it falls in the measurement window (false during the warmup).
    pub measured: bool,
}

impl InFlight {
    /// True when `next` extends a run of `count` requests starting at `self`: equal but for
    /// the SEQUENCE that comes `count` after this one.
    #[inline]
    pub fn follows(&self, next: InFlight, count: u32) -> bool {
        next == InFlight {
            seq: self.seq.wrapping_add(count),
            ..*self
        }
    }
}

/// A run of requests equal but for consecutive SEQUENCE numbers.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: InFlight,
    count: u32,
}

impl Run {
    fn nth(&self, i: u32) -> InFlight {
        InFlight {
            seq: self.first.seq.wrapping_add(i),
            ..self.first
        }
    }

    fn holds(&self, seq: u32) -> Option<u32> {
        let i = seq.wrapping_sub(self.first.seq);
        (i < self.count).then_some(i)
    }
}

/// A connection's outstanding requests, oldest first.
#[derive(Debug, Default)]
pub struct InFlightQueue {
    runs: VecDeque<Run>,
    len: usize,
}

impl InFlightQueue {
    /// Number of outstanding requests.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is outstanding.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds the newest request.
    #[inline]
    pub fn push(&mut self, req: InFlight) {
        self.push_run(req, 1);
    }

    /// Adds `count` newest requests: `first` and the ones after it, equal but for their
    /// consecutive SEQUENCE numbers.
    #[inline]
    pub fn push_run(&mut self, first: InFlight, count: u32) {
        if count == 0 {
            return;
        }
        self.len += count as usize;
        if let Some(run) = self.runs.back_mut() {
            if run.first.follows(first, run.count) {
                run.count += count;
                return;
            }
        }
        self.runs.push_back(Run { first, count });
    }

    /// The oldest request.
    #[inline]
    pub fn front(&self) -> Option<InFlight> {
        self.runs.front().map(|r| r.first)
    }

    /// The oldest request and how many follow it in its run (itself included).
    #[inline]
    pub fn front_run(&self) -> Option<(InFlight, u32)> {
        self.runs.front().map(|r| (r.first, r.count))
    }

    /// Takes the oldest request.
    #[inline]
    pub fn pop_front(&mut self) -> Option<InFlight> {
        let req = self.front()?;
        self.pop_front_n(1);
        Some(req)
    }

    /// Drops the `n` oldest requests, which must all belong to the front run.
    #[inline]
    pub fn pop_front_n(&mut self, n: u32) {
        let Some(run) = self.runs.front_mut() else {
            return;
        };
        assert!(
            n <= run.count,
            "{n} requests taken from a run of {}",
            run.count
        );
        self.len -= n as usize;
        if run.count == n {
            self.runs.pop_front();
        } else {
            run.count -= n;
            run.first.seq = run.first.seq.wrapping_add(n);
        }
    }

    /// Takes the request with SEQUENCE `seq` wherever it is (UDP answers may come in any
    /// order), splitting its run when it sits in the middle.
    pub fn remove_seq(&mut self, seq: u32) -> Option<InFlight> {
        let (at, i) = self
            .runs
            .iter()
            .enumerate()
            .find_map(|(at, run)| run.holds(seq).map(|i| (at, i)))?;
        let run = self.runs[at];
        self.len -= 1;
        let before = Run { count: i, ..run };
        let after = Run {
            first: run.nth(i + 1),
            count: run.count - i - 1,
        };
        match (before.count, after.count) {
            (0, 0) => drop(self.runs.remove(at)),
            (0, _) => self.runs[at] = after,
            (_, 0) => self.runs[at] = before,
            _ => {
                self.runs[at] = before;
                self.runs.insert(at + 1, after);
            }
        }
        Some(run.nth(i))
    }

    /// Takes every request, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.len = 0;
        self.runs
            .drain(..)
            .flat_map(|run| (0..run.count).map(move |i| run.nth(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(seq: u32, sent: u64) -> InFlight {
        InFlight {
            seq,
            kind: RequestKind::Report,
            scheduled: sent,
            sent,
            measured: true,
        }
    }

    /// Every operation against a plain per-request queue.
    #[test]
    fn behaves_like_a_queue_of_single_requests() {
        let mut q = InFlightQueue::default();
        let mut model: VecDeque<InFlight> = VecDeque::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut seq = u32::MAX - 50; // crosses the wrap-around
        for step in 0..5_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match rng % 7 {
                0..=2 => {
                    // Runs: same time for a few requests, then a new time or a new kind.
                    let mut r = req(seq, step / 4);
                    if rng % 11 == 0 {
                        r.kind = RequestKind::Pause;
                    }
                    seq = seq.wrapping_add(1);
                    q.push(r);
                    model.push_back(r);
                }
                3 | 4 => assert_eq!(q.pop_front(), model.pop_front()),
                5 => {
                    let target = model
                        .get((rng >> 20) as usize % model.len().max(1))
                        .map_or(seq, |r| r.seq);
                    let want = model
                        .iter()
                        .position(|r| r.seq == target)
                        .and_then(|p| model.remove(p));
                    assert_eq!(q.remove_seq(target), want);
                }
                _ => assert_eq!(q.front(), model.front().copied()),
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(q.is_empty(), model.is_empty());
        }
        let rest: Vec<_> = q.drain().collect();
        assert_eq!(rest, Vec::from(model));
        assert!(q.is_empty() && q.pop_front().is_none());
    }

    #[test]
    fn a_pipeline_written_at_once_is_one_run() {
        let mut q = InFlightQueue::default();
        for s in 0..128 {
            q.push(req(s, 7));
        }
        assert_eq!((q.len(), q.runs.len()), (128, 1));
        q.push(req(128, 8));
        assert_eq!(q.runs.len(), 2);
        q.push_run(req(129, 8), 10);
        assert_eq!((q.len(), q.runs.len()), (139, 2));
        assert_eq!(q.front_run(), Some((req(0, 7), 128)));
        q.pop_front_n(3);
        assert_eq!(q.front_run(), Some((req(3, 7), 125)));
        q.push_run(req(0, 0), 0);
        assert_eq!(q.len(), 136);
        assert_eq!(q.remove_seq(5), Some(req(5, 7)));
        assert_eq!(q.front_run(), Some((req(3, 7), 2)));
        assert_eq!(q.runs.len(), 3);
        assert_eq!(q.remove_seq(5), None);
        assert_eq!(q.remove_seq(999), None);
    }
}
