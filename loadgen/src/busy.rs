//! How busy a load thread was: its CPU time (user + system) over the measured window, as a
//! fraction of the window's length.
//!
//! A thread well below 1 spent part of the window waiting for the target, so the target, not
//! the loadgen, set the pace. A thread at about 1 never waited: the figures may be the
//! loadgen's limit as much as the target's (more `--threads` tells which).

use cpu_time::ThreadTime;
use std::time::Duration;

/// Measures one thread's CPU time between the start and the end of the measured window.
#[derive(Debug, Default)]
pub struct BusyMeter {
    /// Thread CPU time and clock time when the window opened.
    start: Option<(Duration, u64)>,
    /// The fraction, once the window has closed.
    busy: Option<f64>,
}

impl BusyMeter {
    /// Called on the measuring thread at clock time `now`: opens the window once `now` reaches
    /// `measure_start`, and closes it once `window_over`.
    pub fn observe(&mut self, now: u64, measure_start: u64, window_over: bool) {
        if window_over {
            self.close(now);
        } else if self.start.is_none() && self.busy.is_none() && now >= measure_start {
            self.start = thread_cpu().map(|cpu| (cpu, now));
        }
    }

    /// Closes the window at `now` if it is open, and returns the fraction.
    pub fn close(&mut self, now: u64) -> Option<f64> {
        if let Some((cpu0, t0)) = self.start.take() {
            self.busy = thread_cpu()
                .and_then(|cpu1| busy_fraction(cpu1.saturating_sub(cpu0), now.saturating_sub(t0)));
        }
        self.busy
    }
}

/// CPU time `cpu` spent over `wall_ns` of clock time, as a fraction (`None` for an empty
/// window).
pub fn busy_fraction(cpu: Duration, wall_ns: u64) -> Option<f64> {
    (wall_ns > 0).then(|| cpu.as_nanos() as f64 / wall_ns as f64)
}

/// The calling thread's CPU time, where the OS reports it.
fn thread_cpu() -> Option<Duration> {
    ThreadTime::try_now().ok().map(|t| t.as_duration())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_of_the_window() {
        assert_eq!(
            busy_fraction(Duration::from_millis(500), 1_000_000_000),
            Some(0.5)
        );
        assert_eq!(busy_fraction(Duration::ZERO, 0), None);
    }

    #[test]
    fn a_spinning_thread_is_busy_and_a_sleeping_one_is_not() {
        let mut spin = BusyMeter::default();
        let clock = std::time::Instant::now();
        let now = || clock.elapsed().as_nanos() as u64;
        spin.observe(now(), 0, false);
        let cpu0 = thread_cpu().expect("thread CPU time on this OS");
        let mut x = 0u64;
        while thread_cpu().unwrap() - cpu0 < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let spun = spin.close(now()).unwrap();

        let mut sleep = BusyMeter::default();
        let t0 = now();
        sleep.observe(t0, t0, false);
        std::thread::sleep(Duration::from_millis(200));
        let slept = sleep.close(now()).unwrap();
        // A preempted spinner on a busy machine can lose much of its window; a sleeper uses
        // almost none of its own.
        assert!(slept < 0.2, "sleeping thread busy {slept}");
        assert!(spun > slept, "spinning {spun} vs sleeping {slept}");
    }
}
