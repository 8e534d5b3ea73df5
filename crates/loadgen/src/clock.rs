//! The run's monotonic clock: nanoseconds since the run started, as a plain `u64`.
//!
//! Every timestamp in the loadgen (schedules, send and receive times, deadlines) is a `u64`
//! from one [`Clock`], so arithmetic is cheap and the pacing code can be driven by a fake clock
//! in tests simply by passing other numbers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A monotonic clock anchored at the start of a run, plus the wall-clock time of that start so
/// that reports can carry Unix-epoch timestamps without a system call per message.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    epoch_ms_at_start: u64,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        let epoch_ms_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            start: Instant::now(),
            epoch_ms_at_start,
        }
    }

    /// Nanoseconds since the clock's zero.
    #[inline]
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The instant of clock time `t`.
    #[inline]
    pub fn instant(&self, t: u64) -> Instant {
        self.start + Duration::from_nanos(t)
    }

    /// The clock time of `instant` (zero for instants before the clock's zero).
    #[inline]
    pub fn at(&self, instant: Instant) -> u64 {
        nanos(instant.saturating_duration_since(self.start))
    }

    /// Milliseconds since the Unix epoch at the clock's zero.
    pub fn start_epoch_ms(&self) -> u64 {
        self.epoch_ms_at_start
    }

    /// Milliseconds since the Unix epoch at clock time `t`.
    #[inline]
    pub fn epoch_ms(&self, t: u64) -> u64 {
        self.epoch_ms_at_start + t / 1_000_000
    }
}

/// A duration as clock nanoseconds (saturating at `u64::MAX`, about 584 years).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
