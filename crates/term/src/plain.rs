//! `avpd term --plain`: one line per pushed row on stdout, for logs and scripts, and the
//! commands typed on stdin (the words of [`crate::command::USAGE`], one command a line, sent on
//! every link).
//!
//! Every line starts with `time=`, when the terminal received what it tells (ISO 8601, UTC,
//! milliseconds); then, by kind:
//!
//! - a row: `node=NAME cpu=C mem=M ts=MS state=STATE received=MS [paused_until=MS] link=URL`
//!   (`ts` and `received` are `-` when the row had none; STATE is `ok`, `stale`, `paused`,
//!   `clock-skew` or `removed`);
//! - a node's result of a command: `result link=URL node=NAME code=CODE info=TEXT`;
//! - a command's answer: `response link=URL code=CODE info=TEXT`;
//! - a command not sent, or whose answer will not come: `failed link=URL reason=TEXT`.
//!
//! Peer-supplied text goes through [`avp_units::printable`]; a NODE_ID also has its white
//! space escaped, so that it stays one field. INFO and reasons are last on their line and may
//! hold spaces. Link changes go to the log on stderr.

use super::clock::{iso_utc, Now};
use super::command::parse_line;
use super::fleet::UNNAMED;
use super::links::{LinkSet, UpdateKind};
use avp_proto::{NodeState, Report};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use tracing::{info, warn};

/// A STATE as a plain line writes it.
pub fn state_word(state: NodeState) -> &'static str {
    match state {
        NodeState::Ok => "ok",
        NodeState::Stale => "stale",
        NodeState::Paused => "paused",
        NodeState::ClockSkew => "clock-skew",
        NodeState::Removed => "removed",
    }
}

/// A NODE_ID as one field: control characters and white space escaped (`\u{1b}`, `\u{20}`).
pub fn node_field(node: &str) -> Cow<'_, str> {
    let shown = avp_units::printable(node);
    if !shown.contains(char::is_whitespace) {
        return shown;
    }
    let mut out = String::with_capacity(shown.len() + 8);
    for c in shown.chars() {
        if c.is_whitespace() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// The stdout line for one row, received at `wall_ms` on link `link`.
pub fn row_line(report: &Report<'_>, link: &str, wall_ms: u64) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let fleet = report.fleet.unwrap_or_default();
    let mut line = format!(
        "time={} node={} cpu={} mem={} ts={} state={} received={}",
        iso_utc(wall_ms),
        node_field(report.node_id.as_deref().unwrap_or(UNNAMED)),
        report.cpu_percent,
        report.mem_percent,
        opt(report.timestamp_ms),
        state_word(fleet.state),
        opt(fleet.received_ms),
    );
    if let Some(until) = fleet.paused_until_ms {
        let _ = write!(line, " paused_until={until}");
    }
    let _ = write!(line, " link={link}");
    line
}

/// The stdout line for `kind`, received at `wall_ms` on link `link`; `None` for link
/// changes, which go to the log.
pub fn line(kind: &UpdateKind, link: &str, wall_ms: u64) -> Option<String> {
    let time = iso_utc(wall_ms);
    Some(match kind {
        UpdateKind::Row(r) => row_line(r, link, wall_ms),
        UpdateKind::NodeResult {
            node, code, info, ..
        } => format!(
            "time={time} result link={link} node={} code={code} info={}",
            node_field(node),
            avp_units::printable(info)
        ),
        UpdateKind::Answer { code, info, .. } => format!(
            "time={time} response link={link} code={code} info={}",
            avp_units::printable(info)
        ),
        UpdateKind::Failed { reason, .. } => {
            format!(
                "time={time} failed link={link} reason={}",
                avp_units::printable(reason)
            )
        }
        UpdateKind::Connected | UpdateKind::Down { .. } => return None,
    })
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
                    Ok(Some(command)) => {
                        commander.broadcast(&command);
                    }
                    Ok(None) => {}
                    Err(e) => warn!("{e}"),
                }
            }
        })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let names: Vec<String> = links.endpoints().iter().map(|e| e.to_string()).collect();
    for first in links.updates.iter() {
        // Write what has come in, then flush once: a burst of rows costs one write.
        for update in std::iter::once(first).chain(links.updates.try_iter()) {
            let link = &names[update.link];
            match &update.kind {
                UpdateKind::Connected => info!("{link}: connected"),
                UpdateKind::Down { reason, retry_at } => {
                    let wait = retry_at.saturating_duration_since(std::time::Instant::now());
                    warn!("{link}: link down: {reason}; reconnecting in {wait:.1?}");
                }
                kind => {
                    if let Some(text) = line(kind, link, Now::read().wall_ms) {
                        if writeln!(out, "{text}").is_err() {
                            // The reader went away (a closed pipe): nothing left to do.
                            return Ok(());
                        }
                    }
                }
            }
        }
        if out.flush().is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::CommandId;
    use avp_proto::FleetState;

    fn report(node: &str) -> Report<'static> {
        Report {
            fleet: None,
            cpu_percent: 12,
            mem_percent: 34,
            timestamp_ms: Some(1_700_000_000_000),
            node_id: Some(node.to_string().into()),
            instance: None,
        }
    }

    #[test]
    fn a_row_line_has_every_field_in_order() {
        let mut r = report("ws-17");
        assert_eq!(
            row_line(&r, "tcp://n:7701", 1_700_000_000_123),
            "time=2023-11-14T22:13:20.123Z node=ws-17 cpu=12 mem=34 ts=1700000000000 \
             state=ok received=- link=tcp://n:7701"
        );
        r.fleet = Some(FleetState {
            state: NodeState::Paused,
            received_ms: Some(1_700_000_000_050),
            paused_until_ms: Some(1_700_000_090_000),
        });
        r.timestamp_ms = None;
        assert_eq!(
            row_line(&r, "tcp://n:7701", 1_700_000_000_123),
            "time=2023-11-14T22:13:20.123Z node=ws-17 cpu=12 mem=34 ts=- state=paused \
             received=1700000000050 paused_until=1700000090000 link=tcp://n:7701"
        );
        for (state, word) in [
            (NodeState::Stale, "stale"),
            (NodeState::ClockSkew, "clock-skew"),
            (NodeState::Removed, "removed"),
        ] {
            r.fleet = Some(FleetState {
                state,
                ..FleetState::default()
            });
            assert!(row_line(&r, "l", 0).contains(&format!(" state={word} ")));
        }
    }

    #[test]
    fn peer_text_is_escaped() {
        let line = row_line(&report("evil\x1b[2J name\n"), "l", 0);
        assert!(
            line.contains(" node=evil\\u{1b}[2J\\u{20}name\\n cpu=12 "),
            "{line}"
        );
        assert!(!line.chars().any(char::is_control));
        let result = UpdateKind::NodeResult {
            command: CommandId(1),
            node: "ws 1".into(),
            code: 504,
            info: "no answer\x07 in 5 s".into(),
        };
        assert_eq!(
            line_of(&result),
            "result link=l node=ws\\u{20}1 code=504 info=no answer\\u{7} in 5 s"
        );
    }

    fn line_of(kind: &UpdateKind) -> String {
        let text = line(kind, "l", 0).unwrap();
        text.strip_prefix("time=1970-01-01T00:00:00.000Z ")
            .unwrap()
            .to_string()
    }

    #[test]
    fn answers_and_failures() {
        let answer = UpdateKind::Answer {
            command: CommandId(1),
            code: 200,
            info: "paused 2 of 2 nodes".into(),
        };
        assert_eq!(
            line_of(&answer),
            "response link=l code=200 info=paused 2 of 2 nodes"
        );
        let failed = UpdateKind::Failed {
            command: CommandId(1),
            reason: "not sent: not connected".into(),
        };
        assert_eq!(
            line_of(&failed),
            "failed link=l reason=not sent: not connected"
        );
        assert_eq!(line(&UpdateKind::Connected, "l", 0), None);
    }
}
