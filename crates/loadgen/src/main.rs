//! The `avp-loadgen` binary: parse the command line, check the output files, run load (or a
//! sweep), show it live, print the report and write the requested files; or compare or merge
//! reports.
#![forbid(unsafe_code)]

use anyhow::Context;
mod cli;

use avp_loadgen::live::LiveView;
use avp_loadgen::observe::Observer;
use avp_loadgen::output::{self, Output};
use avp_loadgen::progress::Progress;
use avp_loadgen::report::RunReport;
use avp_loadgen::run::{run, Stop};
use avp_loadgen::sweep::SweepReport;
use avp_loadgen::{charts, compare, hgrm, hlog, html, merge, plot, summary, sweep};
use clap::Parser;
use cli::{Cli, Command, LoadArgs};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
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
    match cli.command {
        Some(Command::Compare {
            reports,
            html,
            plot,
        }) => return run_compare(&reports, html.as_deref(), &plot),
        Some(Command::Merge {
            reports,
            json,
            html,
            plot,
        }) => return run_merge(&reports, json.as_deref(), html.as_deref(), &plot),
        None => {}
    }
    let mut args = cli.load;
    check_outputs(&args)?;
    // Settings no run can use are refused now, before a node is started or the terminal taken.
    args.run_config(args.target.clone())?.check()?;
    if args.sweep {
        args.sweep_config().check()?;
    }
    if let Some(path) = &args.key_file {
        let contents = std::fs::read(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        args.signer = Some(
            avp_proto::auth::Key::from_secret_file(&contents)
                .with_context(|| format!("key file {} holds no secret", path.display()))?,
        );
    }
    // 10,000 connections need more descriptors than the usual soft limit of 1024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("avp-loadgen: cannot raise the open-file limit: {e}");
    }
    if args.embedded {
        return run_embedded(&args);
    }
    run_against(&args, args.target.clone(), None)
}

/// Every file the run is to write, checked before it starts.
fn check_outputs(args: &LoadArgs) -> anyhow::Result<()> {
    let files = [
        (&args.json, Output::Json),
        (&args.html, Output::Html),
        (&args.hgrm, Output::Hgrm),
        (&args.hlog, Output::Hlog),
    ];
    let outputs: Vec<(&Path, Output)> = files
        .iter()
        .filter_map(|(p, kind)| p.as_deref().map(|p| (p, *kind)))
        .chain(args.plot.iter().map(|p| (p.as_path(), Output::Plot)))
        .collect();
    Ok(output::check(&outputs)?)
}

/// A run or sweep against `target`; `embedded` is the worker count of a node started in this
/// process, if the target is one.
fn run_against(
    args: &LoadArgs,
    target: avp_endpoint::Endpoint,
    embedded: Option<usize>,
) -> anyhow::Result<ExitCode> {
    if args.sweep {
        run_sweep(args, target, embedded)
    } else {
        run_once(args, target, embedded)
    }
}

/// `--embedded`: the run against a node started in this process.
#[cfg(feature = "embedded")]
fn run_embedded(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    let (node, target) = avp_loadgen::embedded::start(args.target.scheme, args.node_workers)?;
    let workers = args.node_workers.max(1);
    eprintln!("embedded avpd node ({workers} worker(s)) on {target}");
    let code = run_against(args, target, Some(workers));
    node.shutdown();
    code
}

#[cfg(not(feature = "embedded"))]
fn run_embedded(_: &LoadArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this avp-loadgen was built without the `embedded` feature: give --target")
}

/// How the run is shown while it goes: full screen when stdout is a terminal, progress lines
/// on stderr otherwise, or nothing.
enum Watch {
    Live(Box<LiveView>),
    Lines(Progress<std::io::Stderr>),
    Quiet(()),
}

impl Watch {
    fn start(args: &LoadArgs, stop: &Stop, title: String) -> anyhow::Result<Watch> {
        Ok(if args.quiet {
            Watch::Quiet(())
        } else if !args.plain && std::io::stdout().is_terminal() {
            let live =
                LiveView::start(stop.clone(), title).context("cannot start the live view")?;
            Watch::Live(Box::new(live))
        } else {
            Watch::Lines(Progress::new(std::io::stderr()))
        })
    }

    fn observer(&mut self) -> &mut dyn Observer {
        match self {
            Watch::Live(v) => v.as_mut(),
            Watch::Lines(p) => p,
            Watch::Quiet(nothing) => nothing,
        }
    }

    /// Gives the terminal back, so that the report is printed where the run was started.
    fn finish(self) -> anyhow::Result<()> {
        if let Watch::Live(v) = self {
            v.finish().context("cannot restore the terminal")?;
        }
        Ok(())
    }
}

/// One run: table on stdout, then the requested files. Exit status 1 if any measured request
/// failed or none was sent.
fn run_once(
    args: &LoadArgs,
    target: avp_endpoint::Endpoint,
    embedded: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let cfg = args.run_config(target)?;
    let mut watch = Watch::start(args, &cfg.stop, format!("avp-loadgen → {}", cfg.target))?;
    let outcome = run(&cfg, watch.observer());
    watch.finish()?;
    let outcome = outcome?;
    let mut report = RunReport::new(&cfg, &outcome);
    report.params.embedded_node_workers = embedded;
    print!("{}", report.table());
    println!("\n{}", summary::sentence(&report));
    if let Some(next) = summary::next_command(&report) {
        println!("{next}");
    }
    write_run_files(
        &report,
        args.json.as_deref(),
        args.html.as_deref(),
        &args.plot,
    )?;
    if let Some(path) = &args.hgrm {
        let (corrected, _) = report.decode_histograms().map_err(anyhow::Error::msg)?;
        write_file(path, |w| hgrm::write_hgrm(&corrected, w))?;
    }
    if let Some(path) = &args.hlog {
        write_file(path, |w| hlog::write_hlog(&report, w))?;
    }
    let failed = report.errors.failed_requests() > 0 || report.sent == 0 || report.ok == 0;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The JSON, HTML and plots of a run (or merged) report.
fn write_run_files(
    report: &RunReport,
    json: Option<&Path>,
    html_path: Option<&Path>,
    plots: &[PathBuf],
) -> anyhow::Result<()> {
    if let Some(path) = json {
        write_json(path, report)?;
    }
    if let Some(path) = html_path {
        let page = html::run_page(report).map_err(anyhow::Error::msg)?;
        write_file(path, |w| w.write_all(page.as_bytes()))?;
    }
    if !plots.is_empty() {
        let figure = charts::run_figure(report).map_err(anyhow::Error::msg)?;
        for path in plots {
            plot::render(&figure, path)?;
        }
    }
    Ok(())
}

/// A sweep: one table row per step, the summary, then the requested files. Exit status 1 if
/// no step met the objectives.
fn run_sweep(
    args: &LoadArgs,
    target: avp_endpoint::Endpoint,
    embedded: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let base = args.run_config(target)?;
    let mut watch = Watch::start(
        args,
        &base.stop,
        format!("avp-loadgen sweep → {}", base.target),
    )?;
    let result = sweep::sweep(&base, &args.sweep_config(), watch.observer());
    watch.finish()?;
    let mut result = result?;
    for step in &mut result.steps {
        step.report.params.embedded_node_workers = embedded;
    }
    println!("{}", sweep::table_header());
    for step in &result.steps {
        println!("{}", sweep::table_row(step));
    }
    println!("{}", result.summary());
    write_sweep_files(&result, args)?;
    Ok(if result.best_rate.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_sweep_files(result: &SweepReport, args: &LoadArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        write_json(path, result)?;
    }
    if let Some(path) = &args.html {
        let page = html::sweep_page(result).map_err(anyhow::Error::msg)?;
        write_file(path, |w| w.write_all(page.as_bytes()))?;
    }
    let figure = charts::sweep_figure(result).map_err(anyhow::Error::msg)?;
    for path in &args.plot {
        plot::render(&figure, path)?;
    }
    Ok(())
}

/// `compare`: the table on stdout and, with `--html` and `--plot`, the page and the plots.
fn run_compare(
    paths: &[PathBuf],
    html_path: Option<&Path>,
    plots: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let mut outputs: Vec<(&Path, Output)> = Vec::new();
    outputs.extend(html_path.map(|p| (p, Output::Html)));
    outputs.extend(plots.iter().map(|p| (p.as_path(), Output::Plot)));
    output::check(&outputs)?;
    let loaded = load_all(paths)?;
    let runs: Vec<(&str, &RunReport)> = loaded.iter().map(|(n, r)| (n.as_str(), r)).collect();
    print!("{}", compare::compare(&runs));
    if let Some(path) = html_path {
        let page = html::compare_page(&runs).map_err(anyhow::Error::msg)?;
        write_file(path, |w| w.write_all(page.as_bytes()))?;
    }
    if !plots.is_empty() {
        let figure = charts::compare_figure(&runs).map_err(anyhow::Error::msg)?;
        for path in plots {
            plot::render(&figure, path)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `merge`: the merged report's table on stdout and the requested files.
fn run_merge(
    paths: &[PathBuf],
    json: Option<&Path>,
    html_path: Option<&Path>,
    plots: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let mut outputs: Vec<(&Path, Output)> = Vec::new();
    outputs.extend(json.map(|p| (p, Output::Json)));
    outputs.extend(html_path.map(|p| (p, Output::Html)));
    outputs.extend(plots.iter().map(|p| (p.as_path(), Output::Plot)));
    output::check(&outputs)?;
    let loaded = load_all(paths)?;
    let merged = merge::merge(&loaded).map_err(anyhow::Error::msg)?;
    print!("{}", merged.table());
    println!("\n{}", summary::sentence(&merged));
    write_run_files(&merged, json, html_path, plots)?;
    Ok(ExitCode::SUCCESS)
}

fn load_all(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, RunReport)>> {
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), compare::load(p)?)))
        .collect()
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
