//! The files a run writes: the JSON report's schema (with its histograms and time series), the
//! `.hgrm` distribution parsed back, and the interval log as HdrHistogram's own tool reads it
//! (Debian's `libhdrhistogram-java` and a Java runtime; skipped without them).

mod common;

use avp_loadgen::hgrm::{parse_hgrm, write_hgrm};
use avp_loadgen::hlog::write_hlog;
use avp_loadgen::report::{RunReport, SCHEMA, SCHEMA_VERSION};
use avp_loadgen::run::run;
use avp_loadgen::stats::new_histogram;
use common::{config, correct_answer, spawn_server};
use serde_json::Value;
use std::sync::Arc;

#[test]
fn json_report_has_its_schema() {
    let addr = spawn_server(Arc::new(|_, m: &avp_proto::Message<'_>| {
        vec![correct_answer(m)]
    }));
    let mut cfg = config(addr);
    cfg.requests = Some(500);
    cfg.pipeline = 2;
    let report = RunReport::new(&cfg, &run(&cfg, &mut ()).unwrap());
    let text = serde_json::to_string_pretty(&report).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    let params = [
        "target",
        "mode",
        "rate",
        "threads",
        "connections",
        "connect_rate",
        "pipeline",
        "mix",
        "report_fields",
        "timeout_ms",
        "duration_s",
        "requests",
        "warmup_s",
    ];
    for k in params {
        assert!(v["params"].get(k).is_some(), "params.{k}");
    }
    assert_eq!(v["params"]["mode"], "closed");
    assert_eq!(v["params"]["requests"], 500);
    for k in ["window_s", "throughput", "send_rate"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k}");
    }
    for k in ["sent", "answered", "ok", "warmup_answered", "errors_total"] {
        assert!(v[k].is_u64(), "{k}");
    }
    assert_eq!(v["sent"], 500);
    // The busiest load thread's share of the window: Linux reports thread CPU time.
    let busy = v["loadgen_busy"].as_f64().expect("loadgen_busy");
    assert!(busy >= 0.0, "loadgen_busy {busy}");
    assert_eq!(v["sent_by_kind"]["report"], 500);
    let kinds = [
        "wrong_type",
        "seq_mismatch",
        "status_4xx",
        "status_5xx",
        "invalid",
        "timeouts",
        "aborted",
        "late",
        "unsolicited",
        "framing",
        "disconnects",
        "connect_failures",
    ];
    for k in kinds {
        assert_eq!(v["errors"][k], 0, "errors.{k}");
    }
    for which in ["corrected", "uncorrected"] {
        let l = &v["latency"][which];
        let keys = [
            "min_us",
            "mean_us",
            "p50_us",
            "p90_us",
            "p99_us",
            "p99_9_us",
            "p99_99_us",
            "max_us",
        ];
        let vals: Vec<f64> = keys.iter().map(|k| l[k].as_f64().expect(k)).collect();
        assert!(
            vals[2..].windows(2).all(|w| w[0] <= w[1]),
            "{which} percentiles ascend"
        );
        assert_eq!(l["count"], 500);
    }

    // The full histograms and one record per second.
    let (corrected, uncorrected) = report.decode_histograms().unwrap();
    assert_eq!((corrected.len(), uncorrected.len()), (500, 500));
    assert!(v["histograms"]["corrected"]
        .as_str()
        .unwrap()
        .starts_with("HISTF"));
    let timeline = v["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty());
    for k in [
        "t_s",
        "span_s",
        "sent",
        "answered",
        "ok",
        "connections",
        "histogram",
    ] {
        assert!(timeline[0].get(k).is_some(), "timeline.{k}");
    }
    assert!(timeline[0]["errors"]["timeouts"].is_u64());
    // Each second with answers has its own percentiles, in order.
    for second in timeline.iter().filter(|s| s["answered"].as_u64() > Some(0)) {
        let at = |k: &str| {
            second[k]
                .as_f64()
                .unwrap_or_else(|| panic!("timeline.{k}: {second}"))
        };
        let (p50, p99, p999, max) = (at("p50_us"), at("p99_us"), at("p99_9_us"), at("max_us"));
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
            "{second}"
        );
    }
    let answered: u64 = timeline
        .iter()
        .map(|s| s["answered"].as_u64().unwrap())
        .sum();
    assert_eq!(answered, 500, "every answer is in exactly one second");

    // Reading it back gives the same report; another schema or version is refused.
    assert_eq!(RunReport::from_json(&text).unwrap(), report);
    let newer = text.replace("\"schema_version\": 1", "\"schema_version\": 99");
    assert!(RunReport::from_json(&newer).is_err());
}

#[test]
fn hgrm_parses_back_to_the_histogram() {
    // 1..=10,000 microseconds, once each.
    let mut h = new_histogram();
    for us in 1..=10_000u64 {
        h.record(us * 1_000).unwrap();
    }
    let mut out = Vec::new();
    write_hgrm(&h, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(
        text.contains("#[Max     =       10.002, Total count    =        10000]"),
        "{text}"
    );
    let lines = parse_hgrm(&text).unwrap();
    assert!(lines.len() > 50);
    assert!(lines.windows(2).all(|w| w[0].quantile <= w[1].quantile
        && w[0].value_ms <= w[1].value_ms
        && w[0].total_count <= w[1].total_count));
    let last = lines.last().unwrap();
    assert_eq!((last.quantile, last.total_count), (1.0, 10_000));
    // Each value v ms covers exactly the 1000·v samples at or below it (one per microsecond),
    // to three significant digits; and each line's count matches its quantile.
    for l in &lines {
        let expected_ms = l.total_count as f64 / 1_000.0;
        assert!(
            (l.value_ms - expected_ms).abs() <= expected_ms * 0.001 + 0.0011,
            "{l:?}"
        );
        // The count runs to the end of the value's bucket (0.1 % wide), so it may pass the
        // quantile's own count by that much, never fall short of it.
        let expected_count = (l.quantile * 10_000.0).round() as u64;
        assert!(l.total_count >= expected_count, "{l:?}");
        assert!(
            l.total_count - expected_count <= expected_count / 1_000 + 1,
            "{l:?}"
        );
    }
}

/// HdrHistogram's jar as Debian installs it.
const HDR_JAR: &str = "/usr/share/java/hdrhistogram.jar";

#[test]
fn hlog_is_read_by_hdrhistograms_log_processor() {
    let addr = spawn_server(Arc::new(|_, m: &avp_proto::Message<'_>| {
        vec![correct_answer(m)]
    }));
    let mut cfg = config(addr);
    cfg.duration = std::time::Duration::from_millis(2_500);
    cfg.warmup = std::time::Duration::from_millis(1_000);
    let report = RunReport::new(&cfg, &run(&cfg, &mut ()).unwrap());
    let mut log = Vec::new();
    write_hlog(&report, &mut log).unwrap();
    let text = String::from_utf8(log).unwrap();
    assert!(text.contains("#[BaseTime: "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Tag=warmup,0.000,1.000,")),
        "{text}"
    );
    let measured: u64 = report
        .timeline
        .iter()
        .filter(|s| !s.warmup)
        .map(|s| s.histogram.decode().unwrap().len())
        .sum();
    assert!(measured > 0);

    let java_ok = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !java_ok || !std::path::Path::new(HDR_JAR).exists() {
        avp_testkit::skip_without(&format!(
            "java or {HDR_JAR} (apt-get install -y default-jre-headless libhdrhistogram-java)"
        ));
        return;
    }
    let path = std::env::temp_dir().join(format!("avp-loadgen-{}.hlog", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new("java")
        .args([
            "-cp",
            HDR_JAR,
            "org.HdrHistogram.HistogramLogProcessor",
            "-i",
        ])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its total over the untagged (measured) seconds is the sum of those seconds.
    let total = stdout
        .lines()
        .find_map(|l| l.split("Total count    =").nth(1))
        .and_then(|t| t.trim().trim_end_matches(']').trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no total in:\n{stdout}"));
    assert_eq!(total, measured, "{stdout}");
}
