//! The binary end to end: a run writing its files, `compare` on two reports, runs with no
//! answer (refused, timed out), output files checked first, and what the first run of a
//! newcomer prints.

mod common;

use common::{correct_answer, spawn_server};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_avp-loadgen");

/// Runs the binary with `args`, which must succeed; its stdout.
fn succeeds(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn run_writes_its_files_and_compare_reads_them() {
    let addr = spawn_server(Arc::new(|_, m: &avp_proto::Message<'_>| {
        vec![correct_answer(m)]
    }));
    let dir = std::env::temp_dir().join(format!("avp-loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, pipeline: &str| {
        let json = dir.join(format!("{name}.json"));
        let out = Command::new(BIN)
            .args([
                "--target",
                &format!("tcp://{addr}"),
                "--requests",
                "300",
                "-q",
            ])
            .args(["--pipeline", pipeline, "--connections", "2"])
            .arg("--json")
            .arg(&json)
            .arg("--hgrm")
            .arg(dir.join(format!("{name}.hgrm")))
            .arg("--plot")
            .arg(dir.join(format!("{name}.svg")))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("avp-loadgen report"), "{stdout}");
        assert!(
            stdout.contains("ok                       300 (100.000% of sent)"),
            "{stdout}"
        );
        json
    };
    let (a, b) = (run("a", "1"), run("b", "4"));
    let hgrm = std::fs::read_to_string(dir.join("a.hgrm")).unwrap();
    assert!(hgrm.contains("Total count    =          300]"), "{hgrm}");
    // The run's plot: its parameters on top, the percentiles on a log axis, the timeline.
    let svg = std::fs::read_to_string(dir.join("a.svg")).unwrap();
    for part in [
        "avp-loadgen: ",
        "connections: 2",
        "latency by percentile",
        "99%",
        "throughput per second",
        "corrected latency of the answers received each second",
    ] {
        assert!(svg.contains(part), "{part:?} not in the plot");
    }

    let plot = dir.join("compare.svg");
    let text = succeeds(&[
        "compare".as_ref(),
        a.as_ref(),
        b.as_ref(),
        "--plot".as_ref(),
        plot.as_ref(),
    ]);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("avp-loadgen compare"), "{svg}");
    assert!(svg.contains("latency by percentile"), "{svg}");
    let sent = text.lines().find(|l| l.starts_with("sent ")).unwrap();
    assert!(sent.ends_with("1.000x"), "{sent}");
    assert!(
        text.lines().any(|l| l.starts_with("corrected p99 ms")),
        "{text}"
    );

    // merge writes a report that compare reads: the two runs' 600 sent, twice the first's.
    let merged = dir.join("merged.json");
    succeeds(&[
        "merge".as_ref(),
        a.as_ref(),
        b.as_ref(),
        "--json".as_ref(),
        merged.as_ref(),
    ]);
    let text = succeeds(&["compare".as_ref(), a.as_ref(), merged.as_ref()]);
    let sent = text.lines().find(|l| l.starts_with("sent ")).unwrap();
    assert!(sent.contains(" 600 ") && sent.ends_with("2.000x"), "{sent}");

    // A file that is not a run report is refused with a non-zero status.
    std::fs::write(dir.join("bad.json"), "{\"schema\": \"other\"}").unwrap();
    let out = Command::new(BIN)
        .arg("compare")
        .arg(&a)
        .arg(dir.join("bad.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_with_no_answer_says_why() {
    // A port nothing listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["--target", &format!("tcp://127.0.0.1:{port}")])
        .args(["--duration", "1s", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NO ANSWERS"), "{stdout}");
    assert!(stdout.contains("Connection refused"), "{stdout}");
    let corrected = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("corrected"))
        .unwrap();
    assert!(
        !corrected.contains("us") && corrected.contains('-'),
        "{corrected}"
    );
    assert!(stdout.contains("Nothing was answered"), "{stdout}");
}

#[test]
fn a_sweep_with_no_answer_says_why_and_shows_no_latency() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["--target", &format!("tcp://127.0.0.1:{port}"), "--sweep"])
        .args([
            "--slo",
            "p99=5ms",
            "--sweep-steps",
            "1",
            "--duration",
            "1s",
            "-q",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no step row: {stdout}"));
    assert!(row.contains("nothing answered"), "{row}");
    assert!(row.contains("Connection refused"), "{row}");
    assert!(
        !row.contains("us "),
        "a latency where nothing was answered: {row}"
    );
}

#[test]
fn a_run_whose_requests_are_never_answered_says_they_timed_out() {
    // A target that takes every request and answers none.
    let addr = spawn_server(Arc::new(|_, _: &avp_proto::Message<'_>| Vec::new()));
    let out = Command::new(BIN)
        .args(["--target", &format!("tcp://{addr}")])
        .args(["--duration", "1s", "--timeout", "100ms", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NO ANSWERS"), "{stdout}");
    assert!(
        stdout.contains("requests timed out: no answer came within --timeout"),
        "{stdout}"
    );
}

#[test]
fn output_files_are_checked_before_the_run() {
    let dir = std::env::temp_dir().join(format!("avp-loadgen-out-{}", std::process::id()));
    let bad: [(&str, std::path::PathBuf, &str); 3] = [
        ("--plot", dir.join("x.gif"), ".svg or .png"),
        ("--json", dir.join("no/such/dir/x.json"), "No such file"),
        ("--html", std::env::temp_dir(), "is a directory"),
    ];
    for (flag, path, why) in bad {
        let out = Command::new(BIN)
            .args(["--embedded", "--duration", "1m", flag])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(why), "{flag}: {stderr}");
        // Refused before anything started: no node, no run.
        assert!(!stderr.contains("embedded avpd node"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_embedded_run_says_what_it_measured_and_what_to_run_next() {
    let out = Command::new(BIN)
        .args(["--embedded", "--requests", "2000", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let sentence = stdout
        .lines()
        .find(|l| l.starts_with("One avpd node worker in this process answered "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        sentence.contains("from 10 connections, 1 outstanding each"),
        "{sentence}"
    );
    assert!(
        sentence.contains("not yet a capacity at a latency objective"),
        "{sentence}"
    );
    assert!(
        stdout.contains("avp-loadgen --embedded --sweep --slo p99=5ms"),
        "{stdout}"
    );
    assert!(
        stdout.contains("avp-loadgen --embedded --agents "),
        "{stdout}"
    );
}
