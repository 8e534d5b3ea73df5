//! The full-screen terminal (ratatui): the fleet table, the links and their status, the keys.
//!
//! [`Screen`] is the state and its drawing, free of IO so it can be tested with ratatui's
//! `TestBackend`; [`run`] is the loop that feeds it updates and keys.

use super::command::{parse_pause, Command};
use super::links::{LinkSet, Update, UpdateKind};
use super::table::{FleetTable, SortKey};
use avp_endpoint::Endpoint;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;
use std::time::{Duration, Instant, SystemTime};

/// Longest wait for a key before the screen is redrawn with fresh updates.
const REDRAW: Duration = Duration::from_millis(250);
/// Width of the CPU and memory bars, in cells.
const BAR_WIDTH: usize = 20;

/// State of one link as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkState {
    Connecting,
    Connected,
    Down { reason: String, retry_at: Instant },
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing outside the screen.
    None,
    /// Send this command on every link.
    Send(Command),
    /// Leave.
    Quit,
}

/// Everything the full-screen terminal shows.
pub struct Screen {
    table: FleetTable,
    links: Vec<(String, LinkState)>,
    sort: SortKey,
    /// The pause length being typed, while the prompt is open.
    prompt: Option<String>,
    /// Until when the operator paused the pushes, as far as this screen knows.
    paused_until: Option<Instant>,
    /// Each link's answer to the last command, or an input error.
    message: String,
}

impl Screen {
    /// An empty screen for these links, sorted by CPU.
    pub fn new(endpoints: &[Endpoint]) -> Self {
        Screen {
            table: FleetTable::default(),
            links: endpoints
                .iter()
                .map(|e| (e.to_string(), LinkState::Connecting))
                .collect(),
            sort: SortKey::Cpu,
            prompt: None,
            paused_until: None,
            message: String::new(),
        }
    }

    /// Takes in one update from the links, received at `now`.
    pub fn apply(&mut self, update: Update, now: Instant) {
        let Some((name, state)) = self.links.get_mut(update.link) else {
            return;
        };
        match update.kind {
            UpdateKind::Connected => *state = LinkState::Connected,
            UpdateKind::Down { reason, retry_at } => *state = LinkState::Down { reason, retry_at },
            UpdateKind::Report(r) => self.table.update(update.link, &r, now),
            UpdateKind::Response { code, info } => {
                let text = format!("{name}: {code} {info}");
                self.note(text);
            }
            UpdateKind::NotSent { command, reason } => {
                let text = format!("{name}: {command} not sent: {reason}");
                self.note(text);
            }
        }
    }

    /// Adds one link's outcome of the last command to the footer.
    fn note(&mut self, text: String) {
        if !self.message.is_empty() {
            self.message.push_str(" · ");
        }
        self.message.push_str(&text);
    }

    /// Handles one key press at `now`.
    pub fn handle_key(&mut self, key: KeyEvent, now: Instant) -> Action {
        if let Some(typed) = self.prompt.as_mut() {
            match key.code {
                KeyCode::Char(c) if is_duration_char(c) && typed.len() < 12 => typed.push(c),
                KeyCode::Backspace => {
                    typed.pop();
                }
                KeyCode::Esc => self.prompt = None,
                KeyCode::Enter => {
                    let typed = self.prompt.take().unwrap_or_default();
                    match parse_pause(&typed) {
                        Ok(secs) => {
                            self.paused_until = Some(now + Duration::from_secs(secs));
                            self.message.clear();
                            return Action::Send(Command::Pause(secs));
                        }
                        Err(e) => self.message = e,
                    }
                }
                _ => {}
            }
            return Action::None;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
            KeyCode::Char('c') => {
                self.sort = SortKey::Cpu;
                Action::None
            }
            KeyCode::Char('m') => {
                self.sort = SortKey::Mem;
                Action::None
            }
            KeyCode::Char('n') => {
                self.sort = SortKey::Node;
                Action::None
            }
            KeyCode::Char('p') => {
                self.prompt = Some(String::new());
                Action::None
            }
            KeyCode::Char('r') => {
                self.paused_until = None;
                self.message.clear();
                Action::Send(Command::Resume)
            }
            _ => Action::None,
        }
    }

    /// Draws the whole screen.
    pub fn render(&self, frame: &mut Frame, now: Instant, wall_now: SystemTime) {
        let links_height = u16::try_from(self.links.len() + 2).unwrap_or(u16::MAX);
        let [header, table, links, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(links_height),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(self.header_line(now)), header);
        frame.render_widget(self.fleet_table(now, wall_now), table);
        let link_lines: Vec<Line> = self
            .links
            .iter()
            .map(|(name, state)| Line::from(link_line(name, state, now)))
            .collect();
        frame.render_widget(
            Paragraph::new(link_lines).block(Block::bordered().title(" links ")),
            links,
        );
        let footer_text = match &self.prompt {
            Some(typed) => {
                format!("Pause for how long (90, 90s, 5m, 1h30m)? {typed}_   (Enter sends, Esc cancels)")
            }
            None if !self.message.is_empty() => self.message.clone(),
            None => "c sort by cpu · m by memory · n by name · p pause · r resume · q quit".into(),
        };
        frame.render_widget(Paragraph::new(footer_text), footer);
    }

    fn header_line(&self, now: Instant) -> Line<'static> {
        let mut text = format!(
            "avpd term · {} nodes · sorted by {}",
            self.table.len(),
            self.sort.label()
        );
        if let Some(left) = self
            .paused_until
            .map(|t| t.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
        {
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            text.push_str(&format!(" · PAUSED, {secs}s left (r resumes)"));
        }
        Line::styled(text, Style::new().add_modifier(Modifier::BOLD))
    }

    fn fleet_table(&self, now: Instant, wall_now: SystemTime) -> Table<'static> {
        let rows = self.table.sorted(self.sort).into_iter().map(|r| {
            let (link, status) = self.links.get(r.link).map_or_else(
                || ("?".to_string(), String::new()),
                |(name, state)| (name.clone(), link_status(state, now)),
            );
            Row::new(vec![
                r.node.clone(),
                format!("{:>3}%", r.cpu_percent),
                bar(r.cpu_percent),
                format!("{:>3}%", r.mem_percent),
                bar(r.mem_percent),
                format_age(r.age(now, wall_now)),
                link,
                status,
            ])
        });
        let widths = [
            Constraint::Min(12),
            Constraint::Length(4),
            Constraint::Length(BAR_WIDTH as u16),
            Constraint::Length(4),
            Constraint::Length(BAR_WIDTH as u16),
            Constraint::Length(6),
            Constraint::Min(10),
            Constraint::Length(20),
        ];
        Table::new(rows, widths)
            .header(
                Row::new(["NODE", "CPU", "", "MEM", "", "AGE", "LINK", "STATUS"])
                    .style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan)),
            )
            .block(Block::bordered().title(" fleet "))
    }
}

/// A link's status in a few words: `connected`, `reconnecting in N s`.
fn link_status(state: &LinkState, now: Instant) -> String {
    match state {
        LinkState::Connecting => "connecting".into(),
        LinkState::Connected => "connected".into(),
        LinkState::Down { retry_at, .. } => {
            let secs = retry_at.saturating_duration_since(now).as_secs_f32();
            format!("reconnecting in {secs:.0} s")
        }
    }
}

/// A link's line in the links box: the status and, when down, why.
fn link_line(name: &str, state: &LinkState, now: Instant) -> String {
    let status = link_status(state, now);
    match state {
        LinkState::Down { reason, .. } => format!("{name}  {status} ({reason})"),
        _ => format!("{name}  {status}"),
    }
}

/// A bar of [`BAR_WIDTH`] cells, filled in proportion to `percent`.
fn bar(percent: u8) -> String {
    let filled = (usize::from(percent.min(100)) * BAR_WIDTH + 50) / 100;
    "█".repeat(filled) + &"░".repeat(BAR_WIDTH - filled)
}

/// True for the characters a duration is written with (`90`, `1h30m`, `1.5m`).
fn is_duration_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '.' | 'u' | 's' | 'm' | 'h' | 'd')
}

/// A short age: `0.4s`, `12s`, `5m`, `3h`.
fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=9 => format!("{:.1}s", d.as_secs_f32()),
        10..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Runs the full-screen terminal until the operator quits.
pub fn run(links: &LinkSet) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> std::io::Result<()> {
        let mut screen = Screen::new(links.endpoints());
        loop {
            let now = Instant::now();
            while let Ok(update) = links.updates.try_recv() {
                screen.apply(update, now);
            }
            terminal.draw(|f| screen.render(f, now, SystemTime::now()))?;
            if !event::poll(REDRAW)? {
                continue;
            }
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            match screen.handle_key(key, Instant::now()) {
                Action::None => {}
                Action::Send(command) => links.commander().broadcast(command),
                Action::Quit => return Ok(()),
            }
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::Report;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn screen_text(screen: &Screen, now: Instant) -> String {
        let mut t = Terminal::new(TestBackend::new(150, 14)).unwrap();
        t.draw(|f| screen.render(f, now, SystemTime::now()))
            .unwrap();
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_pause_prompt_takes_a_duration() {
        let eps: Vec<Endpoint> = vec!["tcp://127.0.0.1:7701".parse().unwrap()];
        let now = Instant::now();
        let mut s = Screen::new(&eps);
        s.handle_key(key(KeyCode::Char('p')), now);
        for c in "1h30mq".chars() {
            s.handle_key(key(KeyCode::Char(c)), now);
        }
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), now),
            Action::Send(Command::Pause(5_400)),
            "q is not part of a duration and is ignored"
        );
        s.handle_key(key(KeyCode::Char('p')), now);
        s.handle_key(key(KeyCode::Char('0')), now);
        assert_eq!(s.handle_key(key(KeyCode::Enter), now), Action::None);
        assert!(screen_text(&s, now).contains("whole seconds, 1s to 7d"));
    }

    #[test]
    fn shows_nodes_links_and_the_pause_prompt() {
        let eps: Vec<Endpoint> = vec![
            "tcp://127.0.0.1:7701".parse().unwrap(),
            "tcp://127.0.0.1:7702".parse().unwrap(),
        ];
        let now = Instant::now();
        let mut s = Screen::new(&eps);
        s.apply(
            Update {
                link: 0,
                kind: UpdateKind::Connected,
            },
            now,
        );
        s.apply(
            Update {
                link: 1,
                kind: UpdateKind::Down {
                    reason: "connection refused".into(),
                    retry_at: now + Duration::from_secs(4),
                },
            },
            now,
        );
        let report = Report {
            fleet: None,
            cpu_percent: 50,
            mem_percent: 75,
            timestamp_ms: None,
            node_id: Some("web-1".into()),
            instance: None,
        };
        s.apply(
            Update {
                link: 0,
                kind: UpdateKind::Report(report),
            },
            now,
        );
        let text = screen_text(&s, now);
        assert!(text.contains("1 nodes · sorted by cpu"), "{text}");
        let row = text.lines().find(|l| l.contains("web-1")).unwrap();
        assert!(row.contains(" 50%") && row.contains(" 75%"), "{row}");
        assert!(
            row.contains("tcp://127.0.0.1:7701") && row.contains("connected"),
            "{row}"
        );
        assert!(text.contains(&format!("{}{}", "█".repeat(10), "░".repeat(10))));
        assert!(text.contains("tcp://127.0.0.1:7701  connected"), "{text}");
        assert!(
            text.contains("reconnecting in 4 s (connection refused)"),
            "{text}"
        );

        assert_eq!(s.handle_key(key(KeyCode::Char('p')), now), Action::None);
        s.handle_key(key(KeyCode::Char('4')), now);
        s.handle_key(key(KeyCode::Char('2')), now);
        assert!(screen_text(&s, now).contains("Pause for how long (90, 90s, 5m, 1h30m)? 42_"));
        assert_eq!(
            s.handle_key(key(KeyCode::Enter), now),
            Action::Send(Command::Pause(42))
        );
        assert!(screen_text(&s, now).contains("PAUSED, 42s left"));
        let answer = UpdateKind::Response {
            code: 200,
            info: "paused".into(),
        };
        s.apply(
            Update {
                link: 0,
                kind: answer,
            },
            now,
        );
        let refused = UpdateKind::NotSent {
            command: Command::Pause(42),
            reason: "not connected".into(),
        };
        s.apply(
            Update {
                link: 1,
                kind: refused,
            },
            now,
        );
        let text = screen_text(&s, now);
        assert!(
            text.contains("tcp://127.0.0.1:7701: 200 paused · tcp://127.0.0.1:7702: pause 42 not sent: not connected"),
            "{text}"
        );
        assert_eq!(
            s.handle_key(key(KeyCode::Char('r')), now),
            Action::Send(Command::Resume)
        );
        s.handle_key(key(KeyCode::Char('m')), now);
        assert!(screen_text(&s, now).contains("sorted by memory"));
        assert_eq!(s.handle_key(key(KeyCode::Char('q')), now), Action::Quit);
    }

    #[test]
    fn a_bad_pause_length_is_refused() {
        let now = Instant::now();
        let mut s = Screen::new(&[]);
        s.handle_key(key(KeyCode::Char('p')), now);
        assert_eq!(s.handle_key(key(KeyCode::Enter), now), Action::None);
        assert!(s.message.contains("expected a duration"), "{}", s.message);
    }

    #[test]
    fn ages_and_bars() {
        assert_eq!(format_age(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_age(Duration::from_secs(12)), "12s");
        assert_eq!(format_age(Duration::from_secs(300)), "5m");
        assert_eq!(bar(0), "░".repeat(BAR_WIDTH));
        assert_eq!(bar(100), "█".repeat(BAR_WIDTH));
    }
}
