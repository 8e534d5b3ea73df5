//! Two runs made at the same time merge exactly: counts add up, percentiles come from the sum
//! of the histograms, rates add up over the shared window, and each input is listed.

mod common;

use avp_loadgen::merge::merge;
use avp_loadgen::report::{LatencySummary, RunReport};
use avp_loadgen::run::run;
use avp_loadgen::stats::new_histogram;
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
