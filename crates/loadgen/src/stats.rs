//! What a run measures: counters, errors by kind, and latency histograms.
//!
//! Each worker owns a [`Stats`] and records into it without locks; the runner merges the
//! workers' stats at the end. Latencies are nanoseconds in HdrHistograms with three
//! significant digits, recorded both from the scheduled send time (corrected for coordinated
//! omission) and from the actual send time (uncorrected).

use avp_proto::peer::{RequestKind, Verdict};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram tracks exactly (one hour); larger values are clamped to it.
pub const MAX_TRACKED_NS: u64 = 3_600 * 1_000_000_000;

/// A latency histogram in nanoseconds, 1 ns to one hour, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("valid histogram bounds")
}

/// Errors and anomalies, by kind. Every answer that is not [`Verdict::Ok`] and every request
/// that gets no answer lands in exactly one request-level field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Answers of the wrong type (or a COMMAND_RESPONSE code that is neither 200 nor 4xx/5xx).
    pub wrong_type: u64,
    /// Answers whose SEQUENCE is missing or is not the request's.
    pub seq_mismatch: u64,
    /// COMMAND_RESPONSE answers with a 4xx code.
    pub status_4xx: u64,
    /// COMMAND_RESPONSE answers with a 5xx code.
    pub status_5xx: u64,
    /// Well-framed answers that are not valid messages.
    pub invalid: u64,
    /// Requests with no answer within `--timeout` (for UDP: datagrams counted as lost).
    pub timeouts: u64,
    /// Requests outstanding on a connection that closed.
    pub aborted: u64,
    /// Answers that arrived after their request had timed out (UDP).
    pub late: u64,
    /// Answers to no outstanding request.
    pub unsolicited: u64,
    /// Byte streams that could not be split into frames (the connection was closed).
    pub framing: u64,
    /// Connections closed by the peer or by an IO error.
    pub disconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
}

impl ErrorCounts {
    /// Counts `n` answers that checking found `v`; `Verdict::Ok` counts nothing.
    pub fn record(&mut self, v: Verdict, n: u64) {
        match v {
            Verdict::Ok => {}
            Verdict::Invalid => self.invalid += n,
            Verdict::SeqMismatch => self.seq_mismatch += n,
            Verdict::Status4xx => self.status_4xx += n,
            Verdict::Status5xx => self.status_5xx += n,
            // WrongType, and any verdict this version does not know.
            _ => self.wrong_type += n,
        }
    }

    /// Requests that failed: answered wrongly, or not answered at all.
    pub fn failed_requests(&self) -> u64 {
        self.wrong_type
            + self.seq_mismatch
            + self.status_4xx
            + self.status_5xx
            + self.invalid
            + self.timeouts
            + self.aborted
    }

    /// Every counted error and anomaly.
    pub fn total(&self) -> u64 {
        self.rows().iter().map(|(_, n)| n).sum()
    }

    /// The fields as `(name, count)` rows, in report order.
    pub fn rows(&self) -> [(&'static str, u64); 12] {
        [
            ("wrong_type", self.wrong_type),
            ("seq_mismatch", self.seq_mismatch),
            ("status_4xx", self.status_4xx),
            ("status_5xx", self.status_5xx),
            ("invalid", self.invalid),
            ("timeouts", self.timeouts),
            ("aborted", self.aborted),
            ("late", self.late),
            ("unsolicited", self.unsolicited),
            ("framing", self.framing),
            ("disconnects", self.disconnects),
            ("connect_failures", self.connect_failures),
        ]
    }

    /// Adds another set of counts to this one.
    pub fn add(&mut self, o: &ErrorCounts) {
        self.wrong_type += o.wrong_type;
        self.seq_mismatch += o.seq_mismatch;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.invalid += o.invalid;
        self.timeouts += o.timeouts;
        self.aborted += o.aborted;
        self.late += o.late;
        self.unsolicited += o.unsolicited;
        self.framing += o.framing;
        self.disconnects += o.disconnects;
        self.connect_failures += o.connect_failures;
    }
}

/// What the target sent of its own accord: PAUSE and RESUME, which the loadgen obeys, and pushed
/// reports, which its sessions acknowledge. None of these is an error.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromTarget {
    /// PAUSE commands received (answered 200 and obeyed).
    pub pauses: u64,
    /// RESUME commands received (answered 200).
    pub resumes: u64,
    /// Reports the target pushed (acknowledged).
    pub pushed: u64,
    /// Measured requests not sent because their connection was paused when they were due.
    pub skipped_while_paused: u64,
}

impl FromTarget {
    /// Adds another set of counts to this one.
    pub fn add(&mut self, o: &FromTarget) {
        self.pauses += o.pauses;
        self.resumes += o.resumes;
        self.pushed += o.pushed;
        self.skipped_while_paused += o.skipped_while_paused;
    }
}

/// Everything one worker measured inside the measurement window.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Requests sent, by [`RequestKind`] discriminant.
    pub sent: [u64; RequestKind::ALL.len()],
    /// Answers received for measured requests (right or wrong).
    pub answered: u64,
    /// Answers that passed every check.
    pub ok: u64,
    /// Answers to warmup requests, which no other figure includes.
    pub warmup_answered: u64,
    /// The busiest load thread's CPU time over the measured window, as a fraction of it
    /// (see [`crate::busy`]); `None` where the OS does not report thread CPU time.
    pub busiest_thread: Option<f64>,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// What the target sent of its own accord.
    pub from_target: FromTarget,
    /// What the last failed connection attempt failed with.
    pub connect_error: Option<String>,
    /// Clock time at which sending ended: the planned end, or earlier when the run was stopped.
    pub send_end: u64,
    /// Latency from the scheduled send time (equal to the actual send time in closed loop).
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time.
    pub uncorrected: Histogram<u64>,
    /// Clock time of the last answer or timeout that ended a measured request.
    pub last_done: u64,
    /// A run of equal closed-loop latencies not yet in `corrected`: (value, count).
    pending: (u64, u64),
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            sent: [0; RequestKind::ALL.len()],
            answered: 0,
            ok: 0,
            warmup_answered: 0,
            busiest_thread: None,
            errors: ErrorCounts::default(),
            from_target: FromTarget::default(),
            connect_error: None,
            send_end: 0,
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            last_done: 0,
            pending: (0, 0),
        }
    }
}

impl Stats {
    /// Total requests sent.
    pub fn sent_total(&self) -> u64 {
        self.sent.iter().sum()
    }

    /// Records the latencies of `n` answers received at `now` for requests scheduled at
    /// `scheduled` and sent at `sent_at` (all clock nanoseconds).
    #[inline]
    pub fn record_latency(&mut self, now: u64, scheduled: u64, sent_at: u64, n: u64) {
        self.corrected
            .saturating_record_n(now.saturating_sub(scheduled).max(1), n);
        self.uncorrected
            .saturating_record_n(now.saturating_sub(sent_at).max(1), n);
    }

    /// Records the latency of `n` answers in closed loop, where the scheduled and the actual
    /// send time are the same, so only the corrected histogram is written
    /// ([`Stats::finish_closed_loop`] copies it to the uncorrected one). Answers read together
    /// to requests written together have the same latency; such runs are recorded with one
    /// `record_n`, so call [`Stats::flush`] before reading `corrected`.
    #[inline]
    pub fn record_closed_loop_latency(&mut self, now: u64, sent_at: u64, n: u64) {
        let v = now.saturating_sub(sent_at).max(1);
        if v == self.pending.0 {
            self.pending.1 += n;
        } else {
            self.flush();
            self.pending = (v, n);
        }
    }

    /// Writes the pending run of equal closed-loop latencies into `corrected`.
    pub fn flush(&mut self) {
        let (v, n) = std::mem::take(&mut self.pending);
        if n > 0 {
            self.corrected.saturating_record_n(v, n);
        }
    }

    /// Completes a closed-loop measurement: uncorrected latency equals corrected latency.
    pub fn finish_closed_loop(&mut self) {
        self.flush();
        self.uncorrected = self.corrected.clone();
    }

    /// Adds another worker's stats to this one.
    pub fn merge(&mut self, o: &Stats) {
        for (a, b) in self.sent.iter_mut().zip(o.sent) {
            *a += b;
        }
        self.answered += o.answered;
        self.ok += o.ok;
        self.warmup_answered += o.warmup_answered;
        self.busiest_thread = match (self.busiest_thread, o.busiest_thread) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.errors.add(&o.errors);
        self.from_target.add(&o.from_target);
        if self.connect_error.is_none() {
            self.connect_error.clone_from(&o.connect_error);
        }
        self.send_end = self.send_end.max(o.send_end);
        self.corrected
            .add(&o.corrected)
            .expect("same histogram bounds");
        self.uncorrected
            .add(&o.uncorrected)
            .expect("same histogram bounds");
        self.last_done = self.last_done.max(o.last_done);
    }
}

/// The counts of one stretch of a run (a second of its time series): what was sent and
/// answered, errors by kind, and the connections open at its end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Requests sent (measured or not).
    pub sent: u64,
    /// Answers received.
    pub answered: u64,
    /// Answers received that passed every check.
    pub ok: u64,
    /// Errors counted, by kind.
    pub errors: ErrorCounts,
    /// Requests not sent because the target had paused their connection.
    pub skipped_while_paused: u64,
    /// Open connections at the end.
    pub connections: u64,
}

impl Counts {
    /// Adds counts of the same stretch of time (another worker's, another host's).
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.ok += o.ok;
        self.errors.add(&o.errors);
        self.skipped_while_paused += o.skipped_while_paused;
        self.connections += o.connections;
    }
}

/// One worker's figures for one second of the run (or, for its last, the part of a second up
/// to the worker's end): the raw material of the run's time series.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Which second since the start this covers (1 = the first).
    pub tick: u64,
    /// Clock time at its end: `tick` seconds, or earlier for a worker's last interval.
    pub end: u64,
    /// True for the worker's last interval, after which it sends no more.
    pub last: bool,
    /// What happened in it.
    pub counts: Counts,
    /// Corrected latencies of the answers received in it (measured or warmup).
    pub latency: Histogram<u64>,
}

impl Interval {
    /// An empty interval for `tick`.
    pub fn new(tick: u64) -> Self {
        Interval {
            tick,
            end: tick.saturating_mul(crate::clock::NANOS_PER_SEC),
            last: false,
            counts: Counts::default(),
            latency: new_histogram(),
        }
    }

    /// Adds another worker's interval for the same tick.
    pub fn merge(&mut self, o: &Interval) {
        self.end = self.end.max(o.end);
        self.counts.add(&o.counts);
        self.latency.add(&o.latency).expect("same histogram bounds");
    }
}
