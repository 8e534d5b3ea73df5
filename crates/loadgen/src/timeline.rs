//! The run's time series: one record per second of the run's clock with what was sent and
//! answered in it, errors by kind, the connections open at its end and the corrected latency
//! of the answers received in it (percentiles, and the full histogram so that records of
//! several runs add up exactly).
//!
//! The load threads each hand the runner an [`Interval`] per second; [`Seconds`] merges them
//! into one [`Second`] once every thread still running has reported that second.

use crate::clock::NANOS_PER_SEC;
use crate::hist::EncodedHistogram;
use crate::stats::{Counts, Interval};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latency percentiles of one second, microseconds; `None` when nothing was answered in it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    /// 50th percentile.
    pub p50_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
    /// 99.9th percentile.
    pub p99_9_us: Option<f64>,
    /// Largest value.
    pub max_us: Option<f64>,
}

impl Tail {
    /// The percentiles of a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Tail::default();
        }
        let us = |ns: u64| Some(ns as f64 / 1e3);
        Tail {
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p99_9_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// One record of the time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the run's start at the end of this record.
    pub t_s: f64,
    /// Seconds it covers: 1, or less for the last record of a run.
    pub span_s: f64,
    /// True when it ended before the warmup did.
    pub warmup: bool,
    /// What happened in it.
    #[serde(flatten)]
    pub counts: Counts,
    /// Corrected latency of the answers received in it.
    #[serde(flatten)]
    pub tail: Tail,
    /// Those latencies, nanoseconds.
    pub histogram: EncodedHistogram,
}

impl Second {
    /// The record ending at `t_s` seconds after the start, covering `span_s` seconds.
    pub fn new(t_s: f64, span_s: f64, warmup: bool, counts: Counts, h: &Histogram<u64>) -> Self {
        Second {
            t_s,
            span_s,
            warmup,
            counts,
            tail: Tail::of(h),
            histogram: EncodedHistogram::encode(h),
        }
    }

    /// Correct answers per second in it.
    pub fn ok_rate(&self) -> f64 {
        self.counts.ok as f64 / self.span_s.max(1e-9)
    }

    /// Requests sent per second in it.
    pub fn sent_rate(&self) -> f64 {
        self.counts.sent as f64 / self.span_s.max(1e-9)
    }
}

/// Merges the load threads' intervals into seconds, in order.
#[derive(Debug)]
pub struct Seconds {
    threads: usize,
    measure_start: u64,
    pending: BTreeMap<u64, (usize, Interval)>,
    /// The last tick of each thread that has finished.
    finished: Vec<u64>,
}

impl Seconds {
    /// Merges the intervals of `threads` load threads whose measurement starts at clock time
    /// `measure_start`.
    pub fn new(threads: usize, measure_start: u64) -> Self {
        Seconds {
            threads,
            measure_start,
            pending: BTreeMap::new(),
            finished: Vec::new(),
        }
    }

    /// Takes one thread's interval; calls `on_second` for every second now complete, in order,
    /// with the record and its latency histogram.
    pub fn push(&mut self, iv: Interval, on_second: &mut impl FnMut(Second, Histogram<u64>)) {
        if iv.last {
            self.finished.push(iv.tick);
        }
        match self.pending.entry(iv.tick) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((1, iv));
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let entry = e.get_mut();
                entry.0 += 1;
                entry.1.merge(&iv);
            }
        }
        while let Some(entry) = self.pending.first_entry() {
            let tick = *entry.key();
            // Threads that ended before this tick will not report it.
            let gone = self.finished.iter().filter(|t| **t < tick).count();
            if entry.get().0 + gone < self.threads {
                return;
            }
            let (_, iv) = entry.remove();
            let (second, latency) = self.second(iv);
            on_second(second, latency);
        }
    }

    fn second(&self, iv: Interval) -> (Second, Histogram<u64>) {
        let start = (iv.tick - 1) * NANOS_PER_SEC;
        let secs = |ns: u64| ns as f64 / NANOS_PER_SEC as f64;
        let second = Second::new(
            secs(iv.end),
            secs(iv.end.saturating_sub(start)),
            iv.end <= self.measure_start,
            iv.counts,
            &iv.latency,
        );
        (second, iv.latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(tick: u64, sent: u64, last_at: Option<u64>) -> Interval {
        let mut iv = Interval::new(tick);
        iv.counts.sent = sent;
        iv.latency.record(1_000 * sent).unwrap();
        if let Some(end) = last_at {
            iv.end = end;
            iv.last = true;
        }
        iv
    }

    #[test]
    fn a_second_comes_out_once_every_running_thread_has_reported_it() {
        let mut s = Seconds::new(2, NANOS_PER_SEC);
        let mut out = Vec::new();
        let mut take = |sec: Second, h: Histogram<u64>| out.push((sec, h.len()));
        s.push(interval(1, 10, None), &mut take);
        s.push(interval(2, 20, None), &mut take);
        s.push(interval(1, 5, None), &mut take);
        // Thread B ends 0.5 s into the second second; thread A goes on to a third.
        s.push(interval(2, 1, Some(1_500_000_000)), &mut take);
        s.push(interval(3, 7, Some(2_250_000_000)), &mut take);
        let got: Vec<_> = out
            .iter()
            .map(|(sec, n)| (sec.t_s, sec.span_s, sec.warmup, sec.counts.sent, *n))
            .collect();
        assert_eq!(
            got,
            vec![
                (1.0, 1.0, true, 15, 2),
                (2.0, 1.0, false, 21, 2),
                (2.25, 0.25, false, 7, 1),
            ]
        );
        assert!(out[0]
            .0
            .tail
            .max_us
            .is_some_and(|us| (10.0..10.01).contains(&us)));
        assert_eq!(out[2].0.ok_rate(), 0.0);
        assert_eq!(out[2].0.sent_rate(), 28.0);
    }
}
