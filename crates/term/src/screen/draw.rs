//! Draws the full screen from its [`View`]: the header with the counts, the links, the fleet
//! table or a node's detail with its charts, the bottom line, and the overlays. It changes
//! nothing in the view but the scroll position, which follows the height drawn.

use super::columns::{self, widths, Widths};
use super::keys::{KEYS, PROMPT_KEYS};
use super::view::{LinkState, Overlay, Prompt, PromptKind, Scope, View};
use crate::clock::{LocalTime, Now};
use crate::fleet::Row;
use crate::history::{SLOT, SLOTS};
use crate::tally::{LinkOutcome, Tally};
use avp_proto::{result_code, NodeState};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Chart, Clear, Dataset, GraphType, Paragraph, Row as TableRow, Table, Wrap,
};
use ratatui::Frame;
use std::borrow::Cow;
use std::time::Duration;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The bottom line when nothing happened yet.
const HINTS: &str = "? help · / filter · Enter detail · p pause · r resume · f freeze · q quit";

/// Draws the whole screen at `now`, with times in `local`.
pub fn render(view: &mut View, frame: &mut Frame, now: Now, local: &LocalTime) {
    view.refresh();
    let links_height = u16::try_from(view.links.len()).unwrap_or(u16::MAX);
    let [header, links, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(links_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(view, now)), header);
    frame.render_widget(Paragraph::new(link_lines(view, now)), links);
    match view.detail.clone() {
        Some(node) => draw_detail(frame, body, view, &node, now, local),
        None => draw_table(frame, body, view, now, local),
    }
    frame.render_widget(Paragraph::new(footer_line(view)), footer);
    match &view.overlay {
        Overlay::Help => draw_help(frame),
        Overlay::Prompt(p) => draw_prompt(frame, p),
        Overlay::Results => {
            if let Some(tally) = &view.last {
                draw_results(frame, tally, &view.links);
            }
        }
        Overlay::None | Overlay::Filter { .. } => {}
    }
}

fn header_line(view: &View, now: Now) -> Line<'static> {
    let c = view.fleet.counts();
    let mut text = format!(
        "{} nodes · {} stale · {} paused",
        c.nodes, c.stale, c.paused
    );
    if c.skewed > 0 {
        text.push_str(&format!(" · {} clock skew", c.skewed));
    }
    // Most important first: a narrow screen cuts the end.
    if let Some(until) = view.frozen_until.filter(|_| view.is_frozen(now.mono)) {
        let left = until.saturating_duration_since(now.mono);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        text.push_str(&format!(" · FROZEN {secs}s left"));
    }
    if !view.filter.is_empty() {
        text.push_str(&format!(
            " · filter {} ({} shown)",
            avp_units::printable(view.filter.text()),
            view.order.len()
        ));
    }
    text.push_str(&format!(" · sort {}", view.sort.label()));
    Line::styled(text, Style::new().add_modifier(Modifier::BOLD))
}

fn link_lines(view: &View, now: Now) -> Vec<Line<'static>> {
    let numbered = view.links.len() > 1;
    view.links
        .iter()
        .enumerate()
        .map(|(i, (name, state))| {
            let label = if numbered {
                format!("link {} {name}", i + 1)
            } else {
                format!("link {name}")
            };
            let (status, style) = match state {
                LinkState::Connecting => ("connecting".to_string(), Style::new().fg(Color::Yellow)),
                LinkState::Connected => ("connected".to_string(), Style::new().fg(Color::Green)),
                LinkState::Down { reason, retry_at } => {
                    let secs = retry_at.saturating_duration_since(now.mono).as_secs_f32();
                    (
                        format!("reconnecting in {secs:.0} s ({reason})"),
                        Style::new().fg(Color::Red),
                    )
                }
            };
            Line::from(vec![Span::raw(label + " "), Span::styled(status, style)])
        })
        .collect()
}

fn footer_line(view: &View) -> Line<'static> {
    match &view.overlay {
        Overlay::Filter { .. } => Line::from(format!(
            "/{}_   Enter keeps · Esc cancels · Ctrl-U clears · * or ? make it a glob",
            avp_units::printable(view.filter.text())
        )),
        _ if !view.message.is_empty() => Line::from(view.message.clone()),
        _ => Line::styled(HINTS, Style::new().fg(Color::DarkGray)),
    }
}

/// A row's status and its colour: `ok`, `stale`, `paused until HH:MM:SS`, `clock skew`.
fn status(row: &Row, local: &LocalTime) -> (String, Style) {
    match row.state {
        NodeState::Ok | NodeState::Removed => ("ok".into(), Style::new().fg(Color::Green)),
        NodeState::Stale => ("stale".into(), Style::new().fg(Color::Yellow)),
        NodeState::Paused => (
            row.paused_until_ms.map_or_else(
                || "paused".to_string(),
                |ms| format!("paused until {}", local.hms(ms)),
            ),
            Style::new().fg(Color::Cyan),
        ),
        NodeState::ClockSkew => ("clock skew".into(), Style::new().fg(Color::Red)),
    }
}

/// Width of the longest status of `row` (without reading a clock).
fn status_width(row: &Row) -> u16 {
    match row.state {
        NodeState::Paused if row.paused_until_ms.is_some() => "paused until 00:00:00".len() as u16,
        NodeState::Paused => 6,
        NodeState::Stale => 5,
        NodeState::ClockSkew => 10,
        NodeState::Ok | NodeState::Removed => 2,
    }
}

fn draw_table(frame: &mut Frame, area: Rect, view: &mut View, now: Now, local: &LocalTime) {
    if view.order.is_empty() {
        let text = if view.fleet.is_empty() {
            "no node yet: waiting for the fleet view's rows"
        } else {
            "no node matches the filter (/ to change it)"
        };
        frame.render_widget(Paragraph::new(text), area);
        return;
    }
    let rows_shown = usize::from(area.height.saturating_sub(1));
    view.scroll_to_cursor(rows_shown);
    let (mut name_need, mut status_need) = ("NODE".len() as u16, "STATUS".len() as u16);
    for row in view.order.iter().filter_map(|&i| view.fleet.row(i)) {
        if name_need < columns::NAME_CAP {
            let w = avp_units::printable(&row.node).width();
            name_need = name_need.max(u16::try_from(w).unwrap_or(u16::MAX));
        }
        status_need = status_need.max(status_width(row));
    }
    let w = widths(area.width, name_need, status_need, view.links.len() > 1);
    let end = (view.offset + rows_shown).min(view.order.len());
    let rows = (view.offset..end).filter_map(|at| {
        let row = view.fleet.row(view.order[at])?;
        let style = if at == view.cursor {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        Some(table_row(row, w, now, local).style(style))
    });
    let mut header = vec!["NODE", "CPU"];
    let mut constraints = vec![
        Constraint::Length(w.name),
        Constraint::Length(columns::PERCENT),
    ];
    if w.bar > 0 {
        header.push("");
        constraints.push(Constraint::Length(w.bar));
    }
    header.push("MEM");
    constraints.push(Constraint::Length(columns::PERCENT));
    if w.bar > 0 {
        header.push("");
        constraints.push(Constraint::Length(w.bar));
    }
    header.extend(["AGE", "STATUS"]);
    constraints.extend([
        Constraint::Length(columns::AGE),
        Constraint::Length(w.status),
    ]);
    if w.via {
        header.push("VIA");
        constraints.push(Constraint::Length(columns::VIA));
    }
    let table = Table::new(rows, constraints).header(
        TableRow::new(header).style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan)),
    );
    frame.render_widget(table, area);
}

fn table_row(row: &Row, w: Widths, now: Now, local: &LocalTime) -> TableRow<'static> {
    let (status, status_style) = status(row, local);
    let mut cells = vec![
        Span::raw(fit(&avp_units::printable(&row.node), usize::from(w.name)).into_owned()),
        Span::raw(format!("{:>3}%", row.cpu_percent)),
    ];
    if w.bar > 0 {
        cells.push(Span::raw(bar(row.cpu_percent, w.bar)));
    }
    cells.push(Span::raw(format!("{:>3}%", row.mem_percent)));
    if w.bar > 0 {
        cells.push(Span::raw(bar(row.mem_percent, w.bar)));
    }
    cells.push(Span::raw(format_age(row.age(now.wall_ms))));
    cells.push(Span::styled(status, status_style));
    if w.via {
        cells.push(Span::raw((row.link + 1).to_string()));
    }
    TableRow::new(cells)
}

fn draw_detail(
    frame: &mut Frame,
    area: Rect,
    view: &View,
    node: &str,
    now: Now,
    local: &LocalTime,
) {
    let name = avp_units::printable(node);
    let Some(row) = view.fleet.get(node) else {
        let text = format!(
            "{name}: no row now (removed from the fleet view, or not sent again since the \
             link reconnected). Esc goes back."
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    };
    let [info, cpu_area, mem_area] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    let (status, status_style) = status(row, local);
    let time = |ms: Option<u64>| ms.map_or_else(|| "-".to_string(), |ms| local.hms(ms));
    let span = avp_units::format_duration(SLOT * SLOTS as u32);
    let lines = vec![
        Line::from(vec![
            Span::styled(name.into_owned(), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" · "),
            Span::styled(status, status_style),
            Span::raw(format!(
                " · cpu {}% · mem {}% · age {}",
                row.cpu_percent,
                row.mem_percent,
                format_age(row.age(now.wall_ms))
            )),
        ]),
        Line::from(format!(
            "received {} · sampled {} · {} samples over the last {span}{}",
            time(row.received_ms),
            time(row.timestamp_ms),
            row.history.samples(),
            match view.links.get(row.link) {
                Some((name, _)) if view.links.len() > 1 => format!(" · via {name}"),
                _ => String::new(),
            }
        )),
    ];
    frame.render_widget(Paragraph::new(lines), info);
    let (cpu, mem) = row.history.points(view.fleet.started(), now.mono);
    frame.render_widget(
        chart(&format!(" CPU % (last {span}) "), &cpu, Color::Green),
        cpu_area,
    );
    frame.render_widget(
        chart(&format!(" memory % (last {span}) "), &mem, Color::Magenta),
        mem_area,
    );
}

fn chart<'a>(title: &str, points: &'a [(f64, f64)], colour: Color) -> Chart<'a> {
    let span = (SLOT * SLOTS as u32).as_secs_f64();
    let half = avp_units::format_duration(Duration::from_secs_f64(span / 2.0));
    let full = avp_units::format_duration(Duration::from_secs_f64(span));
    let data = Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(colour))
        .data(points);
    Chart::new(vec![data])
        .block(Block::bordered().title(title.to_string()))
        .x_axis(Axis::default().bounds([-span, 0.0]).labels([
            format!("-{full}"),
            format!("-{half}"),
            "now".to_string(),
        ]))
        .y_axis(
            Axis::default()
                .bounds([0.0, 100.0])
                .labels(["0", "50", "100"]),
        )
}

/// A rectangle `width` x `height` in the middle of `area`, within it.
fn centred(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}

fn draw_help(frame: &mut Frame) {
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| Line::from(format!("{key:<11} {what}")))
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(format!("In a prompt: {PROMPT_KEYS}")));
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let area = centred(frame.area(), 78, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys (Esc closes) ")),
        area,
    );
}

fn draw_prompt(frame: &mut Frame, prompt: &Prompt) {
    let mut lines = Vec::new();
    if prompt.kind != PromptKind::Freeze {
        lines.push(Line::from("Nodes:"));
        for (i, scope) in prompt.scopes.iter().enumerate() {
            let text = match scope {
                Scope::Node(id) => format!("this node: {}", avp_units::printable(id)),
                Scope::Filtered(filter, n) => match filter.target() {
                    Ok(t) => format!(
                        "the filtered set: {} ({n} nodes)",
                        avp_units::printable(t.glob())
                    ),
                    Err(e) => format!("the filtered set: {e}"),
                },
                Scope::Fleet(n) => format!("the whole fleet: * ({n} nodes)"),
            };
            let (mark, style) = if i == prompt.chosen {
                ("▸ ", Style::new().add_modifier(Modifier::BOLD))
            } else {
                ("  ", Style::new())
            };
            lines.push(Line::styled(format!("  {mark}{text}"), style));
        }
    }
    let (title, question) = match prompt.kind {
        PromptKind::Pause => (" pause agents ", Some("For how long (90, 90s, 5m, 1h)?")),
        PromptKind::Resume => (" resume agents ", None),
        PromptKind::Freeze => (
            " freeze the view: pause the pushes to this terminal ",
            Some("For how long (90, 90s, 5m, 1h)?"),
        ),
    };
    if let Some(q) = question {
        lines.push(Line::from(format!("{q} {}_", prompt.typed)));
    }
    lines.push(Line::styled(
        if prompt.kind == PromptKind::Freeze {
            "Enter sends · Esc cancels"
        } else {
            PROMPT_KEYS
        },
        Style::new().fg(Color::DarkGray),
    ));
    if let Some(e) = &prompt.error {
        lines.push(Line::styled(e.clone(), Style::new().fg(Color::Red)));
    }
    let area = frame.area();
    let width = 76.min(area.width);
    // Long errors wrap: leave them room.
    let wrapped: usize = lines
        .iter()
        .map(|l| {
            l.width()
                .div_ceil(usize::from(width.saturating_sub(2)).max(1))
                .max(1)
        })
        .sum();
    let height = u16::try_from(wrapped + 2).unwrap_or(u16::MAX);
    let area = centred(area, width, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title)),
        area,
    );
}

fn draw_results(frame: &mut Frame, tally: &Tally, links: &[(String, LinkState)]) {
    let waiting = tally
        .links()
        .iter()
        .filter(|o| matches!(o, LinkOutcome::Pending(_) | LinkOutcome::Sent))
        .count();
    let summary = match (waiting, tally.verdict()) {
        (0, Ok(())) => format!(
            "done: {} of {} nodes answered 200",
            tally.nodes_ok(),
            tally.nodes().len()
        ),
        (0, Err(shortfall)) => format!("done: {shortfall}"),
        (n, _) => format!(
            "{} of {} nodes answered 200 so far; waiting for {n} link(s)",
            tally.nodes_ok(),
            tally.nodes().len()
        ),
    };
    let mut lines = vec![Line::styled(
        summary,
        Style::new().add_modifier(Modifier::BOLD),
    )];
    // Failures first: they are what the operator has to act on.
    let failed = tally.nodes().iter().filter(|n| n.code != result_code::OK);
    let ok = tally.nodes().iter().filter(|n| n.code == result_code::OK);
    for n in failed.chain(ok) {
        let style = if n.code == result_code::OK {
            Style::new()
        } else {
            Style::new().fg(Color::Red)
        };
        lines.push(Line::styled(
            format!(
                "{}: {} {}",
                avp_units::printable(&n.node),
                n.code,
                avp_units::printable(&n.info)
            ),
            style,
        ));
    }
    for ((name, _), outcome) in links.iter().zip(tally.links()) {
        let text = match outcome {
            LinkOutcome::Answered { code, info } => {
                format!("answer of {name}: {code} {}", avp_units::printable(info))
            }
            LinkOutcome::Failed(reason) => format!("{name}: {reason}"),
            LinkOutcome::Pending(_) | LinkOutcome::Sent => format!("{name}: waiting"),
        };
        lines.push(Line::styled(text, Style::new().fg(Color::DarkGray)));
    }
    let area = frame.area();
    let height = area.height.saturating_sub(4).max(3);
    let room = usize::from(height.saturating_sub(2));
    if lines.len() > room {
        let more = lines.len() - room + 1;
        lines.truncate(room - 1);
        lines.push(Line::from(format!(
            "… {more} more lines (avpd term --plain or a one-shot lists them all)"
        )));
    }
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let area = centred(area, 100.min(area.width.saturating_sub(2)), height);
    frame.render_widget(Clear, area);
    let title = format!(" {} · Esc closes ", tally.command());
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

/// `text` in at most `width` cells: cut in the middle when longer (`lab-3-w…-0017`), so
/// that names which differ at the end stay apart.
fn fit(text: &str, width: usize) -> Cow<'_, str> {
    if text.width() <= width {
        return text.into();
    }
    if width == 0 {
        return "".into();
    }
    let keep = width - 1;
    let (head_room, tail_room) = (keep.div_ceil(2), keep / 2);
    let take = |chars: &mut dyn Iterator<Item = char>, room: usize| {
        let mut used = 0;
        let mut out = Vec::new();
        for c in chars {
            let w = c.width().unwrap_or(0);
            if used + w > room {
                break;
            }
            used += w;
            out.push(c);
        }
        out
    };
    let head = take(&mut text.chars(), head_room);
    let mut tail = take(&mut text.chars().rev(), tail_room);
    tail.reverse();
    let mut out: String = head.into_iter().collect();
    out.push('…');
    out.extend(tail);
    out.into()
}

/// A bar `width` cells wide, filled in proportion to `percent`.
fn bar(percent: u8, width: u16) -> String {
    let width = usize::from(width);
    let filled = (usize::from(percent.min(100)) * width + 50) / 100;
    "█".repeat(filled) + &"░".repeat(width - filled)
}

/// A short age: `0.4s`, `12s`, `5m`, `3h`, `2d`.
fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=9 => format!("{:.1}s", d.as_secs_f32()),
        10..=119 => format!("{s}s"),
        120..=7_199 => format!("{}m", s / 60),
        7_200..=172_799 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests;
