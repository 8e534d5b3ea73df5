//! How busy a load thread was: its CPU time (user + system) over the measured window, less
//! the time it spent spinning idle, as a fraction of the window's length.
//!
//! Open loop spins (polls without blocking) while its next send is under a millisecond away,
//! because epoll cannot sleep that precisely; a spin that finds nothing to do is waiting, not
//! work, so the worker reports it with [`BusyMeter::idle`].
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
    /// Time spent spinning idle since the window opened, nanoseconds.
    idle_ns: u64,
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

    /// Counts `ns` of clock time spent spinning without finding work, while the window is open.
    pub fn idle(&mut self, ns: u64) {
        if self.start.is_some() {
            self.idle_ns += ns;
        }
    }

    /// Closes the window at `now` if it is open, and returns the fraction.
    pub fn close(&mut self, now: u64) -> Option<f64> {
        if let Some((cpu0, t0)) = self.start.take() {
            let wall = now.saturating_sub(t0);
            self.busy = thread_cpu()
                .and_then(|cpu1| busy_fraction(cpu1.saturating_sub(cpu0), self.idle_ns, wall));
        }
        self.busy
    }
}

/// CPU time `cpu`, less `idle_ns` spent spinning idle, over `wall_ns` of clock time, as a
/// fraction (`None` for an empty window). A spin preempted by the OS is clock time without CPU
/// time, so the difference is floored at zero.
pub fn busy_fraction(cpu: Duration, idle_ns: u64, wall_ns: u64) -> Option<f64> {
    let work = (cpu.as_nanos() as f64 - idle_ns as f64).max(0.0);
    (wall_ns > 0).then(|| work / wall_ns as f64)
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
        let ms = 1_000_000;
        assert_eq!(
            busy_fraction(Duration::from_millis(500), 0, 1000 * ms),
            Some(0.5)
        );
        // 900 ms on the CPU of which 600 ms spinning idle: 300 ms of work.
        assert_eq!(
            busy_fraction(Duration::from_millis(900), 600 * ms, 1000 * ms),
            Some(0.3)
        );
        assert_eq!(
            busy_fraction(Duration::from_millis(1), 5 * ms, 10 * ms),
            Some(0.0)
        );
        assert_eq!(busy_fraction(Duration::ZERO, 0, 0), None);
    }

    #[test]
    fn idle_counts_only_inside_the_window() {
        let mut m = BusyMeter::default();
        m.idle(1_000);
        assert_eq!(m.idle_ns, 0);
        m.observe(10, 0, false);
        m.idle(1_000);
        assert_eq!(m.idle_ns, 1_000);
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
