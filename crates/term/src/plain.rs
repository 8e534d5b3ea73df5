//! `avpd term --plain`: one line per report on stdout, for logs and pipes.
//!
//! Lines on stdout: `node=NAME cpu=C mem=M ts=MS link=URL` per report (`ts=-` when the report
//! had no TIMESTAMP) and `response link=URL code=CODE info=TEXT` per command answer. Commands
//! are read from stdin, one per line (`pause DURATION`, `resume`), and sent on every link. Link
//! changes go to the log on stderr.

use super::command::parse_line;
use super::links::{LinkSet, UpdateKind};
use avp_proto::Report;
use std::io::{BufRead, Write};
use tracing::{info, warn};

/// The stdout line for one report.
pub fn report_line(report: &Report<'_>, link: &str) -> String {
    let ts = report
        .timestamp_ms
        .map_or_else(|| "-".to_string(), |t| t.to_string());
    format!(
        "node={} cpu={} mem={} ts={ts} link={link}",
        report.node_id.as_deref().unwrap_or(super::table::UNNAMED),
        report.cpu_percent,
        report.mem_percent
    )
}

/// Prints updates until stdout closes (or the process is stopped).
pub fn run(links: &LinkSet) -> std::io::Result<()> {
    let commander = links.commander().clone();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                match parse_line(&line) {
                    Ok(Some(command)) => commander.broadcast(command),
                    Ok(None) => {}
                    Err(e) => warn!("{e}"),
                }
            }
        })?;
    let mut out = std::io::stdout().lock();
    for update in links.updates.iter() {
        let link = &links.endpoints()[update.link];
        let line = match update.kind {
            UpdateKind::Report(r) => report_line(&r, &link.to_string()),
            UpdateKind::Response { code, info } => {
                format!("response link={link} code={code} info={info}")
            }
            UpdateKind::Connected => {
                info!("{link}: connected");
                continue;
            }
            UpdateKind::Down { reason, retry_at } => {
                let wait = retry_at.saturating_duration_since(std::time::Instant::now());
                warn!("{link}: link down: {reason}; reconnecting in {wait:.1?}");
                continue;
            }
            UpdateKind::NotSent { command, reason } => {
                warn!("{link}: {command} not sent: {reason}");
                continue;
            }
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing left to do.
            return Ok(());
        }
    }
    Ok(())
}
