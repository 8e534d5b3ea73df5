//! The report as an aligned table for people, as a run prints it on stdout.

use crate::report::SCHEMA_VERSION;
use crate::report::{fmt_latency, group, LatencySummary, RunReport, PERCENTILES, SCHEMA};
use std::fmt::Write as _;

/// A load thread at least this busy may have set the pace rather than the target.
pub const SATURATED: f64 = 0.95;

impl RunReport {
    /// The aligned human-readable report.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut t = String::new();
        let _ = writeln!(t, "avp-loadgen report  (schema {SCHEMA} v{SCHEMA_VERSION})");
        let _ = writeln!(t, "  target        {}", p.target);
        let _ = writeln!(t, "  load          {}", load_line(self));
        let _ = writeln!(
            t,
            "  connections   {} over {} thread(s){}{}",
            group(p.connections as f64),
            p.threads,
            p.connect_rate
                .map_or(String::new(), |r| format!(", connected at {}/s", group(r))),
            if p.source_addrs.is_empty() || p.source_addrs == "any" {
                String::new()
            } else {
                format!(", from {}", p.source_addrs)
            }
        );
        let names = match p.node_ids {
            Some(k) => format!(
                "{} NODE_IDs {}-00000 ... cycled",
                group(k as f64),
                p.node_prefix
            ),
            None => format!("NODE_ID {}-<connection>", p.node_prefix),
        };
        let _ = writeln!(
            t,
            "  mix           {} ({} reports, {names})",
            p.mix, p.report_fields
        );
        let _ = writeln!(
            t,
            "  window        {:.2} s measured{}, {:.2} s warmup excluded ({} answers), timeout {} ms",
            self.window_s,
            if self.stopped_early { " (stopped early)" } else { "" },
            p.warmup_s,
            group(self.warmup_answered as f64),
            p.timeout_ms
        );
        for i in self.merged.iter().flat_map(|m| &m.inputs) {
            let _ = writeln!(
                t,
                "  input         {}: {}, {} connections, {} msg/s, p99 {}",
                i.file,
                i.params.target,
                group(i.params.connections as f64),
                group(i.throughput),
                fmt_latency((i.p99_us * 1e3) as u64)
            );
        }
        let _ = writeln!(t);
        if let Some(why) = &self.no_answer {
            let _ = writeln!(t, "  NO ANSWERS    {why}");
        }
        let pct = |n: u64| 100.0 * n as f64 / self.sent.max(1) as f64;
        let _ = writeln!(
            t,
            "  throughput    {:>14} msg/s (correct answers) = {} agents reporting every {}",
            group(self.throughput),
            group(self.capacity_agents),
            fmt_secs(p.interval_s)
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
        if let (Some(share), Some(_)) = (self.on_time, p.agents) {
            let _ = writeln!(
                t,
                "  on time       {:>13.3}% answered before the agent's next report was due",
                share * 100.0
            );
        }
        let _ = writeln!(t, "  errors        {:>14}", group(self.errors_total as f64));
        for (name, n) in self.errors.rows() {
            if n > 0 {
                let why = match (name, &self.connect_error) {
                    ("connect_failures", Some(why)) => format!(" (last: {why})"),
                    _ => String::new(),
                };
                let _ = writeln!(t, "    {name:<16}{:>10}{why}", group(n as f64));
            }
        }
        let f = &self.from_target;
        if f.pauses + f.resumes + f.pushed > 0 {
            let _ = writeln!(
                t,
                "  from target   {} PAUSE, {} RESUME (obeyed: {} requests not sent while paused), {} pushed reports",
                group(f.pauses as f64),
                group(f.resumes as f64),
                group(f.skipped_while_paused as f64),
                group(f.pushed as f64)
            );
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
            let _ = writeln!(t, "  {name:<12}{}", latency_cells(l));
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

/// The `load` line: what the run offered.
fn load_line(r: &RunReport) -> String {
    let p = &r.params;
    match (p.agents, p.rate) {
        (Some(n), Some(rate)) => format!(
            "{} agents, one report every {} each ({} msg/s), at most {} outstanding per agent",
            group(n as f64),
            fmt_secs(p.interval_s),
            group(rate),
            p.pipeline
        ),
        (_, Some(rate)) => format!(
            "open loop at {} msg/s, at most {} outstanding per connection",
            group(rate),
            p.pipeline
        ),
        _ => format!("closed loop, {} outstanding per connection", p.pipeline),
    }
}

/// The latency row's cells: every percentile, or dashes when nothing was answered.
fn latency_cells(l: &LatencySummary) -> String {
    let mut row = String::new();
    for v in l.values() {
        let cell = if l.count == 0 {
            "-".to_string()
        } else {
            fmt_latency((v * 1e3) as u64)
        };
        let _ = write!(row, "{cell:>11}");
    }
    row
}

/// Seconds as the duration syntax writes them: `1s`, `250ms`, `1.5s`.
pub fn fmt_secs(s: f64) -> String {
    if s < 1.0 {
        format!("{}ms", (s * 1e3 * 1e3).round() / 1e3)
    } else {
        format!("{}s", (s * 1e3).round() / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_like_durations() {
        assert_eq!(fmt_secs(1.0), "1s");
        assert_eq!(fmt_secs(0.25), "250ms");
        assert_eq!(fmt_secs(1.5), "1.5s");
        assert_eq!(fmt_secs(60.0), "60s");
    }
}
