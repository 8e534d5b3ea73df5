//! The binary end to end: a run writing its files, then `compare` on two reports.

mod common;

use common::{correct_answer, spawn_server};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_avp-loadgen");

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

    let out = Command::new(BIN)
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let sent = text.lines().find(|l| l.starts_with("sent ")).unwrap();
    assert!(sent.ends_with("1.000x"), "{sent}");
    assert!(
        text.lines().any(|l| l.starts_with("corrected p99 ms")),
        "{text}"
    );

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
