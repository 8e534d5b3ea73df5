//! Fleet simulation (`--agents N --interval 1s`): N connections that each behave like an avpd
//! agent, one full report per interval on a schedule spread evenly over the interval, and the
//! capacity of a run expressed in such agents.
//!
//! An agent is an open-loop connection: with N agents every `interval`, the run's schedule has
//! N / interval slots per second and connection i owns slots i, i + N, ..., so agent i reports
//! at `i * interval / N` into every interval. What makes it an agent beyond that (its NODE_ID,
//! obeying PAUSE and RESUME, answering what the node sends) every connection of the loadgen
//! does; see [`crate::request`] and [`crate::conn`].

use crate::mix::Mix;
use crate::request::ReportFields;
use crate::run::RunConfig;
use hdrhistogram::Histogram;
use std::time::Duration;

/// Makes `cfg` a fleet of `agents` agents, each sending one full report every `cfg.interval`.
pub fn configure(cfg: &mut RunConfig, agents: usize) {
    cfg.agents = Some(agents);
    cfg.connections = agents;
    cfg.rate = Some(agents as f64 / cfg.interval.as_secs_f64());
    cfg.mix = Mix::reports_only();
    cfg.report_fields = ReportFields::Full;
}

/// How many agents reporting every `interval` send `rate` messages per second.
pub fn agents_at(rate: f64, interval: Duration) -> f64 {
    rate * interval.as_secs_f64()
}

/// The share of the answers in `corrected` (nanoseconds from the scheduled send) that came
/// within `interval`, before the agent's next report was due; `None` without answers.
pub fn on_time_share(corrected: &Histogram<u64>, interval: Duration) -> Option<f64> {
    if corrected.is_empty() {
        return None;
    }
    let limit = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    let late = corrected.count_between(limit.saturating_add(1), u64::MAX);
    Some(1.0 - late as f64 / corrected.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn agents_and_their_schedule() {
        assert_eq!(agents_at(19_000.0, Duration::from_secs(1)), 19_000.0);
        assert_eq!(agents_at(500.0, Duration::from_secs(10)), 5_000.0);
        let mut h = new_histogram();
        assert_eq!(on_time_share(&h, Duration::from_secs(1)), None);
        h.record_n(200_000, 99).unwrap();
        h.record(3_000_000_000).unwrap();
        assert_eq!(on_time_share(&h, Duration::from_secs(1)), Some(0.99));
    }
}
