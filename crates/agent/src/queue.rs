//! The agent's bounded queue of reports that the collector has not acknowledged yet.
//!
//! Reports stay here from sampling until their STAT_REPORT_ACK arrives. Each one is either in
//! flight (sent on the current connection) or waiting to be sent: after a reconnect every
//! report waits again, and a report the collector refused (503) waits for the next chance.
//! Past the capacity the oldest report is dropped and counted.

use crate::sampler::HostSample;
use std::collections::VecDeque;

/// One report waiting for its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The agent instance that took it: with NODE_ID and SEQUENCE, the report's identity.
    pub instance: u64,
    /// The SEQUENCE it is sent with.
    pub seq: u32,
    /// What it reports.
    pub sample: HostSample,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    pending: Pending,
    in_flight: bool,
}

/// Unacknowledged reports in sampling order, at most `capacity` of them.
#[derive(Debug)]
pub struct ResendQueue {
    /// INVARIANT: sampling order (sequences increase but for the wrap past `u32::MAX`);
    /// `len() <= capacity`.
    items: VecDeque<Entry>,
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

    /// Appends a newly sampled report, waiting to be sent; returns the oldest report when it
    /// had to be dropped to make room.
    pub fn push(&mut self, p: Pending) -> Option<Pending> {
        let dropped = if self.items.len() == self.capacity {
            self.dropped += 1;
            self.items.pop_front().map(|e| e.pending)
        } else {
            None
        };
        self.items.push_back(Entry {
            pending: p,
            in_flight: false,
        });
        dropped
    }

    /// Removes the report with sequence `seq` and returns it (`None` for a duplicate or
    /// unknown acknowledgement).
    pub fn ack(&mut self, seq: u32) -> Option<Pending> {
        // Acks come in order, so this is almost always the front.
        let i = self.items.iter().position(|e| e.pending.seq == seq)?;
        self.items.remove(i).map(|e| e.pending)
    }

    /// Marks the report with sequence `seq` as waiting to be sent again (it was refused, or
    /// could not be written).
    pub fn mark_waiting(&mut self, seq: u32) {
        if let Some(e) = self.items.iter_mut().find(|e| e.pending.seq == seq) {
            e.in_flight = false;
        }
    }

    /// Marks every report as waiting (the connection was lost: nothing is in flight).
    pub fn all_waiting(&mut self) {
        for e in &mut self.items {
            e.in_flight = false;
        }
    }

    /// Takes the reports waiting to be sent, oldest first, marking them in flight.
    pub fn take_waiting(&mut self) -> Vec<Pending> {
        self.items
            .iter_mut()
            .filter(|e| !e.in_flight)
            .map(|e| {
                e.in_flight = true;
                e.pending
            })
            .collect()
    }

    /// Every queued report, oldest first.
    pub fn all(&self) -> Vec<Pending> {
        self.items.iter().map(|e| e.pending).collect()
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

    fn p(seq: u32) -> Pending {
        Pending {
            instance: 1,
            seq,
            sample: HostSample {
                cpu_percent: 1,
                mem_percent: 2,
                timestamp_ms: u64::from(seq),
            },
        }
    }

    fn seqs(v: &[Pending]) -> Vec<u32> {
        v.iter().map(|p| p.seq).collect()
    }

    #[test]
    fn acks_remove_once_in_any_order() {
        let mut q = ResendQueue::new(10);
        for s in 1..=5 {
            assert_eq!(q.push(p(s)), None);
        }
        assert_eq!(q.ack(1), Some(p(1)));
        assert_eq!(q.ack(4), Some(p(4)));
        assert_eq!(q.ack(4), None, "a duplicate ack counts once");
        assert_eq!(q.ack(99), None);
        assert_eq!(seqs(&q.take_waiting()), [2, 3, 5]);
    }

    #[test]
    fn reports_wait_until_taken_and_again_after_a_loss_or_a_refusal() {
        let mut q = ResendQueue::new(10);
        q.push(p(1));
        q.push(p(2));
        assert_eq!(seqs(&q.take_waiting()), [1, 2]);
        assert!(q.take_waiting().is_empty(), "in flight");
        q.push(p(3));
        q.mark_waiting(1);
        assert_eq!(seqs(&q.take_waiting()), [1, 3]);
        q.all_waiting();
        assert_eq!(seqs(&q.take_waiting()), [1, 2, 3]);
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
        assert_eq!(seqs(&q.take_waiting()), [3, 4, 5]);
    }
}
