//! Reconnect delays: exponential backoff with jitter.
//!
//! The delay doubles after every failed attempt, from [`MIN_DELAY`] up to [`MAX_DELAY`], and each
//! delay is drawn at random from its upper half so that many clients cut off by the same outage
//! do not all come back in the same instant.

use std::time::Duration;

/// First reconnect delay (before jitter).
pub const MIN_DELAY: Duration = Duration::from_millis(100);
/// Largest reconnect delay (before jitter).
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// Exponential backoff state of one link.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// The un-jittered delay the next failure will use.
    current: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Backoff from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            current: min,
            rng: fastrand::Rng::new(),
        }
    }

    /// The delay before the next attempt; doubles the following one.
    ///
    /// The result lies in `[d / 2, d]` where `d` is the current un-jittered delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current;
        self.current = (d * 2).min(self.max);
        let half = d / 2;
        let spread = u64::try_from((d - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(self.rng.u64(0..=spread))
    }

    /// Starts again from the smallest delay (after a successful connection).
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(MIN_DELAY, MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let mut ceiling = MIN_DELAY;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} not in {ceiling:?}/2.."
            );
            ceiling = (ceiling * 2).min(MAX_DELAY);
        }
        assert_eq!(ceiling, MAX_DELAY);
        b.reset();
        assert!(b.next_delay() <= MIN_DELAY);
    }

    #[test]
    fn jitter_spreads_clients() {
        let delays: std::collections::HashSet<_> =
            (0..20).map(|_| Backoff::default().next_delay()).collect();
        assert!(delays.len() > 1, "twenty clients drew the same delay");
    }
}
