//! Two runs made at the same time merge exactly: counts add up, percentiles come from the sum
//! of the histograms, rates add up over the shared window, and each input is listed.

mod common;

use avp_loadgen::merge::merge;
use avp_loadgen::report::{LatencySummary, RunReport};
use avp_loadgen::run::run;
use avp_loadgen::stats::{new_histogram, Counts};
use avp_loadgen::timeline::Second;
use avp_proto::Message;
use common::{config, correct_answer, spawn_server};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn concurrent_runs_merge_exactly() {
    let addr = spawn_server(Arc::new(|_, m: &Message<'_>| vec![correct_answer(m)]));
    let start = |pipeline: usize| {
        let mut cfg = config(addr);
        cfg.connections = 2;
        cfg.pipeline = pipeline;
        cfg.duration = Duration::from_secs(3);
        std::thread::spawn(move || RunReport::new(&cfg, &run(&cfg, &mut ()).unwrap()))
    };
    let (a, b) = (start(1), start(4));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let inputs = vec![
        ("a.json".to_string(), a.clone()),
        ("b.json".to_string(), b.clone()),
    ];
    let m = merge(&inputs).unwrap();

    assert_eq!(m.sent, a.sent + b.sent);
    assert_eq!(m.ok, a.ok + b.ok);
    assert_eq!(m.params.connections, 4);
    let mut both = new_histogram();
    for r in [&a, &b] {
        both.add(r.decode_histograms().unwrap().0).unwrap();
    }
    assert_eq!(
        m.latency.corrected,
        LatencySummary::of(&both),
        "percentiles of the sum"
    );
    assert_eq!(m.decode_histograms().unwrap().0, both);

    let merged = m.merged.as_ref().unwrap();
    assert!(merged.rates_over_overlap, "the runs overlapped");
    assert_eq!(merged.inputs.len(), 2);
    assert_eq!(merged.inputs[1].params.pipeline, 4);
    let sum: f64 = merged.inputs.iter().map(|i| i.throughput).sum();
    assert!((m.throughput - sum).abs() < 1e-6);
    assert!(m.window_s <= a.window_s.min(b.window_s) + 1e-9);
    let sent = |r: &RunReport| r.timeline.iter().map(|s| s.counts.sent).sum::<u64>();
    assert_eq!(sent(&m), sent(&a) + sent(&b), "the time series adds up");

    // An hour apart: nothing shared, so each input's own rate is summed, and the report says so.
    let mut later = b.clone();
    later.start_unix_ms += 3_600_000;
    let apart = merge(&[("a".into(), a.clone()), ("b".into(), later)]).unwrap();
    assert!(!apart.merged.as_ref().unwrap().rates_over_overlap);
    assert!((apart.throughput - (a.throughput + b.throughput)).abs() < 1e-6);
    assert!(apart.table().contains("input         a:"));

    // A report without histograms cannot be merged exactly: refused, naming the file.
    let mut old = a.clone();
    old.histograms = None;
    let err = merge(&[("old.json".into(), old), ("b".into(), b)]).unwrap_err();
    assert!(err.starts_with("old.json: "), "{err}");
}

/// `base` with a time series of its own: one record a second from `start_unix_ms`, `ok[i]`
/// correct answers (and as many sends) in second `i`, all of it measured.
fn with_seconds(base: &RunReport, start_unix_ms: u64, ok: &[u64]) -> RunReport {
    let mut r = base.clone();
    r.start_unix_ms = start_unix_ms;
    r.params.warmup_s = 0.0;
    r.window_s = ok.len() as f64;
    r.timeline = ok
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let counts = Counts {
                sent: n,
                answered: n,
                ok: n,
                ..Counts::default()
            };
            Second::new(i as f64 + 1.0, 1.0, false, counts, &new_histogram())
        })
        .collect();
    r.throughput = ok.iter().sum::<u64>() as f64 / r.window_s;
    r.send_rate = r.throughput;
    r
}

#[test]
fn rates_add_up_over_the_window_every_input_was_measuring() {
    let addr = spawn_server(Arc::new(|_, m: &Message<'_>| vec![correct_answer(m)]));
    let cfg = config(addr);
    let base = RunReport::new(&cfg, &run(&cfg, &mut ()).unwrap());
    // A measures from t = 0 s to 5 s and doubles its rate at 2 s (160/s over its own window);
    // B measures from 2 s to 7 s at 300/s. Both measure from 2 s to 5 s, where A answered
    // 200/s: together 500/s, not the 460/s of their own windows.
    let t0 = 1_800_000_000_000;
    let a = with_seconds(&base, t0, &[100, 100, 200, 200, 200]);
    let b = with_seconds(&base, t0 + 2_000, &[300; 5]);
    let m = merge(&[("a".into(), a), ("b".into(), b)]).unwrap();
    assert!(m.merged.as_ref().unwrap().rates_over_overlap);
    assert_eq!(m.throughput, 500.0);
    assert_eq!(m.send_rate, 500.0);
    assert_eq!(m.window_s, 3.0);
    assert_eq!(m.params.warmup_s, 2.0, "the window starts where B's does");
    let ok_at = |t_s: f64| {
        m.timeline
            .iter()
            .find(|s| s.t_s == t_s)
            .map(|s| s.counts.ok)
    };
    assert_eq!(ok_at(1.0), Some(100), "A alone");
    assert_eq!(ok_at(3.0), Some(200 + 300), "both");
    assert_eq!(ok_at(7.0), Some(300), "B alone");
}
