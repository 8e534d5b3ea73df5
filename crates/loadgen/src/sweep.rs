//! Capacity sweep: open-loop runs at geometrically rising rates (or fleets of geometrically
//! more agents) until the latency SLO or the error budget breaks; the answer is the highest
//! rate, and the most agents, that met both.

use crate::error::Error;
use crate::fleet;
use crate::observe::Observer;
use crate::report::{fmt_latency, group, RunReport};
use crate::run::{run, RunConfig};
use crate::table::fmt_secs;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::str::FromStr;

/// Identifies the sweep JSON document.
pub const SWEEP_SCHEMA: &str = "avp-loadgen/sweep";

/// One latency objective: a percentile label (`p50` ... `p99.99`, `max`) and its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Percentile label as in the report.
    pub percentile: String,
    /// Limit in microseconds (on corrected latency).
    pub limit_us: f64,
}

impl FromStr for Slo {
    type Err = String;

    /// Parses `p99=5ms` (any duration `avp_units::parse_duration` reads).
    fn from_str(s: &str) -> Result<Self, String> {
        let (p, limit) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected PERCENTILE=LIMIT, e.g. p99=5ms"))?;
        let p = p.trim();
        let known = crate::report::PERCENTILES.iter().any(|(l, _)| *l == p) || p == "max";
        if !known {
            return Err(format!("{p:?}: use p50, p90, p99, p99.9, p99.99 or max"));
        }
        let limit = avp_units::parse_duration(limit).map_err(|e| e.to_string())?;
        Ok(Slo {
            percentile: p.to_string(),
            limit_us: limit.as_secs_f64() * 1e6,
        })
    }
}

/// How to step the rate and what counts as broken.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Rate of the first step, messages per second (ignored when `start_agents` is set).
    pub start_rate: f64,
    /// Agents of the first step, when the sweep steps a fleet (`--sweep --agents N`): each
    /// step is a fleet of that many agents at the base configuration's interval.
    pub start_agents: Option<usize>,
    /// Each step's rate is the previous one times this.
    pub factor: f64,
    /// Most steps.
    pub max_steps: usize,
    /// Latency objectives, all of which must hold.
    pub slo: Vec<Slo>,
    /// Largest tolerated fraction of failed requests.
    pub error_budget: f64,
}

/// What a sweep step is about to offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPlan {
    /// Its number, 1 for the first.
    pub number: usize,
    /// The most steps the sweep may run.
    pub of: usize,
    /// Offered rate, messages per second.
    pub rate: f64,
    /// Simulated agents, in a fleet sweep.
    pub agents: Option<usize>,
}

/// One step of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Its number, 1 for the first.
    #[serde(default)]
    pub number: usize,
    /// Offered rate, messages per second.
    pub rate: f64,
    /// Simulated agents, in a fleet sweep.
    #[serde(default)]
    pub agents: Option<usize>,
    /// What was broken, if anything.
    pub broken: Option<String>,
    /// The step's full report.
    pub report: RunReport,
}

/// The whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Always [`SWEEP_SCHEMA`].
    pub schema: String,
    /// [`crate::report::SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The objectives.
    pub slo: Vec<Slo>,
    /// Largest tolerated fraction of failed requests.
    pub error_budget: f64,
    /// Every step run, in order; only the last can be broken.
    pub steps: Vec<Step>,
    /// The highest rate that met the SLO and the error budget.
    pub best_rate: Option<f64>,
    /// An agent's reporting interval, seconds, at which `best_agents` is stated.
    #[serde(default)]
    pub interval_s: f64,
    /// The most agents reporting every `interval_s` that met the SLO and the error budget:
    /// the agents of the best step in a fleet sweep, the best rate times the interval
    /// otherwise.
    #[serde(default)]
    pub best_agents: Option<f64>,
}

/// What a report breaks, if anything: an SLO (on corrected latency) or the error budget; a
/// step stopped early is never a pass.
pub fn judge(report: &RunReport, slo: &[Slo], error_budget: f64) -> Option<String> {
    if report.stopped_early {
        return Some("stopped before its end".into());
    }
    if let Some(why) = &report.no_answer {
        return Some(format!("nothing answered: {why}"));
    }
    let failed = report.errors.failed_requests() as f64 / report.sent.max(1) as f64;
    if failed > error_budget || report.sent == 0 {
        return Some(format!(
            "errors {:.3}% > budget {:.3}%",
            failed * 100.0,
            error_budget * 100.0
        ));
    }
    slo.iter().find_map(|s| {
        let v = report.latency.corrected.at(&s.percentile)?;
        (v > s.limit_us).then(|| {
            format!(
                "{} {} > {}",
                s.percentile,
                fmt_latency((v * 1e3) as u64),
                fmt_latency((s.limit_us * 1e3) as u64)
            )
        })
    })
}

impl SweepConfig {
    /// Refuses settings no sweep can run with.
    pub fn check(&self) -> Result<(), Error> {
        if self.factor <= 1.0 {
            return Err(Error::Config("--sweep-factor must be above 1".into()));
        }
        if !(self.start_rate.is_finite() && self.start_rate > 0.0) {
            return Err(Error::Config(
                "--sweep-start must be a positive rate".into(),
            ));
        }
        Ok(())
    }
}

/// Runs the sweep, telling `observer` of each step and of each second of it.
pub fn sweep(
    base: &RunConfig,
    cfg: &SweepConfig,
    observer: &mut dyn Observer,
) -> Result<SweepReport, Error> {
    cfg.check()?;
    let mut steps: Vec<Step> = Vec::new();
    for i in 0..cfg.max_steps {
        if base.stop.is_stopped() {
            break;
        }
        let mut run_cfg = base.clone();
        let scale = cfg.factor.powi(i as i32);
        match cfg.start_agents {
            Some(a) => fleet::configure(&mut run_cfg, (a as f64 * scale).round() as usize),
            None => run_cfg.rate = Some(cfg.start_rate * scale),
        }
        let plan = StepPlan {
            number: i + 1,
            of: cfg.max_steps,
            rate: run_cfg.rate.unwrap_or(cfg.start_rate),
            agents: run_cfg.agents,
        };
        observer.on_step_start(&plan);
        let outcome = run(&run_cfg, observer)?;
        let report = RunReport::new(&run_cfg, &outcome);
        let broken = judge(&report, &cfg.slo, cfg.error_budget);
        let step = Step {
            number: plan.number,
            rate: plan.rate,
            agents: plan.agents,
            broken,
            report,
        };
        observer.on_step_end(&step);
        let stop = step.broken.is_some();
        steps.push(step);
        if stop {
            break;
        }
    }
    let best = best_step(&steps);
    let best_rate = best.map(|s| s.rate);
    let best_agents = best.map(|s| match s.agents {
        Some(n) => n as f64,
        None => fleet::agents_at(s.rate, base.interval),
    });
    Ok(SweepReport {
        schema: SWEEP_SCHEMA.into(),
        schema_version: crate::report::SCHEMA_VERSION,
        slo: cfg.slo.clone(),
        error_budget: cfg.error_budget,
        steps,
        best_rate,
        interval_s: base.interval.as_secs_f64(),
        best_agents,
    })
}

/// The header of the per-step table.
pub fn table_header() -> String {
    format!(
        "{:>5} {:>9} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}  verdict",
        "step", "agents", "rate/s", "achieved/s", "p50", "p99", "p99.9", "errors", "loadgen"
    )
}

/// One row of the per-step table.
pub fn table_row(step: &Step) -> String {
    let r = &step.report;
    let l = &r.latency.corrected;
    // How busy the busiest load thread was: near 100 %, the step measured the loadgen too.
    let busy = r
        .loadgen_busy
        .map_or_else(|| "n/a".to_string(), |b| format!("{:.0}%", b * 100.0));
    format!(
        "{:>5} {:>9} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}  {}",
        step.number,
        group(step.agents.map_or(r.capacity_agents, |n| n as f64)),
        group(step.rate),
        group(r.throughput),
        l.shown(l.p50_us),
        l.shown(l.p99_us),
        l.shown(l.p99_9_us),
        group(r.errors.failed_requests() as f64),
        busy,
        step.broken.as_deref().unwrap_or("ok"),
    )
}

/// The step at the highest rate that met the objectives: the last of the passing steps
/// before the first that broke one.
fn best_step(steps: &[Step]) -> Option<&Step> {
    steps.iter().take_while(|s| s.broken.is_none()).last()
}

impl SweepReport {
    /// The step whose latency the sweep's percentile plot shows: the best one, or the last
    /// when none met the objectives.
    pub fn shown_step(&self) -> Option<&Step> {
        best_step(&self.steps).or(self.steps.last())
    }

    /// The closing summary.
    pub fn summary(&self) -> String {
        let mut t = String::new();
        let slo: Vec<String> = self
            .slo
            .iter()
            .map(|s| {
                format!(
                    "{}<={}",
                    s.percentile,
                    fmt_latency((s.limit_us * 1e3) as u64)
                )
            })
            .collect();
        let _ = write!(
            t,
            "SLO {} (corrected latency), error budget {:.3}%: ",
            if slo.is_empty() {
                "none".into()
            } else {
                slo.join(",")
            },
            self.error_budget * 100.0
        );
        let agents = self.best_agents.map_or(String::new(), |a| {
            format!(
                " = {} agents reporting every {}",
                group(a),
                fmt_secs(self.interval_s)
            )
        });
        match (self.best_rate, self.steps.last()) {
            (Some(best), Some(last)) if last.broken.is_some() => {
                let _ = write!(t, "highest rate meeting it: {} msg/s{agents}", group(best));
            }
            (Some(best), _) => {
                let _ = write!(
                    t,
                    "met up to the last step, {} msg/s{agents} (not broken yet)",
                    group(best)
                );
            }
            (None, _) => {
                let _ = write!(t, "no step met it");
            }
        }
        t
    }
}
