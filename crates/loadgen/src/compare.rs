//! `avp-loadgen compare A.json B.json`: two run reports side by side, with the ratio B/A.

use crate::error::Error;
use crate::report::RunReport;
use std::fmt::Write as _;
use std::path::Path;

/// Reads a run report written by `--json`.
pub fn load(path: &Path) -> Result<RunReport, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })?;
    RunReport::from_json(&text).map_err(|reason| Error::Report {
        path: path.to_path_buf(),
        reason,
    })
}

/// The side-by-side table of two reports.
pub fn compare(a: &RunReport, b: &RunReport, a_name: &str, b_name: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "A: {a_name}  ({}, {} mode)",
        a.params.target, a.params.mode
    );
    let _ = writeln!(
        t,
        "B: {b_name}  ({}, {} mode)",
        b.params.target, b.params.mode
    );
    let _ = writeln!(t, "{:<26} {:>16} {:>16} {:>9}", "figure", "A", "B", "B/A");
    for ((name, va), (_, vb)) in a.figures().into_iter().zip(b.figures()) {
        let ratio = if va != 0.0 {
            format!("{:.3}x", vb / va)
        } else if vb == 0.0 {
            "=".into()
        } else {
            "-".into()
        };
        let _ = writeln!(t, "{name:<26} {:>16} {:>16} {ratio:>9}", num(va), num(vb));
    }
    t
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 1000.0 {
        crate::report::group(v)
    } else {
        format!("{v:.3}")
    }
}
