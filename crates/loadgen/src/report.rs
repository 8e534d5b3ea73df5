//! The final report: built from a run's merged stats, written as JSON (with a schema version)
//! and read back by `compare` and `merge`. [`crate::table`] prints it and [`crate::summary`]
//! says in a sentence what it measured.

use crate::fleet;
use crate::hist::EncodedHistogram;
use crate::run::{RunConfig, RunOutcome};
use crate::stats::{ErrorCounts, FromTarget, Stats};
use crate::timeline::Second;
use avp_proto::peer::RequestKind;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identifies the JSON document type.
pub const SCHEMA: &str = "avp-loadgen/run";
/// Bumped whenever a field changes meaning or disappears (adding a field does not bump it).
pub const SCHEMA_VERSION: u32 = 1;

/// The percentiles reported, as `(label, quantile)`.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// The run's parameters as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The target URL.
    pub target: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Open-loop rate, messages per second.
    pub rate: Option<f64>,
    /// Worker threads.
    pub threads: usize,
    /// Connections.
    pub connections: usize,
    /// Connections opened per second, if limited.
    pub connect_rate: Option<f64>,
    /// Most requests outstanding per connection.
    pub pipeline: usize,
    /// Message mix.
    pub mix: String,
    /// Attributes carried by each report (`full` or `minimal`).
    pub report_fields: String,
    /// Answer timeout, milliseconds.
    pub timeout_ms: f64,
    /// Requested sending time after the warmup, seconds (`null` with `requests`).
    pub duration_s: Option<f64>,
    /// Requested number of measured requests.
    pub requests: Option<u64>,
    /// Warmup excluded from the results, seconds.
    pub warmup_s: f64,
    /// Simulated agents, when the run was a fleet (`--agents`).
    #[serde(default)]
    pub agents: Option<usize>,
    /// An agent's reporting interval, seconds: the fleet's pace, and the interval the
    /// capacity in agents is stated at.
    #[serde(default = "one_second")]
    pub interval_s: f64,
    /// The part of each NODE_ID before its number.
    #[serde(default)]
    pub node_prefix: String,
    /// Distinct NODE_IDs cycled through (`--node-ids`), if not one per connection.
    #[serde(default)]
    pub node_ids: Option<usize>,
    /// Local source addresses of the connections (`any`: the kernel's choice).
    #[serde(default)]
    pub source_addrs: String,
    /// Worker threads of the node started in the loadgen's process (`--embedded`), if the
    /// target was one.
    #[serde(default)]
    pub embedded_node_workers: Option<usize>,
}

fn one_second() -> f64 {
    1.0
}

impl Params {
    /// The parameters as `(name, value)` rows for people, in a fixed order.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let ms = |v: f64| fmt_latency((v * 1e6) as u64);
        let mut rows = vec![("target", self.target.clone())];
        if let Some(n) = self.embedded_node_workers {
            rows.push((
                "embedded node",
                format!("{n} worker(s), in the loadgen's process"),
            ));
        }
        rows.push(("mode", self.mode.clone()));
        if let Some(n) = self.agents {
            rows.push(("agents", group(n as f64)));
        }
        rows.push(("interval", crate::table::fmt_secs(self.interval_s)));
        if let Some(r) = self.rate {
            rows.push(("rate", format!("{} msg/s", group(r))));
        }
        rows.push(("connections", group(self.connections as f64)));
        rows.push(("threads", self.threads.to_string()));
        rows.push((
            "connect rate",
            self.connect_rate
                .map_or("all at once".into(), |r| format!("{}/s", group(r))),
        ));
        rows.push(("pipeline", self.pipeline.to_string()));
        rows.push(("mix", self.mix.clone()));
        rows.push(("report fields", self.report_fields.clone()));
        rows.push((
            "node ids",
            match self.node_ids {
                Some(k) => format!("{k} cycled, {}-00000 ...", self.node_prefix),
                None => format!("{}-<connection>", self.node_prefix),
            },
        ));
        if !self.source_addrs.is_empty() {
            rows.push(("source addresses", self.source_addrs.clone()));
        }
        rows.push(("timeout", ms(self.timeout_ms)));
        match (self.duration_s, self.requests) {
            (_, Some(n)) => rows.push(("requests", group(n as f64))),
            (Some(d), None) => rows.push(("duration", crate::table::fmt_secs(d))),
            (None, None) => {}
        }
        rows.push(("warmup", crate::table::fmt_secs(self.warmup_s)));
        rows
    }
}

/// A latency distribution summary, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest value.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// 50th percentile.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p99_9_us: f64,
    /// 99.99th percentile.
    pub p99_99_us: f64,
    /// Largest value.
    pub max_us: f64,
}

impl LatencySummary {
    /// `us` (one of this summary's figures) as the tables print it, or `-` when there were no
    /// samples: a run with no answers has no latency, not a latency of zero.
    pub fn shown(&self, us: f64) -> String {
        if self.count == 0 {
            "-".into()
        } else {
            fmt_latency((us * 1e3) as u64)
        }
    }
}

impl LatencySummary {
    /// Summarises a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1_000.0;
        let q = |p| us(h.value_at_quantile(p));
        LatencySummary {
            count: h.len(),
            min_us: if h.is_empty() { 0.0 } else { us(h.min()) },
            mean_us: h.mean() / 1_000.0,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p99_9_us: q(0.999),
            p99_99_us: q(0.9999),
            max_us: us(h.max()),
        }
    }

    /// The reported percentiles in [`PERCENTILES`] order, then max.
    pub fn values(&self) -> [f64; 6] {
        [
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.p99_9_us,
            self.p99_99_us,
            self.max_us,
        ]
    }

    /// The value at a percentile label (`p50` ... `p99.99`, `max`), microseconds.
    pub fn at(&self, label: &str) -> Option<f64> {
        let i = PERCENTILES
            .iter()
            .map(|(l, _)| *l)
            .chain(["max"])
            .position(|l| l == label)?;
        Some(self.values()[i])
    }
}

/// Latency from the scheduled and from the actual send time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// From the scheduled send time (coordinated omission corrected).
    pub corrected: LatencySummary,
    /// From the actual send time.
    pub uncorrected: LatencySummary,
}

/// The full latency distributions, nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// From the scheduled send time.
    pub corrected: EncodedHistogram,
    /// From the actual send time.
    pub uncorrected: EncodedHistogram,
}

/// How a merged report was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merged {
    /// True when the rates are summed over the window all inputs share (the report's
    /// window); false when the inputs' windows do not overlap by a whole second, and each
    /// input's rate is over its own window.
    pub rates_over_overlap: bool,
    /// The runs it was made of.
    pub inputs: Vec<Input>,
}

/// One run a merged report was made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The file it was read from.
    pub file: String,
    /// Its parameters.
    pub params: Params,
    /// When its clock started, milliseconds since the Unix epoch.
    pub start_unix_ms: u64,
    /// Its measurement window, seconds.
    pub window_s: f64,
    /// Its measured requests sent.
    pub sent: u64,
    /// Its correct answers.
    pub ok: u64,
    /// Its correct answers per second over the window the inputs share.
    pub throughput: f64,
    /// Its corrected p99, microseconds.
    pub p99_us: f64,
    /// How busy its busiest load thread was.
    pub loadgen_busy: Option<f64>,
}

/// Every figure of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Parameters.
    pub params: Params,
    /// Length of the measurement window, seconds.
    pub window_s: f64,
    /// Measured requests sent.
    pub sent: u64,
    /// Measured requests sent, by kind.
    pub sent_by_kind: BTreeMap<String, u64>,
    /// Answers received to measured requests.
    pub answered: u64,
    /// Answers that passed every check.
    pub ok: u64,
    /// Answers to warmup requests, excluded from every other figure (absent from reports
    /// written before it was added).
    #[serde(default)]
    pub warmup_answered: u64,
    /// Correct answers per second over the window.
    pub throughput: f64,
    /// Requests sent per second over the window.
    pub send_rate: f64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Sum of `errors`.
    pub errors_total: u64,
    /// Latency summaries.
    pub latency: Latency,
    /// Peak resident memory of the loadgen process so far, KiB (Linux `VmHWM`; includes an
    /// `--embedded` node).
    pub peak_rss_kib: Option<u64>,
    /// The busiest load thread's CPU time over the measured window as a fraction of the
    /// window (see [`crate::busy`]); absent where the OS does not report it.
    #[serde(default)]
    pub loadgen_busy: Option<f64>,
    /// When the run's clock started, milliseconds since the Unix epoch (the warmup begins
    /// then; the measurement window `warmup_s` later).
    #[serde(default)]
    pub start_unix_ms: u64,
    /// True when the run was stopped before its planned end (the window is up to the stop).
    #[serde(default)]
    pub stopped_early: bool,
    /// PAUSE, RESUME and pushed reports the target sent.
    #[serde(default)]
    pub from_target: FromTarget,
    /// Why nothing was answered, when nothing was.
    #[serde(default)]
    pub no_answer: Option<String>,
    /// What the last failed connection attempt failed with (`connection refused`, `too many
    /// open files`), if one failed.
    #[serde(default)]
    pub connect_error: Option<String>,
    /// The throughput in agents: how many agents reporting every `params.interval_s` send
    /// that many correct answers' worth of reports.
    #[serde(default)]
    pub capacity_agents: f64,
    /// The share of answers that came within `params.interval_s` of their scheduled send,
    /// before the agent's next report was due.
    #[serde(default)]
    pub on_time: Option<f64>,
    /// The full latency distributions (absent from reports of older versions).
    #[serde(default)]
    pub histograms: Option<Histograms>,
    /// One record per second of the run, warmup and drain included.
    #[serde(default)]
    pub timeline: Vec<Second>,
    /// For a merged report (`avp-loadgen merge`), how it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<Merged>,
}

impl RunReport {
    /// Builds the report of a finished run.
    pub fn new(cfg: &RunConfig, out: &RunOutcome) -> Self {
        let s = &out.stats;
        let sent = s.sent_total();
        let throughput = s.ok as f64 / out.window_secs;
        RunReport {
            schema: SCHEMA.into(),
            schema_version: SCHEMA_VERSION,
            params: Params {
                target: cfg.target.to_string(),
                mode: if cfg.rate.is_some() { "open" } else { "closed" }.into(),
                rate: cfg.rate,
                threads: cfg.threads,
                connections: cfg.connections,
                connect_rate: cfg.connect_rate,
                pipeline: cfg.pipeline,
                mix: cfg.mix.to_string(),
                report_fields: cfg.report_fields.name().into(),
                timeout_ms: cfg.timeout.as_secs_f64() * 1e3,
                duration_s: cfg.requests.is_none().then_some(cfg.duration.as_secs_f64()),
                requests: cfg.requests,
                warmup_s: cfg.warmup.as_secs_f64(),
                agents: cfg.agents,
                interval_s: cfg.interval.as_secs_f64(),
                node_prefix: cfg.node_names.prefix.clone(),
                node_ids: cfg.node_names.cycle,
                source_addrs: cfg.source_addrs.to_string(),
                embedded_node_workers: None,
            },
            window_s: out.window_secs,
            sent,
            sent_by_kind: RequestKind::ALL
                .iter()
                .map(|k| (k.name().to_string(), s.sent[*k as usize]))
                .collect(),
            answered: s.answered,
            ok: s.ok,
            warmup_answered: s.warmup_answered,
            throughput,
            send_rate: sent as f64 / out.window_secs,
            errors: s.errors,
            errors_total: s.errors.total(),
            latency: Latency {
                corrected: LatencySummary::of(&s.corrected),
                uncorrected: LatencySummary::of(&s.uncorrected),
            },
            peak_rss_kib: peak_rss_kib(),
            loadgen_busy: s.busiest_thread,
            start_unix_ms: out.start_unix_ms,
            stopped_early: out.stopped,
            from_target: s.from_target,
            no_answer: no_answer(s, cfg),
            connect_error: s.connect_error.clone(),
            capacity_agents: fleet::agents_at(throughput, cfg.interval),
            on_time: fleet::on_time_share(&s.corrected, cfg.interval),
            histograms: Some(Histograms {
                corrected: EncodedHistogram::encode(&s.corrected),
                uncorrected: EncodedHistogram::encode(&s.uncorrected),
            }),
            timeline: out.timeline.clone(),
            merged: None,
        }
    }

    /// The corrected and uncorrected latency histograms; the error says why they cannot be
    /// had (a report of an older version has none).
    pub fn decode_histograms(&self) -> Result<(Histogram<u64>, Histogram<u64>), String> {
        let h = self
            .histograms
            .as_ref()
            .ok_or("the report carries no histograms (it was written by an older avp-loadgen)")?;
        Ok((h.corrected.decode()?, h.uncorrected.decode()?))
    }

    /// The measurement window as milliseconds since the Unix epoch, `(start, end)`.
    pub fn window_unix_ms(&self) -> (f64, f64) {
        let start = self.start_unix_ms as f64 + self.params.warmup_s * 1e3;
        (start, start + self.window_s * 1e3)
    }

    /// Reads a report written by `--json`, checking its schema and version; the error says
    /// what is wrong.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
        let version = v.get("schema_version").and_then(|s| s.as_u64());
        if schema != SCHEMA || version != Some(u64::from(SCHEMA_VERSION)) {
            return Err(format!(
                "not an {SCHEMA} version {SCHEMA_VERSION} report (schema {schema:?}, version {version:?})"
            ));
        }
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// The headline figures as `(name, value)`, the rows `compare` puts side by side.
    pub fn figures(&self) -> Vec<(String, f64)> {
        let mut rows = vec![
            ("throughput msg/s".to_string(), self.throughput),
            ("sent".into(), self.sent as f64),
            ("answered".into(), self.answered as f64),
            ("ok".into(), self.ok as f64),
            ("errors".into(), self.errors_total as f64),
        ];
        for (name, l) in [
            ("corrected", &self.latency.corrected),
            ("uncorrected", &self.latency.uncorrected),
        ] {
            let labels = PERCENTILES.iter().map(|(p, _)| *p).chain(["max"]);
            for (label, v) in labels.zip(l.values()) {
                rows.push((format!("{name} {label} ms"), v / 1e3));
            }
        }
        rows
    }
}

/// Why a run got no answer at all, in words; `None` when something was answered.
fn no_answer(s: &Stats, cfg: &RunConfig) -> Option<String> {
    if s.answered > 0 {
        return None;
    }
    let e = &s.errors;
    let connects = match (e.connect_failures, &s.connect_error) {
        (0, _) => String::new(),
        (n, Some(why)) => format!("{} connection attempts failed ({why})", group(n as f64)),
        (n, None) => format!("{} connection attempts failed", group(n as f64)),
    };
    let why = if s.sent_total() == 0 && !connects.is_empty() {
        format!(
            "no connection to {} could be opened: {connects}",
            cfg.target
        )
    } else if s.sent_total() == 0 {
        "nothing was sent in the measurement window".to_string()
    } else if e.timeouts > 0 {
        format!(
            "{} requests timed out: no answer came within --timeout {}",
            group(e.timeouts as f64),
            fmt_latency(crate::clock::nanos(cfg.timeout))
        )
    } else if e.aborted > 0 || e.disconnects > 0 {
        format!(
            "the target closed the connections before answering ({} requests aborted)",
            group(e.aborted as f64)
        )
    } else {
        "the target answered none of the requests".to_string()
    };
    Some(if connects.is_empty() || s.sent_total() == 0 {
        why
    } else {
        format!("{why}; {connects}")
    })
}

/// This process's peak resident set size in KiB, where `/proc/self/status` exists.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A nanosecond latency with a unit that keeps three or four significant digits.
pub fn fmt_latency(ns: u64) -> String {
    let v = ns as f64;
    if v < 1e6 {
        format!("{:.1}us", v / 1e3)
    } else if v < 1e9 {
        format!("{:.3}ms", v / 1e6)
    } else {
        format!("{:.3}s", v / 1e9)
    }
}

/// A number rounded to an integer with thousands separators.
pub fn group(v: f64) -> String {
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && out != "0" {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(group(1234567.4), "1,234,567");
        assert_eq!(group(999.0), "999");
        assert_eq!(group(0.2), "0");
        assert_eq!(fmt_latency(45_100), "45.1us");
        assert_eq!(fmt_latency(1_234_567), "1.235ms");
        assert_eq!(fmt_latency(2_000_000_000), "2.000s");
    }
}
