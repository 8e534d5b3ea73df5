//! The `avp-loadgen` binary: parse the command line, run load (or a sweep, or a comparison),
//! print the report and write the requested files.
#![forbid(unsafe_code)]

use anyhow::Context;
mod cli;

use avp_loadgen::plot::{self, Chart, Series, XAxis};
use avp_loadgen::report::RunReport;
use avp_loadgen::run::run;
use avp_loadgen::{compare, hgrm, sweep};
use clap::Parser;
use cli::{Cli, Command, LoadArgs};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("avp-loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(Command::Compare { a, b }) = &cli.command {
        let (ra, rb) = (compare::load(a)?, compare::load(b)?);
        let names = (a.display().to_string(), b.display().to_string());
        print!("{}", compare::compare(&ra, &rb, &names.0, &names.1));
        return Ok(ExitCode::SUCCESS);
    }
    let args = cli.load;
    // 10,000 connections need more descriptors than the usual soft limit of 1024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("avp-loadgen: cannot raise the open-file limit: {e}");
    }
    if args.embedded {
        return run_embedded(&args);
    }
    run_against(&args, args.target.clone())
}

/// A run or sweep against `target`.
fn run_against(args: &LoadArgs, target: avp_endpoint::Endpoint) -> anyhow::Result<ExitCode> {
    if args.sweep {
        run_sweep(args, target)
    } else {
        run_once(args, target)
    }
}

/// `--embedded`: the run against a node started in this process.
#[cfg(feature = "embedded")]
fn run_embedded(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let (node, target) = avp_loadgen::embedded::start(args.target.scheme, args.node_workers)?;
    eprintln!(
        "embedded avpd node ({} worker(s)) on {target}",
        args.node_workers.max(1)
    );
    let code = run_against(args, target);
    node.shutdown();
    code
}

#[cfg(not(feature = "embedded"))]
fn run_embedded(_: &LoadArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this avp-loadgen was built without the `embedded` feature: give --target")
}

/// One run: table on stdout, then the requested files. Exit status 1 if any measured request
/// failed or none was sent.
fn run_once(args: &LoadArgs, target: avp_endpoint::Endpoint) -> anyhow::Result<ExitCode> {
    let cfg = args.run_config(target);
    let outcome = run(&cfg)?;
    let report = RunReport::new(&cfg, &outcome);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &args.hgrm {
        write_file(path, |w| hgrm::write_hgrm(&outcome.stats.corrected, w))?;
    }
    if !args.plot.is_empty() {
        let chart = Chart {
            title: format!(
                "avp-loadgen latency by percentile: {} ({} msg/s)",
                report.params.target,
                avp_loadgen::report::group(report.throughput)
            ),
            x_axis: XAxis::Percentile,
            x_label: "percentile".into(),
            y_label: "latency (ms)".into(),
            series: vec![
                Series {
                    name: "corrected (from scheduled send)".into(),
                    points: plot::spectrum(&outcome.stats.corrected),
                },
                Series {
                    name: "uncorrected (from actual send)".into(),
                    points: plot::spectrum(&outcome.stats.uncorrected),
                },
            ],
            limit: None,
        };
        for path in &args.plot {
            plot::render(&chart, path)?;
        }
    }
    let failed = report.errors.failed_requests() > 0 || report.sent == 0;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A sweep: one table row per step, the summary, then the requested files. Exit status 1 if
/// no step met the objectives.
fn run_sweep(args: &LoadArgs, target: avp_endpoint::Endpoint) -> anyhow::Result<ExitCode> {
    let base = args.run_config(target);
    println!("{}", sweep::table_header());
    let result = sweep::sweep(&base, &args.sweep_config(), |step| {
        println!("{}", sweep::table_row(step));
    })?;
    println!("{}", result.summary());
    if let Some(path) = &args.json {
        write_json(path, &result)?;
    }
    if !args.plot.is_empty() {
        let pick = |f: fn(&avp_loadgen::report::LatencySummary) -> f64| {
            result
                .steps
                .iter()
                .map(|s| {
                    (
                        s.report.throughput.max(1.0),
                        f(&s.report.latency.corrected) / 1e3,
                    )
                })
                .collect()
        };
        let chart = Chart {
            title: format!("avp-loadgen sweep: {}", base.target),
            x_axis: XAxis::Rate,
            x_label: "achieved throughput (msg/s)".into(),
            y_label: "corrected latency (ms)".into(),
            series: vec![
                Series {
                    name: "p50".into(),
                    points: pick(|l| l.p50_us),
                },
                Series {
                    name: "p99".into(),
                    points: pick(|l| l.p99_us),
                },
                Series {
                    name: "p99.9".into(),
                    points: pick(|l| l.p99_9_us),
                },
            ],
            limit: result
                .slo
                .first()
                .map(|s| (format!("SLO {}", s.percentile), s.limit_us / 1e3)),
        };
        for path in &args.plot {
            plot::render(&chart, path)?;
        }
    }
    Ok(if result.best_rate.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    write_file(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        writeln!(w)
    })
}

fn write_file(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut w = BufWriter::new(
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    f(&mut w)
        .and_then(|_| w.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}
