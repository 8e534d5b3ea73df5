//! `avp-loadgen compare A.json B.json ...`: run reports side by side, with each one's ratio to
//! the first, and the parameters that differ.

use crate::charts::Named;
use crate::error::Error;
use crate::report::RunReport;
use std::fmt::Write as _;
use std::path::Path;

/// Reads a run report written by `--json` (or by `merge`).
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

/// The parameters whose values are not the same in every run: `(name, value in each run)`.
pub fn differing_params(runs: &[Named<'_>]) -> Vec<(String, Vec<String>)> {
    let rows: Vec<Vec<(&'static str, String)>> =
        runs.iter().map(|(_, r)| r.params.rows()).collect();
    let mut names: Vec<&'static str> = Vec::new();
    for r in &rows {
        for (k, _) in r {
            if !names.contains(k) {
                names.push(k);
            }
        }
    }
    names
        .into_iter()
        .filter_map(|k| {
            let values: Vec<String> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .find(|(n, _)| *n == k)
                        .map_or("-".into(), |(_, v)| v.clone())
                })
                .collect();
            values
                .iter()
                .any(|v| *v != values[0])
                .then(|| (k.to_string(), values))
        })
        .collect()
}

/// The side-by-side table of the runs: every headline figure, and each run's ratio to the first.
pub fn compare(runs: &[Named<'_>]) -> String {
    let mut t = String::new();
    for (i, (name, r)) in runs.iter().enumerate() {
        let _ = writeln!(
            t,
            "{}: {name}  ({}, {} mode)",
            letter(i),
            r.params.target,
            r.params.mode
        );
    }
    let diff = differing_params(runs);
    if !diff.is_empty() {
        let _ = writeln!(t, "parameters that differ:");
        for (k, values) in &diff {
            let _ = writeln!(t, "  {k:<18} {}", values.join("  |  "));
        }
    }
    let _ = write!(t, "{:<26}", "figure");
    for i in 0..runs.len() {
        let _ = write!(t, " {:>16}", letter(i));
    }
    for i in 1..runs.len() {
        let _ = write!(t, " {:>9}", format!("{}/A", letter(i)));
    }
    let _ = writeln!(t);
    let figures: Vec<Vec<(String, f64)>> = runs.iter().map(|(_, r)| r.figures()).collect();
    for (row, (name, va)) in figures[0].iter().enumerate() {
        let _ = write!(t, "{name:<26}");
        for f in &figures {
            let _ = write!(t, " {:>16}", num(f[row].1));
        }
        for f in &figures[1..] {
            let _ = write!(t, " {:>9}", ratio(*va, f[row].1));
        }
        let _ = writeln!(t);
    }
    t
}

/// `A`, `B`, ... for the runs in order.
fn letter(i: usize) -> String {
    match u8::try_from(i) {
        Ok(n) if n < 26 => char::from(b'A' + n).to_string(),
        _ => format!("#{}", i + 1),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a != 0.0 {
        format!("{:.3}x", b / a)
    } else if b == 0.0 {
        "=".into()
    } else {
        "-".into()
    }
}

/// A figure as the tables print it: whole numbers grouped, small ones to three decimals.
pub fn num(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 1000.0 {
        crate::report::group(v)
    } else {
        format!("{v:.3}")
    }
}
