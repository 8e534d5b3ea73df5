//! What a run or a sweep tells its caller while it goes: the live view and the plain progress
//! lines of the binary are [`Observer`]s.

use crate::sweep::{Step, StepPlan};
use crate::timeline::Second;
use hdrhistogram::Histogram;

/// Receives a run's seconds as they complete, and a sweep's steps.
pub trait Observer {
    /// A sweep step is about to run.
    fn on_step_start(&mut self, _plan: &StepPlan) {}
    /// A second of the current run is complete; `latency` holds the corrected latencies of
    /// the answers received in it (nanoseconds).
    fn on_second(&mut self, _second: &Second, _latency: &Histogram<u64>) {}
    /// A sweep step has ended.
    fn on_step_end(&mut self, _step: &Step) {}
}

/// Observes nothing.
impl Observer for () {}
