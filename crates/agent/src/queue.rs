//! The agent's bounded queue of reports that the collector has not acknowledged yet.
//!
//! Reports stay here from sampling until their STAT_REPORT_ACK arrives; after a reconnect they
//! are sent again, oldest first. Past the capacity the oldest report is dropped and counted.

use crate::sampler::HostSample;
use std::collections::VecDeque;

/// One report waiting for its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The SEQUENCE it is sent with.
    pub seq: u64,
    /// What it reports.
    pub sample: HostSample,
}

/// Unacknowledged reports in sampling order, at most `capacity` of them.
#[derive(Debug)]
pub struct ResendQueue {
    /// INVARIANT: sequences strictly increase from front to back; `len() <= capacity`.
    items: VecDeque<Pending>,
    capacity: usize,
    dropped: u64,
}

impl ResendQueue {
    /// An empty queue holding at most `capacity` reports (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ResendQueue {
            items: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            dropped: 0,
        }
    }

    /// Appends a report whose sequence is above every queued one; returns the oldest report
    /// when it had to be dropped to make room.
    pub fn push(&mut self, p: Pending) -> Option<Pending> {
        let dropped = if self.items.len() == self.capacity {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(p);
        dropped
    }

    /// Removes the report with sequence `seq`; returns true when it was queued (false for a
    /// duplicate or unknown acknowledgement).
    pub fn ack(&mut self, seq: u64) -> bool {
        // Acks come in order, so this is almost always the front.
        match self.items.binary_search_by_key(&seq, |p| p.seq) {
            Ok(i) => self.items.remove(i).is_some(),
            Err(_) => false,
        }
    }

    /// Queued reports, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.items.iter()
    }

    /// Number of queued reports.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when every report has been acknowledged (or dropped).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Reports dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64) -> Pending {
        Pending {
            seq,
            sample: HostSample {
                cpu_percent: 1,
                mem_percent: 2,
                timestamp_ms: seq,
            },
        }
    }

    #[test]
    fn acks_remove_once_in_any_order() {
        let mut q = ResendQueue::new(10);
        for s in 1..=5 {
            assert_eq!(q.push(p(s)), None);
        }
        assert!(q.ack(1));
        assert!(q.ack(4));
        assert!(!q.ack(4), "a duplicate ack counts once");
        assert!(!q.ack(99));
        let left: Vec<_> = q.iter().map(|p| p.seq).collect();
        assert_eq!(left, [2, 3, 5]);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts() {
        let mut q = ResendQueue::new(3);
        for s in 1..=3 {
            q.push(p(s));
        }
        assert_eq!(q.push(p(4)), Some(p(1)));
        assert_eq!(q.push(p(5)), Some(p(2)));
        assert_eq!((q.len(), q.dropped()), (3, 2));
        assert_eq!(q.iter().next(), Some(&p(3)));
    }
}
