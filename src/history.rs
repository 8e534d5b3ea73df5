//! `avpd history`: prints the reports a store holds, or a per-node summary of them.

use crate::store_args::StoreConnArgs;
use anyhow::{bail, Context};
use avpd_store::history::{self, NodeSummary, Query, Row, Summary};
use clap::{Args, ValueEnum};
use std::io::{self, BufWriter, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Command-line options of `avpd history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub store: StoreConnArgs,
    /// Only this node.
    #[arg(long, conflicts_with = "pattern")]
    pub node: Option<String>,
    /// Only the nodes whose ids match this glob (`*` any run of characters, `?` one).
    #[arg(long = "match", value_name = "GLOB")]
    pub pattern: Option<String>,
    /// Reports stored since then: a duration back from now (`1h`, `90m`) or a time
    /// (`2026-12-01T08:00:00Z`, `2026-12-01 08:00:00`, UTC) [default: everything stored].
    #[arg(long, value_parser = parse_time)]
    pub since: Option<SystemTime>,
    /// Reports stored before then (same forms as --since) [default: now].
    #[arg(long, value_parser = parse_time)]
    pub until: Option<SystemTime>,
    /// Output form.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// One line per node: samples, first and last report, least/mean/most CPU and memory.
    #[arg(long)]
    pub summary: bool,
}

/// How `avpd history` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Reads a time: a duration back from now, or an RFC 3339 time in UTC.
fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(ago) = avp_units::parse_duration(text) {
        return SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("{text:?}: before the Unix epoch"));
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!(
            "{text:?}: expected a duration back from now (1h, 90m) or a UTC time \
             (2026-12-01T08:00:00Z)"
        )
    })
}

/// Runs `avpd history`.
pub fn run(args: HistoryArgs) -> anyhow::Result<()> {
    // A command's output is its rows: the client's connection news only with RUST_LOG.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    crate::logging::init(Some(&filter))?;
    let Some(config) = args.store.config(String::new())? else {
        bail!("--store is required: the NATS server(s) to read from");
    };
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since >= until {
            bail!("--since must be before --until");
        }
    }
    let query = Query {
        node: args.node.clone(),
        pattern: args.pattern.clone(),
        since: args.since,
        until: Some(args.until.unwrap_or_else(SystemTime::now)),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut summary = Summary::default();
    let printer = Printer::new(args.format);
    let mut failed = None;
    if !args.summary {
        printer.rows_header(&mut out)?;
    }
    let skipped = history::read(&config, &query, |row| {
        if args.summary {
            summary.add(&row);
        } else if failed.is_none() {
            failed = printer.row(&mut out, &row).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(e).context("writing the reports");
    }
    if args.summary {
        printer.summary_header(&mut out)?;
        for (node, s) in summary.nodes() {
            printer.summary(&mut out, node, s)?;
        }
    }
    out.flush()?;
    if skipped > 0 {
        eprintln!("{skipped} stored messages were not reports this version reads; skipped");
    }
    Ok(())
}

/// Writes rows and summaries in one [`Format`].
struct Printer {
    format: Format,
}

impl Printer {
    fn new(format: Format) -> Printer {
        Printer { format }
    }

    fn rows_header(&self, out: &mut impl Write) -> io::Result<()> {
        match self.format {
            Format::Table => writeln!(
                out,
                "{:<24} {:<24} {:>4} {:>4} {:<24} {:>10} {:<16} PEER",
                "RECEIVED", "NODE", "CPU%", "MEM%", "SAMPLED", "SEQUENCE", "COLLECTOR"
            ),
            Format::Csv => writeln!(
                out,
                "received,node,cpu_percent,mem_percent,sampled,sequence,instance,collector,peer"
            ),
            Format::Json => Ok(()),
        }
    }

    fn row(&self, out: &mut impl Write, row: &Row) -> io::Result<()> {
        let r = &row.report;
        let received = iso(row.received_ms);
        let sampled = r.timestamp_ms.map(iso).unwrap_or_default();
        let sequence = row.sequence.map(|s| s.to_string()).unwrap_or_default();
        match self.format {
            Format::Table => writeln!(
                out,
                "{received:<24} {:<24} {:>4} {:>4} {sampled:<24} {sequence:>10} {:<16} {}",
                avp_units::printable(&row.node),
                r.cpu_percent,
                r.mem_percent,
                avp_units::printable(&row.collector),
                row.peer
            ),
            Format::Csv => writeln!(
                out,
                "{received},{},{},{},{sampled},{sequence},{},{},{}",
                csv(&row.node),
                r.cpu_percent,
                r.mem_percent,
                r.instance.map(|i| i.to_string()).unwrap_or_default(),
                csv(&row.collector),
                row.peer
            ),
            Format::Json => {
                let value = serde_json::json!({
                    "received": received,
                    "node": row.node,
                    "cpu_percent": r.cpu_percent,
                    "mem_percent": r.mem_percent,
                    "sampled": r.timestamp_ms.map(iso),
                    "sequence": row.sequence,
                    "instance": r.instance,
                    "collector": row.collector,
                    "peer": row.peer.to_string(),
                });
                writeln!(out, "{value}")
            }
        }
    }

    fn summary_header(&self, out: &mut impl Write) -> io::Result<()> {
        match self.format {
            Format::Table => writeln!(
                out,
                "{:<24} {:>8} {:<24} {:<24} {:>14} {:>14}",
                "NODE", "SAMPLES", "FIRST", "LAST", "CPU% min/avg/max", "MEM% min/avg/max"
            ),
            Format::Csv => writeln!(
                out,
                "node,samples,first,last,cpu_min,cpu_avg,cpu_max,mem_min,mem_avg,mem_max"
            ),
            Format::Json => Ok(()),
        }
    }

    fn summary(&self, out: &mut impl Write, node: &str, s: &NodeSummary) -> io::Result<()> {
        let (first, last) = (iso(s.first_ms), iso(s.last_ms));
        let (c, m) = (s.cpu, s.mem);
        match self.format {
            Format::Table => {
                let cpu = format!("{}/{:.1}/{}", c.0, c.1, c.2);
                let mem = format!("{}/{:.1}/{}", m.0, m.1, m.2);
                writeln!(
                    out,
                    "{:<24} {:>8} {first:<24} {last:<24} {cpu:>16} {mem:>16}",
                    avp_units::printable(node),
                    s.samples
                )
            }
            Format::Csv => writeln!(
                out,
                "{},{},{first},{last},{},{:.2},{},{},{:.2},{}",
                csv(node),
                s.samples,
                c.0,
                c.1,
                c.2,
                m.0,
                m.1,
                m.2
            ),
            Format::Json => {
                let value = serde_json::json!({
                    "node": node,
                    "samples": s.samples,
                    "first": first,
                    "last": last,
                    "cpu_percent": {"min": c.0, "avg": c.1, "max": c.2},
                    "mem_percent": {"min": m.0, "avg": m.1, "max": m.2},
                });
                writeln!(out, "{value}")
            }
        }
    }
}

/// A time in ms since the Unix epoch as RFC 3339 UTC with milliseconds.
fn iso(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}
