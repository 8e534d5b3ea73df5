//! The systemd units in `contrib/systemd/`: `systemd-analyze verify` accepts them without a
//! word, and `systemd-analyze security` rates their hardening at an exposure of 2.0 or lower.
//!
//! Both checks run on a copy whose ExecStart names the `avpd` binary just built (verify
//! rejects a unit whose program does not exist). Skipped, with a note on stderr, where
//! systemd-analyze is not installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the units start the binary once installed.
const INSTALLED_BINARY: &str = "/usr/local/bin/avpd";

/// The units kept in the repository.
const UNITS: [&str; 2] = ["avpd.service", "avpd-agent.service"];

/// Highest accepted overall exposure, on systemd-analyze's 0..=100 threshold scale (it prints
/// a tenth of it: 20 is "2.0").
const MAX_EXPOSURE: &str = "20";

fn systemd_analyze(args: &[&str], unit: &Path) -> Option<Output> {
    match Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
    {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

/// A copy of `unit` in the test's scratch directory that starts the binary under test.
fn with_built_binary(unit: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/systemd")
        .join(unit);
    let text =
        std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let exec_start = format!("ExecStart={INSTALLED_BINARY} ");
    assert_eq!(
        text.matches(&exec_start).count(),
        1,
        "{unit} must start {INSTALLED_BINARY} exactly once"
    );
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unit);
    let text = text.replace(
        &exec_start,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_avpd")),
    );
    std::fs::write(&copy, text).expect("write the unit's copy");
    copy
}

#[test]
fn units_verify_cleanly_and_are_hardened() {
    for unit in UNITS {
        let copy = with_built_binary(unit);
        let Some(verify) = systemd_analyze(&["verify", "--man=no"], &copy) else {
            avp_testkit::skip_without("systemd-analyze (Debian package systemd)");
            return;
        };
        let complaints = String::from_utf8_lossy(&verify.stderr);
        // verify exits 0 on unknown keys and unparsable values; it only says so on stderr.
        assert!(
            verify.status.success() && complaints.trim().is_empty(),
            "systemd-analyze verify {unit}: {}\n{complaints}",
            verify.status
        );
        let threshold = format!("--threshold={MAX_EXPOSURE}");
        let security = systemd_analyze(&["security", "--offline=true", &threshold], &copy)
            .expect("systemd-analyze ran a moment ago");
        assert!(
            security.status.success(),
            "{unit} is exposed above {MAX_EXPOSURE}:\n{}{}",
            String::from_utf8_lossy(&security.stdout),
            String::from_utf8_lossy(&security.stderr)
        );
    }
}
