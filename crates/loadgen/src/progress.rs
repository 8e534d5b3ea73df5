//! Plain progress lines, one per second of a run (and one per sweep step), for a terminal
//! that is not showing the live view or for a log file.

use crate::observe::Observer;
use crate::report::{fmt_latency, group};
use crate::sweep::{Step, StepPlan};
use crate::timeline::Second;
use hdrhistogram::Histogram;
use std::io::Write;

/// Writes a progress line per second (and per sweep step) to `out`.
#[derive(Debug)]
pub struct Progress<W: Write> {
    out: W,
    step: Option<StepPlan>,
}

impl<W: Write> Progress<W> {
    /// Progress lines written to `out`.
    pub fn new(out: W) -> Self {
        Progress { out, step: None }
    }

    /// The writer the lines went to.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Observer for Progress<W> {
    fn on_step_start(&mut self, plan: &StepPlan) {
        self.step = Some(*plan);
        let _ = writeln!(self.out, "{}: starting", step_label(plan));
    }

    fn on_second(&mut self, second: &Second, _latency: &Histogram<u64>) {
        let label = self.step.as_ref().map(step_label);
        let _ = writeln!(self.out, "{}", line(second, label.as_deref()));
    }

    fn on_step_end(&mut self, step: &Step) {
        let plan = self.step.take();
        let label = plan.as_ref().map_or_else(|| "step".to_string(), step_label);
        let _ = writeln!(
            self.out,
            "{label}: {} msg/s achieved, {}",
            group(step.report.throughput),
            step.broken.as_deref().unwrap_or("met the objectives")
        );
    }
}

/// `step 3/30 at 2,250 msg/s` (and the agents in a fleet sweep).
pub fn step_label(plan: &StepPlan) -> String {
    let agents = plan
        .agents
        .map_or(String::new(), |n| format!(" ({} agents)", group(n as f64)));
    format!(
        "step {}/{} at {} msg/s{agents}",
        plan.number,
        plan.of,
        group(plan.rate)
    )
}

/// The progress line of one second, prefixed by the sweep step's label when there is one.
pub fn line(s: &Second, step: Option<&str>) -> String {
    let q = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |us| fmt_latency((us * 1e3) as u64));
    format!(
        "{}[{:>6.1}s] sent {:>10}/s  answered {:>10}/s  p50 {:>9}  p99 {:>9}  errors {:>6}  conns {:>6}{}",
        step.map_or(String::new(), |l| format!("{l} ")),
        s.t_s,
        group(s.sent_rate()),
        group(s.counts.answered as f64 / s.span_s.max(1e-9)),
        q(s.tail.p50_us),
        q(s.tail.p99_us),
        group(s.counts.errors.total() as f64),
        group(s.counts.connections as f64),
        if s.warmup { "  (warmup)" } else { "" },
    ) + &if s.span_s < 0.999 {
        format!("  (last {:.3} s)", s.span_s)
    } else {
        String::new()
    }
}
