//! `avp-loadgen merge A.json B.json ...`: runs made at the same time from several load hosts
//! against one target, combined exactly into one report.
//!
//! Counts add up. Percentiles are recomputed from the sum of the inputs' full histograms, never
//! averaged. Rates are each input's rate over the window every input was measuring (from its
//! time series), summed; when the windows do not share a whole second, each input's rate over
//! its own window is summed and the report says so. The time series adds up second by second
//! of wall-clock time. Each input's parameters are listed in the result.

use crate::fleet;
use crate::hist::EncodedHistogram;
use crate::report::{Histograms, SCHEMA_VERSION};
use crate::report::{Input, Latency, LatencySummary, Merged, Params, RunReport, SCHEMA};
use crate::stats::{new_histogram, Counts, ErrorCounts, FromTarget};
use crate::timeline::Second;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};

/// Merges `inputs`, each a report and the name of the file it came from; the error names the
/// input that cannot be merged and why.
pub fn merge(inputs: &[(String, RunReport)]) -> Result<RunReport, String> {
    if inputs.is_empty() {
        return Err("nothing to merge".into());
    }
    let mut corrected = new_histogram();
    let mut uncorrected = new_histogram();
    for (file, r) in inputs {
        let (c, u) = r.decode_histograms().map_err(|e| format!("{file}: {e}"))?;
        add(&mut corrected, &c, file)?;
        add(&mut uncorrected, &u, file)?;
    }
    let reports: Vec<&RunReport> = inputs.iter().map(|(_, r)| r).collect();
    let overlap = overlap_ms(&reports);
    let shared: Option<Vec<(f64, f64)>> = overlap.and_then(|(from, to)| {
        reports
            .iter()
            .map(|r| rates_within(r, from, to))
            .collect::<Option<Vec<_>>>()
    });
    let rates_over_overlap = shared.is_some();
    let rates: Vec<(f64, f64)> = shared.unwrap_or_else(|| {
        reports
            .iter()
            .map(|r| (r.throughput, r.send_rate))
            .collect()
    });
    let start_unix_ms = reports.iter().map(|r| r.start_unix_ms).min().unwrap_or(0);
    let (from, to) = match (rates_over_overlap, overlap) {
        (true, Some(w)) => w,
        _ => union_ms(&reports),
    };
    let mut params = merged_params(&reports);
    params.warmup_s = ((from - start_unix_ms as f64) / 1e3).max(0.0);
    let throughput: f64 = rates.iter().map(|r| r.0).sum();
    let interval = std::time::Duration::from_secs_f64(params.interval_s.max(1e-9));
    let mut errors = ErrorCounts::default();
    let mut from_target = FromTarget::default();
    for r in &reports {
        errors.add(&r.errors);
        from_target.add(&r.from_target);
    }
    let sum = |f: fn(&RunReport) -> u64| reports.iter().map(|r| f(r)).sum::<u64>();
    let ok = sum(|r| r.ok);
    let mut sent_by_kind = BTreeMap::new();
    for r in &reports {
        for (k, n) in &r.sent_by_kind {
            *sent_by_kind.entry(k.clone()).or_insert(0) += n;
        }
    }
    let no_answer: Vec<String> = inputs
        .iter()
        .filter_map(|(f, r)| r.no_answer.as_ref().map(|w| format!("{f}: {w}")))
        .collect();
    Ok(RunReport {
        schema: SCHEMA.into(),
        schema_version: SCHEMA_VERSION,
        params,
        window_s: ((to - from) / 1e3).max(1e-9),
        sent: sum(|r| r.sent),
        sent_by_kind,
        answered: sum(|r| r.answered),
        ok,
        warmup_answered: sum(|r| r.warmup_answered),
        throughput,
        send_rate: rates.iter().map(|r| r.1).sum(),
        errors,
        errors_total: errors.total(),
        latency: Latency {
            corrected: LatencySummary::of(&corrected),
            uncorrected: LatencySummary::of(&uncorrected),
        },
        peak_rss_kib: reports.iter().filter_map(|r| r.peak_rss_kib).max(),
        loadgen_busy: reports
            .iter()
            .filter_map(|r| r.loadgen_busy)
            .reduce(f64::max),
        start_unix_ms,
        stopped_early: reports.iter().any(|r| r.stopped_early),
        from_target,
        no_answer: (ok == 0 && !no_answer.is_empty()).then(|| no_answer.join("; ")),
        connect_error: reports.iter().find_map(|r| r.connect_error.clone()),
        capacity_agents: fleet::agents_at(throughput, interval),
        on_time: fleet::on_time_share(&corrected, interval),
        histograms: Some(Histograms {
            corrected: EncodedHistogram::encode(&corrected),
            uncorrected: EncodedHistogram::encode(&uncorrected),
        }),
        timeline: merged_timeline(&reports, start_unix_ms)?,
        merged: Some(Merged {
            rates_over_overlap,
            inputs: inputs
                .iter()
                .zip(&rates)
                .flat_map(|((file, r), rate)| as_inputs(file, r, rate.0))
                .collect(),
        }),
    })
}

fn add(into: &mut Histogram<u64>, h: &Histogram<u64>, file: &str) -> Result<(), String> {
    into.add(h)
        .map_err(|e| format!("{file}: histograms do not add up: {e:?}"))
}

/// The measurement window every report shares, as Unix milliseconds, if there is one.
fn overlap_ms(reports: &[&RunReport]) -> Option<(f64, f64)> {
    let from = reports
        .iter()
        .map(|r| r.window_unix_ms().0)
        .fold(f64::MIN, f64::max);
    let to = reports
        .iter()
        .map(|r| r.window_unix_ms().1)
        .fold(f64::MAX, f64::min);
    (to > from).then_some((from, to))
}

/// From the earliest window's start to the latest one's end, as Unix milliseconds.
fn union_ms(reports: &[&RunReport]) -> (f64, f64) {
    let from = reports
        .iter()
        .map(|r| r.window_unix_ms().0)
        .fold(f64::MAX, f64::min);
    let to = reports
        .iter()
        .map(|r| r.window_unix_ms().1)
        .fold(f64::MIN, f64::max);
    (from, to)
}

/// The report's correct answers and sends per second over the seconds of its time series that
/// lie wholly within `[from, to]` (Unix milliseconds); `None` if no second does.
fn rates_within(r: &RunReport, from: f64, to: f64) -> Option<(f64, f64)> {
    let (mut ok, mut sent, mut span) = (0u64, 0u64, 0.0);
    for s in &r.timeline {
        let end = r.start_unix_ms as f64 + s.t_s * 1e3;
        let begin = end - s.span_s * 1e3;
        if begin >= from && end <= to {
            ok += s.counts.ok;
            sent += s.counts.sent;
            span += s.span_s;
        }
    }
    (span >= 1.0).then(|| (ok as f64 / span, sent as f64 / span))
}

/// The time series of all reports added up by the wall-clock second their records end in,
/// with times counted from `start_unix_ms`.
fn merged_timeline(reports: &[&RunReport], start_unix_ms: u64) -> Result<Vec<Second>, String> {
    let mut by_second: BTreeMap<i64, (f64, bool, Counts, Histogram<u64>)> = BTreeMap::new();
    for r in reports {
        for s in &r.timeline {
            let end_s = ((r.start_unix_ms as f64 + s.t_s * 1e3) / 1e3).round() as i64;
            let h = s.histogram.decode()?;
            let e = by_second
                .entry(end_s)
                .or_insert_with(|| (0.0, true, Counts::default(), new_histogram()));
            e.0 = e.0.max(s.span_s);
            e.1 &= s.warmup;
            e.2.add(&s.counts);
            e.3.add(&h)
                .map_err(|e| format!("histograms do not add up: {e:?}"))?;
        }
    }
    Ok(by_second
        .into_iter()
        .map(|(end_s, (span, warmup, counts, h))| {
            let t = end_s as f64 - start_unix_ms as f64 / 1e3;
            Second::new(t, span, warmup, counts, &h)
        })
        .collect())
}

/// The inputs' parameters combined: totals where they add up (threads, connections, rates,
/// agents), the one value where all agree, every value listed where they do not.
fn merged_params(reports: &[&RunReport]) -> Params {
    let p: Vec<&Params> = reports.iter().map(|r| &r.params).collect();
    let text = |f: fn(&Params) -> String| {
        let values: BTreeSet<String> = p.iter().map(|x| f(x)).collect();
        values.into_iter().collect::<Vec<_>>().join(", ")
    };
    let all_sum = |f: fn(&Params) -> Option<f64>| p.iter().map(|x| f(x)).sum::<Option<f64>>();
    let max = |f: fn(&Params) -> f64| p.iter().map(|x| f(x)).fold(0.0, f64::max);
    let agents: usize = p.iter().filter_map(|x| x.agents).sum();
    Params {
        target: text(|x| x.target.clone()),
        mode: text(|x| x.mode.clone()),
        rate: all_sum(|x| x.rate),
        threads: p.iter().map(|x| x.threads).sum(),
        connections: p.iter().map(|x| x.connections).sum(),
        connect_rate: all_sum(|x| x.connect_rate),
        pipeline: p.iter().map(|x| x.pipeline).max().unwrap_or(1),
        mix: text(|x| x.mix.clone()),
        report_fields: text(|x| x.report_fields.clone()),
        timeout_ms: max(|x| x.timeout_ms),
        duration_s: p.iter().filter_map(|x| x.duration_s).reduce(f64::max),
        requests: p.iter().map(|x| x.requests).sum(),
        warmup_s: max(|x| x.warmup_s),
        agents: (agents > 0).then_some(agents),
        interval_s: p[0].interval_s,
        node_prefix: text(|x| x.node_prefix.clone()),
        node_ids: p.iter().map(|x| x.node_ids).sum(),
        source_addrs: text(|x| x.source_addrs.clone()),
        embedded_node_workers: None,
    }
}

/// The input entries for one report: itself, or the inputs a merged report was made of.
fn as_inputs(file: &str, r: &RunReport, throughput: f64) -> Vec<Input> {
    match &r.merged {
        Some(m) => m.inputs.clone(),
        None => vec![Input {
            file: file.to_string(),
            params: r.params.clone(),
            start_unix_ms: r.start_unix_ms,
            window_s: r.window_s,
            sent: r.sent,
            ok: r.ok,
            throughput,
            p99_us: r.latency.corrected.p99_us,
            loadgen_busy: r.loadgen_busy,
        }],
    }
}
