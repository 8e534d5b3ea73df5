//! A limit on log lines that peers cause (framing errors, failed authentication), so that a
//! hostile peer cannot flood the node's log: a few lines per second, then one line saying how
//! many were left out.

use std::time::{Duration, Instant};

/// Lines allowed per window, and the window.
#[derive(Debug)]
pub struct LogLimit {
    per_window: u32,
    window: Duration,
    started: Option<Instant>,
    emitted: u32,
    suppressed: u64,
}

impl LogLimit {
    /// At most `per_window` lines in every `window`.
    pub const fn new(per_window: u32, window: Duration) -> LogLimit {
        LogLimit {
            per_window,
            window,
            started: None,
            emitted: 0,
            suppressed: 0,
        }
    }

    /// True when one more line may be logged at `now`. The first line of a new window is
    /// preceded by a warning with the number of lines the previous windows left out.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.started.is_none_or(|t| now >= t + self.window) {
            self.flush(now);
            self.started = Some(now);
            self.emitted = 0;
        }
        if self.emitted < self.per_window {
            self.emitted += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Once the window is over, logs how many lines it left out, if any: called on the
    /// caller's tick too, so that the count is told even when no further line comes. True
    /// when it logged.
    pub fn flush(&mut self, now: Instant) -> bool {
        if self.suppressed == 0 || self.started.is_some_and(|t| now < t + self.window) {
            return false;
        }
        tracing::warn!(
            "{} similar log lines about peers suppressed (at most {} per {:?})",
            self.suppressed,
            self.per_window,
            self.window
        );
        self.suppressed = 0;
        true
    }

    /// Lines left out in the current window.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

impl Default for LogLimit {
    /// Ten lines a second.
    fn default() -> Self {
        LogLimit::new(10, Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_limit_wait_for_the_next_window() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(2, Duration::from_secs(1));
        assert!(l.allow(t0) && l.allow(t0));
        assert!(!l.allow(t0 + Duration::from_millis(500)));
        assert_eq!(l.suppressed(), 1);
        assert!(l.allow(t0 + Duration::from_secs(1)));
        assert_eq!(l.suppressed(), 0);
    }

    #[test]
    fn the_count_left_out_is_told_once_the_window_is_over() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(1, Duration::from_secs(1));
        assert!(l.allow(t0));
        assert!(!l.allow(t0) && !l.allow(t0));
        assert!(
            !l.flush(t0 + Duration::from_millis(999)),
            "the window is not over"
        );
        assert!(l.flush(t0 + Duration::from_secs(1)));
        assert_eq!(l.suppressed(), 0);
        assert!(!l.flush(t0 + Duration::from_secs(2)), "told once");
    }
}
