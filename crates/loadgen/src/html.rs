//! `--html FILE`: one self-contained page per report, for people to read in a browser. The
//! plots are inline SVG, the styling inline CSS; the page loads nothing from anywhere.
//!
//! A run's page has its parameters, the summary table, the percentile plot (corrected and
//! uncorrected on a log latency axis) and the time series; a sweep's has the steps and the
//! throughput-latency curve with its SLO and the highest passing step marked; a comparison
//! overlays its runs and lists the parameters that differ; a merged report lists its inputs.

use crate::charts::{self, Named};
use crate::compare::differing_params;
use crate::plot::{self, Figure, Panel};
use crate::report::{fmt_latency, group, LatencySummary, Params, RunReport, PERCENTILES};
use crate::summary;
use crate::sweep::SweepReport;
use std::fmt::Write as _;

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1150px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}\
th{background:#f2f2f2}td.k,th.k{text-align:left}p.sentence{font-size:1.05em;background:#f6f8fa;padding:.7em}\
p.warn{background:#fde8e8;padding:.7em}figure{margin:1em 0}svg{max-width:100%;height:auto}";

/// Text escaped for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// A figure of one panel, as `<figure id=...>` with inline SVG.
fn figure(id: &str, panel: Panel) -> Result<String, String> {
    if panel.is_empty() {
        return Ok(format!(
            "<figure id=\"{id}\"><figcaption>{}: nothing to plot</figcaption></figure>\n",
            esc(&panel.title)
        ));
    }
    let svg = plot::svg(&Figure {
        title: String::new(),
        notes: Vec::new(),
        panels: vec![panel],
    })?;
    Ok(format!("<figure id=\"{id}\">\n{svg}\n</figure>\n"))
}

fn params_table(p: &Params) -> String {
    let mut t = String::from("<table id=\"params\">\n");
    for (k, v) in p.rows() {
        let _ = writeln!(
            t,
            "<tr><th class=\"k\">{}</th><td class=\"k\">{}</td></tr>",
            esc(k),
            esc(&v)
        );
    }
    t.push_str("</table>\n");
    t
}

fn latency_table(rows: &[(&str, &LatencySummary)]) -> String {
    let mut t = String::from("<table id=\"latency\">\n<tr><th class=\"k\">latency</th>");
    for (label, _) in PERCENTILES {
        let _ = write!(t, "<th>{label}</th>");
    }
    t.push_str("<th>max</th></tr>\n");
    for (name, l) in rows {
        let _ = write!(t, "<tr><td class=\"k\">{}</td>", esc(name));
        for v in l.values() {
            let cell = if l.count == 0 {
                "-".to_string()
            } else {
                fmt_latency((v * 1e3) as u64)
            };
            let _ = write!(t, "<td>{cell}</td>");
        }
        t.push_str("</tr>\n");
    }
    t.push_str("</table>\n");
    t
}

fn summary_table(r: &RunReport) -> String {
    let pct = |n: u64| 100.0 * n as f64 / r.sent.max(1) as f64;
    let mut rows = vec![
        (
            "throughput".to_string(),
            format!(
                "{} msg/s correct answers = {} agents reporting every {}",
                group(r.throughput),
                group(r.capacity_agents),
                crate::table::fmt_secs(r.params.interval_s)
            ),
        ),
        (
            "window".into(),
            format!(
                "{:.2} s measured{}",
                r.window_s,
                if r.stopped_early {
                    " (stopped early)"
                } else {
                    ""
                }
            ),
        ),
        (
            "sent".into(),
            format!("{} ({} msg/s)", group(r.sent as f64), group(r.send_rate)),
        ),
        (
            "answered".into(),
            format!(
                "{} ({:.3}% of sent)",
                group(r.answered as f64),
                pct(r.answered)
            ),
        ),
        (
            "ok".into(),
            format!("{} ({:.3}% of sent)", group(r.ok as f64), pct(r.ok)),
        ),
    ];
    if let (Some(share), Some(_)) = (r.on_time, r.params.agents) {
        rows.push((
            "on time".into(),
            format!("{:.3}% before the next report was due", share * 100.0),
        ));
    }
    rows.push(("errors".into(), group(r.errors_total as f64)));
    for (name, n) in r.errors.rows() {
        if n > 0 {
            rows.push((format!("errors: {name}"), group(n as f64)));
        }
    }
    let f = &r.from_target;
    if f.pauses + f.resumes + f.pushed > 0 {
        rows.push((
            "from the target".into(),
            format!(
                "{} PAUSE, {} RESUME ({} requests not sent while paused), {} pushed reports",
                f.pauses, f.resumes, f.skipped_while_paused, f.pushed
            ),
        ));
    }
    if let Some(b) = r.loadgen_busy {
        rows.push((
            "loadgen busiest thread".into(),
            format!("{:.0} % of the window on CPU", b * 100.0),
        ));
    }
    let mut t = String::from("<table id=\"summary\">\n");
    for (k, v) in rows {
        let _ = writeln!(
            t,
            "<tr><th class=\"k\">{}</th><td class=\"k\">{}</td></tr>",
            esc(&k),
            esc(&v)
        );
    }
    t.push_str("</table>\n");
    t
}

fn inputs_table(r: &RunReport) -> String {
    let Some(m) = &r.merged else {
        return String::new();
    };
    let mut t = format!(
        "<h2>Inputs</h2>\n<p>Rates are {}.</p>\n<table id=\"inputs\">\n\
         <tr><th class=\"k\">file</th><th class=\"k\">target</th><th>connections</th><th>msg/s</th>\
         <th>corrected p99</th><th>loadgen busiest thread</th><th class=\"k\">parameters</th></tr>\n",
        if m.rates_over_overlap {
            "each input's over the window all inputs share, summed"
        } else {
            "each input's over its own window, summed: the windows do not share a whole second"
        }
    );
    for i in &m.inputs {
        let params: Vec<String> = i
            .params
            .rows()
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            t,
            "<tr><td class=\"k\">{}</td><td class=\"k\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"k\">{}</td></tr>",
            esc(&i.file),
            esc(&i.params.target),
            group(i.params.connections as f64),
            group(i.throughput),
            fmt_latency((i.p99_us * 1e3) as u64),
            i.loadgen_busy.map_or("n/a".into(), |b| format!("{:.0} %", b * 100.0)),
            esc(&params.join(", "))
        );
    }
    t.push_str("</table>\n");
    t
}

/// The page of one run (or of a merged report).
pub fn run_page(r: &RunReport) -> Result<String, String> {
    let runs = [("", r)];
    let mut b = String::new();
    let _ = writeln!(b, "<h1>avp-loadgen run: {}</h1>", esc(&r.params.target));
    let _ = writeln!(
        b,
        "<p class=\"sentence\" id=\"sentence\">{}</p>",
        esc(&summary::sentence(r))
    );
    if let Some(why) = &r.no_answer {
        let _ = writeln!(b, "<p class=\"warn\">No answers: {}</p>", esc(why));
    }
    b.push_str("<h2>Parameters</h2>\n");
    b.push_str(&params_table(&r.params));
    b.push_str("<h2>Summary</h2>\n");
    b.push_str(&summary_table(r));
    b.push_str(&latency_table(&[
        ("corrected (from the scheduled send)", &r.latency.corrected),
        ("uncorrected (from the actual send)", &r.latency.uncorrected),
    ]));
    b.push_str(&inputs_table(r));
    b.push_str("<h2>Latency by percentile</h2>\n");
    b.push_str(&figure("percentiles", charts::percentiles(&runs)?)?);
    b.push_str("<h2>Timeline</h2>\n");
    b.push_str(&figure("timeline", charts::throughput(&runs))?);
    b.push_str(&figure(
        "timeline-latency",
        charts::latency_over_time(&runs),
    )?);
    Ok(page("avp-loadgen run", &b))
}

/// The page of a sweep.
pub fn sweep_page(s: &SweepReport) -> Result<String, String> {
    let mut b = String::new();
    b.push_str("<h1>avp-loadgen sweep</h1>\n");
    let _ = writeln!(
        b,
        "<p class=\"sentence\" id=\"sentence\">{}</p>",
        esc(&s.summary())
    );
    if let Some(first) = s.steps.first() {
        b.push_str("<h2>Parameters (first step)</h2>\n");
        b.push_str(&params_table(&first.report.params));
    }
    b.push_str("<h2>Throughput and latency</h2>\n");
    b.push_str(&figure("sweep", charts::sweep_curve(s))?);
    if let Some(panel) = charts::sweep_percentiles(s)? {
        b.push_str("<h2>Latency by percentile, best step</h2>\n");
        b.push_str(&figure("percentiles", panel)?);
    }
    let timeline = charts::sweep_timeline(s);
    if !timeline.is_empty() {
        b.push_str("<h2>Timeline</h2>\n");
    }
    for (id, panel) in ["timeline", "timeline-latency"].into_iter().zip(timeline) {
        b.push_str(&figure(id, panel)?);
    }
    b.push_str(
        "<h2>Steps</h2>\n<table id=\"steps\">\n<tr><th>step</th><th>agents</th><th>offered msg/s</th>\
         <th>achieved msg/s</th><th>p50</th><th>p99</th><th>p99.9</th><th>failed</th><th class=\"k\">verdict</th></tr>\n",
    );
    for st in &s.steps {
        let r = &st.report;
        let l = &r.latency.corrected;
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"k\">{}</td></tr>",
            st.number,
            group(st.agents.map_or(r.capacity_agents, |n| n as f64)),
            group(st.rate),
            group(r.throughput),
            l.shown(l.p50_us),
            l.shown(l.p99_us),
            l.shown(l.p99_9_us),
            group(r.errors.failed_requests() as f64),
            esc(st.broken.as_deref().unwrap_or("ok"))
        );
    }
    b.push_str("</table>\n");
    Ok(page("avp-loadgen sweep", &b))
}

/// The page comparing `runs`: the parameters that differ, every figure side by side, and the
/// plots overlaid.
pub fn compare_page(runs: &[Named<'_>]) -> Result<String, String> {
    let mut b = String::new();
    b.push_str("<h1>avp-loadgen compare</h1>\n<h2>Parameters that differ</h2>\n");
    let diff = differing_params(runs);
    if diff.is_empty() {
        b.push_str("<p id=\"differing\">The runs have the same parameters.</p>\n");
    } else {
        b.push_str("<table id=\"differing\">\n<tr><th class=\"k\">parameter</th>");
        for (n, _) in runs {
            let _ = write!(b, "<th class=\"k\">{}</th>", esc(n));
        }
        b.push_str("</tr>\n");
        for (k, values) in diff {
            let _ = write!(b, "<tr><th class=\"k\">{}</th>", esc(&k));
            for v in values {
                let _ = write!(b, "<td class=\"k\">{}</td>", esc(&v));
            }
            b.push_str("</tr>\n");
        }
        b.push_str("</table>\n");
    }
    b.push_str("<h2>Figures</h2>\n<table id=\"figures\">\n<tr><th class=\"k\">figure</th>");
    for (n, _) in runs {
        let _ = write!(b, "<th>{}</th>", esc(n));
    }
    b.push_str("</tr>\n");
    let figures: Vec<Vec<(String, f64)>> = runs.iter().map(|(_, r)| r.figures()).collect();
    for (row, (name, _)) in figures[0].iter().enumerate() {
        let _ = write!(b, "<tr><td class=\"k\">{}</td>", esc(name));
        for f in &figures {
            let _ = write!(b, "<td>{}</td>", crate::compare::num(f[row].1));
        }
        b.push_str("</tr>\n");
    }
    b.push_str("</table>\n<h2>Latency by percentile</h2>\n");
    b.push_str(&figure("percentiles", charts::percentiles(runs)?)?);
    b.push_str("<h2>Timeline</h2>\n");
    b.push_str(&figure("timeline", charts::throughput(runs))?);
    b.push_str(&figure(
        "timeline-latency",
        charts::latency_over_time(runs),
    )?);
    Ok(page("avp-loadgen compare", &b))
}
