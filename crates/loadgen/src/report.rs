//! The final report: built from a run's merged stats, printed as an aligned table, written as
//! JSON (with a schema version), and read back by `compare`.

use crate::run::{RunConfig, RunOutcome};
use crate::stats::ErrorCounts;
use avp_proto::peer::RequestKind;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
}

impl RunReport {
    /// Builds the report of a finished run.
    pub fn new(cfg: &RunConfig, out: &RunOutcome) -> Self {
        let s = &out.stats;
        let sent = s.sent_total();
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
            throughput: s.ok as f64 / out.window_secs,
            send_rate: sent as f64 / out.window_secs,
            errors: s.errors,
            errors_total: s.errors.total(),
            latency: Latency {
                corrected: LatencySummary::of(&s.corrected),
                uncorrected: LatencySummary::of(&s.uncorrected),
            },
            peak_rss_kib: peak_rss_kib(),
            loadgen_busy: s.busiest_thread,
        }
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

    /// The aligned human-readable report.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut t = String::new();
        let mode = match p.rate {
            Some(r) => format!(
                "open loop at {} msg/s, at most {} outstanding per connection",
                group(r),
                p.pipeline
            ),
            None => format!("closed loop, {} outstanding per connection", p.pipeline),
        };
        let _ = writeln!(t, "avp-loadgen report  (schema {SCHEMA} v{SCHEMA_VERSION})");
        let _ = writeln!(t, "  target        {}", p.target);
        let _ = writeln!(t, "  load          {mode}");
        let _ = writeln!(
            t,
            "  connections   {} over {} thread(s){}",
            group(p.connections as f64),
            p.threads,
            p.connect_rate
                .map_or(String::new(), |r| format!(", connected at {}/s", group(r)))
        );
        let _ = writeln!(t, "  mix           {} ({} reports)", p.mix, p.report_fields);
        let _ = writeln!(
            t,
            "  window        {:.2} s measured, {:.2} s warmup excluded ({} answers), timeout {} ms",
            self.window_s,
            p.warmup_s,
            group(self.warmup_answered as f64),
            p.timeout_ms
        );
        let _ = writeln!(t);
        let pct = |n: u64| 100.0 * n as f64 / self.sent.max(1) as f64;
        let _ = writeln!(
            t,
            "  throughput    {:>14} msg/s (correct answers)",
            group(self.throughput)
        );
        let _ = writeln!(
            t,
            "  sent          {:>14} ({} msg/s)",
            group(self.sent as f64),
            group(self.send_rate)
        );
        let _ = writeln!(
            t,
            "  answered      {:>14} ({:.3}% of sent)",
            group(self.answered as f64),
            pct(self.answered)
        );
        let _ = writeln!(
            t,
            "  ok            {:>14} ({:.3}% of sent)",
            group(self.ok as f64),
            pct(self.ok)
        );
        let _ = writeln!(t, "  errors        {:>14}", group(self.errors_total as f64));
        for (name, n) in self.errors.rows() {
            if n > 0 {
                let _ = writeln!(t, "    {name:<16}{:>10}", group(n as f64));
            }
        }
        let _ = writeln!(t);
        let _ = write!(t, "  {:<12}", "latency");
        for (label, _) in PERCENTILES {
            let _ = write!(t, "{label:>11}");
        }
        let _ = writeln!(t, "{:>11}", "max");
        for (name, l) in [
            ("corrected", &self.latency.corrected),
            ("uncorrected", &self.latency.uncorrected),
        ] {
            let _ = write!(t, "  {name:<12}");
            for v in l.values() {
                let _ = write!(t, "{:>11}", fmt_latency((v * 1e3) as u64));
            }
            let _ = writeln!(t);
        }
        let _ = writeln!(t);
        if let Some(kib) = self.peak_rss_kib {
            let _ = writeln!(t, "  loadgen peak RSS {:.1} MiB", kib as f64 / 1024.0);
        }
        if let Some(busy) = self.loadgen_busy {
            let _ = writeln!(
                t,
                "  loadgen busiest thread on CPU {:.0} % of the window{}",
                busy * 100.0,
                if busy >= SATURATED {
                    " (it hardly waited: the loadgen may have set the pace; try more --threads)"
                } else {
                    ""
                }
            );
        }
        if p.mode == "closed" {
            let _ = writeln!(
                t,
                "  (closed loop: each request is sent when scheduled, so both rows agree)"
            );
        }
        t
    }
}

/// A load thread at least this busy may have set the pace rather than the target.
const SATURATED: f64 = 0.95;

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
