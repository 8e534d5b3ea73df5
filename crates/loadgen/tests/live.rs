//! The live view, as a person sees it: the loadgen under tmux (stdout a terminal), its screen
//! read with `capture-pane`; `q` stops the run early and every report is still written.
//! Needs tmux installed (CI installs it).

mod common;

use avp_loadgen::report::RunReport;
use avp_testkit::Tmux;
use common::{correct_answer, spawn_server};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_avp-loadgen");

#[test]
fn the_live_view_shows_the_run_and_q_stops_it_with_every_report_written() {
    let addr = spawn_server(Arc::new(|_, m: &avp_proto::Message<'_>| {
        vec![correct_answer(m)]
    }));
    let dir = std::env::temp_dir().join(format!("avp-loadgen-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("run.json");
    let html = dir.join("run.html");
    // A run far longer than the test: only `q` ends it. Afterwards the shell says it is done.
    let tmux = Tmux::start("sh");
    tmux.keys(&[
        &format!(
            "{BIN} --target tcp://{addr} --rate 2000 --connections 4 --duration 1h --json {} --html {}; \
             echo exit=$?; tmux -L {} wait-for -S done",
            json.display(),
            html.display(),
            tmux.socket()
        ),
        "Enter",
    ]);
    let screen = tmux.wait_screen("the live view with answers", |s| {
        s.contains("rate now")
            && s.contains("answered")
            && s.contains("q: stop now")
            && !s.contains("answered                0 of")
    });
    assert!(
        screen.contains(&format!("avp-loadgen → tcp://{addr}")),
        "{screen}"
    );
    assert!(screen.contains("overall      p50"), "{screen}");
    assert!(
        screen.contains("corrected latency, answers so far"),
        "{screen}"
    );
    assert!(screen.contains("correct answers per second"), "{screen}");

    tmux.keys(&["q"]);
    tmux.wait_for("done");
    let screen = tmux.screen();
    assert!(screen.contains("exit=0"), "{screen}");
    assert!(
        screen.contains("(stopped early)"),
        "the report is printed after the view: {screen}"
    );
    let report = RunReport::from_json(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.stopped_early);
    assert!(
        report.ok > 0 && report.errors.failed_requests() == 0,
        "{:?}",
        report.errors
    );
    assert!(report.window_s < 3_600.0);
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("<figure id=\"percentiles\""));
    std::fs::remove_dir_all(&dir).unwrap();
}
