//! What the plots of each report show, as [`Figure`]s and [`Panel`]s for [`crate::plot`] to
//! draw into SVG and PNG files and into the HTML report: the percentile spectrum (corrected and
//! uncorrected), the time series (throughput and latency per second, for a sweep over all its
//! steps) and a sweep's throughput-latency curve with its SLO and the best step marked.

use crate::plot::{Axis, Figure, Mark, Panel, Scale, Series, Style, Ticks};
use crate::report::{fmt_latency, group, Params, RunReport};
use crate::sweep::SweepReport;

/// A run and the name it is shown under (a file name, or empty for a single run).
pub type Named<'a> = (&'a str, &'a RunReport);

/// A labelled pick of one figure of a second's latency.
type TailPick = (&'static str, fn(&crate::timeline::Tail) -> Option<f64>);
/// A labelled pick of one figure of a latency summary.
type SummaryPick = (&'static str, fn(&crate::report::LatencySummary) -> f64);

/// Records shorter than this (a run's last, cut short by its end) are left out of the time
/// series plots: a few answers over a few milliseconds would show as a spike in rate.
const SHORTEST_PLOTTED_S: f64 = 0.5;

/// The records of `r`'s time series that the plots show.
fn plotted(r: &RunReport) -> impl Iterator<Item = &crate::timeline::Second> {
    r.timeline.iter().filter(|s| s.span_s >= SHORTEST_PLOTTED_S)
}

fn latency_axis(label: &str) -> Axis {
    Axis {
        label: label.into(),
        scale: Scale::Log,
        ticks: Ticks::Latency,
    }
}

fn seconds_axis() -> Axis {
    Axis {
        label: "seconds since the run started".into(),
        scale: Scale::Linear,
        ticks: Ticks::Seconds,
    }
}

fn name(prefix: &str, what: &str) -> String {
    if prefix.is_empty() {
        what.to_string()
    } else {
        format!("{prefix}: {what}")
    }
}

/// Latency by percentile, corrected (wide) and uncorrected (dashed) for each run.
pub fn percentiles(runs: &[Named<'_>]) -> Result<Panel, String> {
    let mut series = Vec::new();
    for (i, (n, r)) in runs.iter().enumerate() {
        let (c, u) = r.decode_histograms()?;
        let (cc, uc) = if runs.len() == 1 { (0, 1) } else { (i, i) };
        series.push(Series {
            name: name(n, "corrected (from the scheduled send)"),
            points: crate::plot::spectrum(&c),
            style: Style::Wide,
            color: cc,
        });
        series.push(Series {
            name: name(n, "uncorrected (from the actual send)"),
            points: crate::plot::spectrum(&u),
            style: Style::Dashed,
            color: uc,
        });
    }
    Ok(Panel {
        title: "latency by percentile".into(),
        x: Axis {
            label: "percentile".into(),
            scale: Scale::Log,
            ticks: Ticks::Percentile,
        },
        y: latency_axis("latency (log scale)"),
        series,
        hlines: Vec::new(),
        vlines: Vec::new(),
        marks: Vec::new(),
    })
}

/// Messages per second, second by second: sent and answered correctly for each run.
pub fn throughput(runs: &[Named<'_>]) -> Panel {
    let mut series = Vec::new();
    for (i, (n, r)) in runs.iter().enumerate() {
        let per =
            |f: fn(&crate::timeline::Second) -> f64| plotted(r).map(|s| (s.t_s, f(s))).collect();
        let (sc, oc) = if runs.len() == 1 { (0, 2) } else { (i, i) };
        series.push(Series {
            name: name(n, "sent/s"),
            points: per(|s| s.sent_rate()),
            style: Style::Dashed,
            color: sc,
        });
        series.push(Series {
            name: name(n, "correct answers/s"),
            points: per(|s| s.ok_rate()),
            style: Style::Line,
            color: oc,
        });
        if runs.len() == 1 {
            series.push(Series {
                name: "errors/s".into(),
                points: per(|s| s.counts.errors.total() as f64 / s.span_s.max(1e-9)),
                style: Style::Line,
                color: 1,
            });
        }
    }
    Panel {
        title: "throughput per second".into(),
        x: seconds_axis(),
        y: Axis {
            label: "messages per second".into(),
            scale: Scale::Linear,
            ticks: Ticks::Number,
        },
        series,
        hlines: Vec::new(),
        vlines: warmup_line(runs),
        marks: Vec::new(),
    }
}

/// Corrected latency second by second: p50, p99, p99.9 and max of one run, or the p99 of each.
pub fn latency_over_time(runs: &[Named<'_>]) -> Panel {
    let mut series = Vec::new();
    for (i, (n, r)) in runs.iter().enumerate() {
        let per = |f: fn(&crate::timeline::Tail) -> Option<f64>| {
            plotted(r)
                .filter_map(|s| f(&s.tail).map(|us| (s.t_s, us / 1e3)))
                .collect()
        };
        if runs.len() == 1 {
            let picks: [TailPick; 4] = [
                ("p50", |t| t.p50_us),
                ("p99", |t| t.p99_us),
                ("p99.9", |t| t.p99_9_us),
                ("max", |t| t.max_us),
            ];
            for (c, (label, f)) in picks.into_iter().enumerate() {
                series.push(Series {
                    name: label.into(),
                    points: per(f),
                    style: Style::Line,
                    color: c,
                });
            }
        } else {
            series.push(Series {
                name: name(n, "p99"),
                points: per(|t| t.p99_us),
                style: Style::Line,
                color: i,
            });
        }
    }
    Panel {
        title: "corrected latency of the answers received each second".into(),
        x: seconds_axis(),
        y: latency_axis("latency (log scale)"),
        series,
        hlines: Vec::new(),
        vlines: warmup_line(runs),
        marks: Vec::new(),
    }
}

fn warmup_line(runs: &[Named<'_>]) -> Vec<(String, f64)> {
    match runs {
        [(_, r)] if r.params.warmup_s > 0.0 => vec![("end of warmup".into(), r.params.warmup_s)],
        _ => Vec::new(),
    }
}

/// A sweep's corrected p50, p99 and p99.9 against the achieved throughput, with each SLO as a
/// horizontal line and the highest step that met them marked.
pub fn sweep_curve(s: &SweepReport) -> Panel {
    let pick = |f: fn(&crate::report::LatencySummary) -> f64| {
        s.steps
            .iter()
            .filter(|st| st.report.latency.corrected.count > 0)
            .map(|st| {
                (
                    st.report.throughput.max(1.0),
                    f(&st.report.latency.corrected) / 1e3,
                )
            })
            .collect()
    };
    let picks: [SummaryPick; 3] = [
        ("p50", |l| l.p50_us),
        ("p99", |l| l.p99_us),
        ("p99.9", |l| l.p99_9_us),
    ];
    let series = picks
        .into_iter()
        .enumerate()
        .map(|(c, (label, f))| Series {
            name: label.into(),
            points: pick(f),
            style: Style::Points,
            color: c,
        })
        .collect();
    let hlines = s
        .slo
        .iter()
        .map(|o| {
            (
                format!(
                    "SLO {} <= {}",
                    o.percentile,
                    fmt_latency((o.limit_us * 1e3) as u64)
                ),
                o.limit_us / 1e3,
            )
        })
        .collect();
    let best = s.steps.iter().take_while(|st| st.broken.is_none()).last();
    let marks = best
        .map(|st| {
            let percentile = s.slo.first().map_or("p99", |o| o.percentile.as_str());
            let v = st.report.latency.corrected.at(percentile).unwrap_or(0.0);
            let agents = s
                .best_agents
                .map_or(String::new(), |a| format!(" = {} agents", group(a)));
            Mark {
                label: format!(
                    "highest passing: {} msg/s{agents}",
                    crate::plot::short_number(st.report.throughput)
                ),
                at: (st.report.throughput.max(1.0), (v / 1e3).max(1e-6)),
            }
        })
        .into_iter()
        .collect();
    Panel {
        title: "corrected latency against achieved throughput, one point per step".into(),
        x: Axis {
            label: "achieved throughput (msg/s, log scale)".into(),
            scale: Scale::Log,
            ticks: Ticks::Number,
        },
        y: latency_axis("corrected latency (log scale)"),
        series,
        hlines,
        vlines: Vec::new(),
        marks,
    }
}

/// A sweep's steps as one run whose time series holds theirs one after the other, each step
/// starting where the one before ended; `None` for a sweep without steps.
fn steps_in_a_row(s: &SweepReport) -> Option<RunReport> {
    let mut run = s.steps.first()?.report.clone();
    run.timeline.clear();
    let mut start = 0.0;
    for st in &s.steps {
        run.timeline.extend(st.report.timeline.iter().map(|sec| {
            let mut sec = sec.clone();
            sec.t_s += start;
            sec
        }));
        start += st.report.timeline.last().map_or(0.0, |l| l.t_s);
    }
    Some(run)
}

/// A sweep's throughput and corrected latency second by second over all its steps, with a
/// line where each step after the first started; none for a sweep without steps.
pub fn sweep_timeline(s: &SweepReport) -> Vec<Panel> {
    let Some(run) = steps_in_a_row(s) else {
        return Vec::new();
    };
    let mut starts = Vec::new();
    let mut start = 0.0;
    for st in &s.steps {
        if start > 0.0 {
            let legend = if starts.is_empty() {
                "a step starts"
            } else {
                ""
            };
            starts.push((legend.to_string(), start));
        }
        start += st.report.timeline.last().map_or(0.0, |l| l.t_s);
    }
    let runs = [("", &run)];
    let mut panels = vec![throughput(&runs), latency_over_time(&runs)];
    for p in &mut panels {
        p.title.push_str(", step after step");
        p.x.label = "seconds since the sweep started".into();
        p.vlines = starts.clone();
    }
    panels
}

/// The parameters as lines of text of about `width` characters.
pub fn notes(p: &Params, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for (k, v) in p.rows() {
        let cell = format!("{k}: {v}");
        if !line.is_empty() && line.len() + cell.len() + 3 > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str("   ");
        }
        line.push_str(&cell);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The figure of one run: percentiles, throughput and latency over time, under its parameters.
pub fn run_figure(r: &RunReport) -> Result<Figure, String> {
    let runs = [("", r)];
    Ok(Figure {
        title: format!(
            "avp-loadgen: {} msg/s, corrected p99 {}",
            group(r.throughput),
            fmt_latency((r.latency.corrected.p99_us * 1e3) as u64)
        ),
        notes: notes(&r.params, 130),
        panels: vec![
            percentiles(&runs)?,
            throughput(&runs),
            latency_over_time(&runs),
        ],
    })
}

/// The percentile panel of a sweep's [`SweepReport::shown_step`], named after it.
pub fn sweep_percentiles(s: &SweepReport) -> Result<Option<Panel>, String> {
    let Some(step) = s.shown_step() else {
        return Ok(None);
    };
    let name = format!("step {} ({} msg/s)", step.number, group(step.rate));
    percentiles(&[(name.as_str(), &step.report)]).map(Some)
}

/// The figure of a sweep: its curve, the percentiles of its best step (the last one when none
/// passed) and its timeline, under the first step's parameters.
pub fn sweep_figure(s: &SweepReport) -> Result<Figure, String> {
    let mut notes = s
        .steps
        .first()
        .map_or_else(Vec::new, |st| notes(&st.report.params, 130));
    notes.push(s.summary());
    let mut panels = vec![sweep_curve(s)];
    panels.extend(sweep_percentiles(s)?);
    panels.extend(sweep_timeline(s));
    Ok(Figure {
        title: "avp-loadgen sweep".into(),
        notes,
        panels,
    })
}

/// The figure of a comparison: the runs overlaid.
pub fn compare_figure(runs: &[Named<'_>]) -> Result<Figure, String> {
    Ok(Figure {
        title: "avp-loadgen compare".into(),
        notes: runs
            .iter()
            .map(|(n, r)| format!("{n}: {}", notes(&r.params, 10_000).join("   ")))
            .collect(),
        panels: vec![
            percentiles(runs)?,
            throughput(runs),
            latency_over_time(runs),
        ],
    })
}
