//! Limits on log lines that peers cause, so that a hostile peer cannot flood the node's log:
//! [`LogLimit`] lets a few lines per second through (framing errors, failed authentication),
//! then one line saying how many were left out; [`CountedLine`] tells events of one kind
//! (refused handshakes, reports refused for a full store) in one line at most once per
//! interval, with their count.

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
    #[cfg(test)]
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

/// Events of one kind counted and told together: the first at once, the others with the next
/// line that is due, at most one line per interval.
#[derive(Debug)]
pub struct CountedLine {
    every: Duration,
    untold: u64,
    told_at: Option<Instant>,
}

impl CountedLine {
    /// At most one line every `every`.
    pub const fn new(every: Duration) -> CountedLine {
        CountedLine {
            every,
            untold: 0,
            told_at: None,
        }
    }

    /// Adds `n` events at `now` (0 on a tick, so that the last ones are told too); the number
    /// of events to tell now, when a line is due.
    pub fn note(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.untold += n;
        if self.untold == 0 || self.told_at.is_some_and(|t| now < t + self.every) {
            return None;
        }
        self.told_at = Some(now);
        Some(std::mem::take(&mut self.untold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_events_are_told_at_once_then_at_most_once_per_interval_and_none_are_left_out() {
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        let mut line = CountedLine::new(every);
        assert_eq!(line.note(0, t0), None, "nothing happened, nothing to tell");
        assert_eq!(line.note(3, t0), Some(3), "the first are told at once");
        assert_eq!(line.note(5, t0 + Duration::from_secs(1)), None);
        assert_eq!(line.note(0, t0 + Duration::from_secs(9)), None);
        assert_eq!(
            line.note(0, t0 + every),
            Some(5),
            "told on a later tick even when no more come"
        );
        assert_eq!(line.note(0, t0 + every * 3), None);
    }

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
