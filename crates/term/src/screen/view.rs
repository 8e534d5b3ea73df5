//! The full screen's state and what each key does: the fleet and the links, the sort and the
//! filter, the cursor, the detail view, the overlays (help, the filter being typed, the pause
//! and resume prompts, the last command's results), and the frozen view. No IO and no drawing
//! ([`super::draw`] draws it).

use crate::clock::Now;
use crate::command::{parse_pause, Command, CommandError, Target};
use crate::filter::Filter;
use crate::fleet::{Fleet, SortKey};
use crate::links::{CommandId, Update, UpdateKind};
use crate::tally::Tally;
use avp_endpoint::Endpoint;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::{Duration, Instant};

/// Rows a page moves before the screen was first drawn.
const DEFAULT_PAGE: usize = 10;
/// Longest text a prompt or the filter takes, in characters.
const MAX_TYPED: usize = 64;

/// State of one link as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkState {
    Connecting,
    Connected,
    Down { reason: String, retry_at: Instant },
}

/// What a key asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing outside the screen.
    None,
    /// Send this command on every link, then tell the view ([`View::sent`]).
    Send(Command),
    /// Leave.
    Quit,
}

/// What is drawn over the table or the detail view, and takes the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Overlay {
    None,
    Help,
    /// The filter being typed (applied as it is typed); `before` comes back on Esc.
    Filter {
        before: Filter,
    },
    Prompt(Prompt),
    Results,
}

/// Which command a prompt makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PromptKind {
    Pause,
    Resume,
    Freeze,
}

/// A set of nodes a prompt offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scope {
    /// The node under the cursor (or in the detail view).
    Node(String),
    /// The nodes the filter lets through, and how many are shown.
    Filtered(Filter, usize),
    /// Every node, and how many there are.
    Fleet(usize),
}

/// The pause, resume or freeze prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Prompt {
    pub(super) kind: PromptKind,
    /// Empty for a freeze.
    pub(super) scopes: Vec<Scope>,
    pub(super) chosen: usize,
    /// The duration typed.
    pub(super) typed: String,
    /// Why the last Enter did not send.
    pub(super) error: Option<String>,
}

impl Prompt {
    /// The command the prompt holds now.
    fn command(&self) -> Result<Command, CommandError> {
        let target = || match self.scopes.get(self.chosen) {
            Some(Scope::Node(id)) => Target::node(id),
            Some(Scope::Filtered(filter, _)) => filter.target(),
            Some(Scope::Fleet(_)) | None => Ok(Target::All),
        };
        Ok(match self.kind {
            PromptKind::Pause => {
                let secs = parse_pause(&self.typed)?;
                Command::Pause {
                    target: target()?,
                    secs,
                }
            }
            PromptKind::Resume => Command::Resume { target: target()? },
            PromptKind::Freeze => Command::Freeze {
                secs: parse_pause(&self.typed)?,
            },
        })
    }
}

/// Everything the full-screen terminal shows. See the module documentation.
pub struct View {
    pub(super) fleet: Fleet,
    /// Each link's name and state, in `--connect` order.
    pub(super) links: Vec<(String, LinkState)>,
    pub(super) sort: SortKey,
    pub(super) filter: Filter,
    pub(super) overlay: Overlay,
    /// The node whose detail is shown; the table otherwise.
    pub(super) detail: Option<String>,
    /// The cursor's place in `order`: it stays there while rows move by themselves (the node
    /// a command is for is named in its prompt), and goes back to the top when the sort or the
    /// filter changes. INVARIANT after [`View::refresh`]: below `order.len()`, or 0.
    pub(super) cursor: usize,
    /// The first row shown.
    pub(super) offset: usize,
    /// Rows shown at once, as last drawn.
    pub(super) page: usize,
    /// The rows shown, in order: row numbers of `fleet`.
    pub(super) order: Vec<usize>,
    /// What `order` was made from: the fleet's generation, the sort and the filter.
    order_of: Option<(u64, SortKey, Filter)>,
    /// The last command sent, and its outcome so far.
    pub(super) last: Option<Tally>,
    /// A freeze awaiting its answer, and its length.
    freeze: Option<(CommandId, u64)>,
    /// Until when the pushes to this terminal are frozen, once a node said so.
    pub(super) frozen_until: Option<Instant>,
    /// The bottom line: what happened last.
    pub(super) message: String,
}

impl View {
    /// An empty screen for these links, sorted by CPU; histories count from `started`.
    pub fn new(endpoints: &[Endpoint], started: Instant) -> View {
        View {
            fleet: Fleet::new(started),
            links: endpoints
                .iter()
                .map(|e| (e.to_string(), LinkState::Connecting))
                .collect(),
            sort: SortKey::Cpu,
            filter: Filter::default(),
            overlay: Overlay::None,
            detail: None,
            cursor: 0,
            offset: 0,
            page: DEFAULT_PAGE,
            order: Vec::new(),
            order_of: None,
            last: None,
            freeze: None,
            frozen_until: None,
            message: String::new(),
        }
    }

    /// Takes in one update from the links, received `now`.
    pub fn apply(&mut self, update: Update, now: Now) {
        let Some((_, state)) = self.links.get_mut(update.link) else {
            return;
        };
        match &update.kind {
            UpdateKind::Connected => {
                *state = LinkState::Connected;
                self.fleet.forget_link(update.link);
            }
            UpdateKind::Down { reason, retry_at } => {
                *state = LinkState::Down {
                    reason: reason.clone(),
                    retry_at: *retry_at,
                }
            }
            UpdateKind::Row(report) => self.fleet.apply(update.link, report, now),
            UpdateKind::Answer { command, code, .. } => {
                if let Some((id, secs)) = self.freeze {
                    if id == *command && *code == avp_proto::result_code::OK {
                        self.frozen_until = Some(now.mono + Duration::from_secs(secs));
                    }
                }
            }
            UpdateKind::NodeResult { .. } | UpdateKind::Failed { .. } => {}
        }
        let Some(tally) = self.last.as_mut() else {
            return;
        };
        if !tally.apply(&update) {
            return;
        }
        self.message = match &update.kind {
            _ if tally.is_done() => summary(tally),
            UpdateKind::NodeResult {
                node, code, info, ..
            } => format!(
                "{}: {code} {}",
                avp_units::printable(node),
                avp_units::printable(info)
            ),
            _ => format!(
                "{}: {} of {} nodes answered 200 so far",
                tally.command(),
                tally.nodes_ok(),
                tally.nodes().len()
            ),
        };
    }

    /// Records that `command` went out on every link as `id`.
    pub fn sent(&mut self, id: CommandId, command: Command) {
        match command {
            Command::Freeze { secs } => self.freeze = Some((id, secs)),
            Command::Unfreeze => {
                self.freeze = None;
                self.frozen_until = None;
            }
            Command::Pause { .. } | Command::Resume { .. } => self.overlay = Overlay::Results,
        }
        self.message = format!("{command}: sent");
        let mut tally = Tally::new(id, command, self.links.len());
        for link in 0..self.links.len() {
            tally.sent(link);
        }
        self.last = Some(tally);
    }

    /// True while the pushes to this terminal are frozen.
    pub(super) fn is_frozen(&self, now: Instant) -> bool {
        self.frozen_until.is_some_and(|t| t > now)
    }

    /// Brings `order` and the cursor up to date with the fleet, the sort and the filter.
    pub(super) fn refresh(&mut self) {
        let key = (self.fleet.generation(), self.sort, self.filter.clone());
        if self.order_of.as_ref() != Some(&key) {
            if let Some((_, sort, filter)) = &self.order_of {
                if (*sort, filter) != (self.sort, &self.filter) {
                    self.cursor = 0;
                    self.offset = 0;
                }
            }
            self.order = self.fleet.select(&self.filter, self.sort);
            self.order_of = Some(key);
        }
        self.cursor = self.cursor.min(self.order.len().saturating_sub(1));
    }

    /// The NODE_ID under the cursor.
    fn under_cursor(&self) -> Option<String> {
        self.node_at(self.cursor).map(str::to_string)
    }

    /// The NODE_ID of shown row `at`.
    pub(super) fn node_at(&self, at: usize) -> Option<&str> {
        let i = *self.order.get(at)?;
        self.fleet.row(i).map(|r| r.node.as_str())
    }

    /// Keeps the cursor on the page of `rows` rows that is drawn.
    pub(super) fn scroll_to_cursor(&mut self, rows: usize) {
        self.page = rows.max(1);
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + self.page {
            self.offset = self.cursor + 1 - self.page;
        }
        self.offset = self.offset.min(self.order.len().saturating_sub(self.page));
    }

    /// Handles one key press, `now`.
    pub fn handle_key(&mut self, key: KeyEvent, now: Now) -> Action {
        self.refresh();
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            return Action::Quit;
        }
        match &mut self.overlay {
            Overlay::Help | Overlay::Results => self.overlay_key(key),
            Overlay::Filter { .. } => self.filter_key(key),
            Overlay::Prompt(_) => self.prompt_key(key),
            Overlay::None => self.main_key(key, now),
        }
    }

    fn overlay_key(&mut self, key: KeyEvent) -> Action {
        match (key.code, &self.overlay) {
            (KeyCode::Char('q'), _) => return Action::Quit,
            (KeyCode::Esc, _)
            | (KeyCode::Char('?'), Overlay::Help)
            | (KeyCode::Char('l'), Overlay::Results) => self.overlay = Overlay::None,
            _ => {}
        }
        Action::None
    }

    fn filter_key(&mut self, key: KeyEvent) -> Action {
        let Overlay::Filter { before } = &self.overlay else {
            return Action::None;
        };
        let mut text = self.filter.text().to_string();
        match key.code {
            KeyCode::Esc => {
                self.filter = before.clone();
                self.overlay = Overlay::None;
                return Action::None;
            }
            KeyCode::Enter => {
                self.overlay = Overlay::None;
                return Action::None;
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => text.clear(),
            KeyCode::Char(c) if !c.is_control() && text.chars().count() < MAX_TYPED => text.push(c),
            _ => return Action::None,
        }
        self.filter = Filter::new(&text);
        self.refresh();
        Action::None
    }

    fn prompt_key(&mut self, key: KeyEvent) -> Action {
        let Overlay::Prompt(prompt) = &mut self.overlay else {
            return Action::None;
        };
        let scopes = prompt.scopes.len().max(1);
        match key.code {
            KeyCode::Esc => self.overlay = Overlay::None,
            KeyCode::Tab | KeyCode::Down | KeyCode::Right => {
                prompt.chosen = (prompt.chosen + 1) % scopes;
            }
            KeyCode::BackTab | KeyCode::Up | KeyCode::Left => {
                prompt.chosen = (prompt.chosen + scopes - 1) % scopes;
            }
            KeyCode::Backspace => {
                prompt.typed.pop();
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                prompt.typed.clear()
            }
            KeyCode::Char(c)
                if prompt.kind != PromptKind::Resume
                    && !c.is_control()
                    && prompt.typed.chars().count() < MAX_TYPED =>
            {
                prompt.typed.push(c);
            }
            KeyCode::Enter => match prompt.command() {
                Ok(command) => {
                    self.overlay = Overlay::None;
                    return Action::Send(command);
                }
                Err(e) => prompt.error = Some(e.to_string()),
            },
            _ => {}
        }
        Action::None
    }

    fn main_key(&mut self, key: KeyEvent, now: Now) -> Action {
        let page = self.page as isize;
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Esc => self.detail = None,
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.turn_page(-page),
            KeyCode::PageDown => self.turn_page(page),
            KeyCode::Home => self.move_cursor(isize::MIN / 2),
            KeyCode::End => self.move_cursor(isize::MAX / 2),
            KeyCode::Enter => self.detail = self.under_cursor(),
            KeyCode::Char('/') => {
                self.overlay = Overlay::Filter {
                    before: self.filter.clone(),
                }
            }
            KeyCode::Char('n') => self.sort = SortKey::Name,
            KeyCode::Char('c') => self.sort = SortKey::Cpu,
            KeyCode::Char('m') => self.sort = SortKey::Mem,
            KeyCode::Char('a') => self.sort = SortKey::Age,
            KeyCode::Char('p') => self.open_prompt(PromptKind::Pause),
            KeyCode::Char('r') => self.open_prompt(PromptKind::Resume),
            KeyCode::Char('f') if self.is_frozen(now.mono) => {
                return Action::Send(Command::Unfreeze)
            }
            KeyCode::Char('f') => self.open_prompt(PromptKind::Freeze),
            KeyCode::Char('l') if self.last.is_some() => self.overlay = Overlay::Results,
            KeyCode::Char('l') => self.message = "no command sent yet".into(),
            _ => {}
        }
        Action::None
    }

    /// Scrolls the rows shown by `by` (a page, or minus one) and moves the cursor with them,
    /// so that PgDn shows the next page, not one more row.
    fn turn_page(&mut self, by: isize) {
        let top = self.order.len().saturating_sub(self.page) as isize;
        self.offset = (self.offset as isize).saturating_add(by).clamp(0, top) as usize;
        self.move_cursor(by);
    }

    fn move_cursor(&mut self, by: isize) {
        let last = self.order.len().saturating_sub(1) as isize;
        self.cursor = (self.cursor as isize).saturating_add(by).clamp(0, last) as usize;
        if self.detail.is_some() {
            self.detail = self.under_cursor();
        }
    }

    fn open_prompt(&mut self, kind: PromptKind) {
        let mut scopes = Vec::new();
        if kind != PromptKind::Freeze {
            if let Some(node) = self.detail.clone().or_else(|| self.under_cursor()) {
                scopes.push(Scope::Node(node));
            }
            if !self.filter.is_empty() {
                scopes.push(Scope::Filtered(self.filter.clone(), self.order.len()));
            }
            scopes.push(Scope::Fleet(self.fleet.len()));
        }
        self.overlay = Overlay::Prompt(Prompt {
            kind,
            scopes,
            chosen: 0,
            typed: String::new(),
            error: None,
        });
    }
}

/// One line on a finished command: how many nodes answered 200, or what went wrong.
fn summary(tally: &Tally) -> String {
    match (tally.verdict(), tally.command().target()) {
        (Err(shortfall), _) => shortfall.to_string(),
        (Ok(()), Some(_)) => format!(
            "{}: {} of {} nodes answered 200",
            tally.command(),
            tally.nodes_ok(),
            tally.nodes().len()
        ),
        (Ok(()), None) => format!("{}: answered 200", tally.command()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::{FleetState, NodeState, Report};

    pub(crate) fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    pub(crate) fn row(view: &mut View, node: &str, cpu: u8, state: NodeState) {
        let report = Report {
            fleet: Some(FleetState {
                state,
                received_ms: Some(1_000),
                paused_until_ms: (state == NodeState::Paused).then_some(90_000),
            }),
            cpu_percent: cpu,
            mem_percent: 50,
            timestamp_ms: None,
            node_id: Some(node.to_string().into()),
            instance: None,
        };
        view.apply(
            Update {
                link: 0,
                kind: UpdateKind::Row(report),
            },
            at(),
        );
    }

    pub(crate) fn at() -> Now {
        Now {
            mono: Instant::now(),
            wall_ms: 2_000,
        }
    }

    pub(crate) fn view_with(nodes: usize) -> View {
        let eps: Vec<Endpoint> = vec!["tcp://127.0.0.1:7701".parse().unwrap()];
        let mut v = View::new(&eps, Instant::now());
        for i in 0..nodes {
            row(
                &mut v,
                &format!("ws-{i:02}"),
                (i % 100) as u8,
                NodeState::Ok,
            );
        }
        v
    }

    fn press(v: &mut View, keys: &[KeyCode]) -> Action {
        let mut last = Action::None;
        for &k in keys {
            last = v.handle_key(key(k), at());
        }
        last
    }

    fn typed(v: &mut View, text: &str) -> Action {
        let keys: Vec<KeyCode> = text.chars().map(KeyCode::Char).collect();
        press(v, &keys)
    }

    #[test]
    fn a_page_key_shows_the_next_page() {
        let mut v = view_with(30);
        press(&mut v, &[KeyCode::Char('n')]);
        v.refresh();
        v.scroll_to_cursor(10);
        press(&mut v, &[KeyCode::PageDown]);
        v.scroll_to_cursor(10);
        assert_eq!(
            (v.offset, v.under_cursor().unwrap().as_str()),
            (10, "ws-10")
        );
        press(&mut v, &[KeyCode::PageDown, KeyCode::PageDown]);
        v.scroll_to_cursor(10);
        assert_eq!(
            (v.offset, v.under_cursor().unwrap().as_str()),
            (20, "ws-29")
        );
        press(&mut v, &[KeyCode::PageUp]);
        v.scroll_to_cursor(10);
        assert_eq!(
            (v.offset, v.under_cursor().unwrap().as_str()),
            (10, "ws-19")
        );
    }

    #[test]
    fn the_cursor_moves_by_rows_and_pages() {
        let mut v = view_with(30);
        let under = |v: &mut View| {
            v.refresh();
            v.under_cursor().unwrap()
        };
        assert_eq!(under(&mut v), "ws-29", "the busiest");
        press(&mut v, &[KeyCode::End, KeyCode::Char('n')]);
        assert_eq!(under(&mut v), "ws-00", "a new sort starts at the top");
        press(
            &mut v,
            &[KeyCode::Down, KeyCode::Char('j'), KeyCode::Char('j')],
        );
        assert_eq!(under(&mut v), "ws-03");
        press(&mut v, &[KeyCode::Char('k')]);
        assert_eq!(under(&mut v), "ws-02");
        press(&mut v, &[KeyCode::PageDown]);
        assert_eq!(under(&mut v), "ws-12");
        press(&mut v, &[KeyCode::End]);
        assert_eq!(under(&mut v), "ws-29");
        press(&mut v, &[KeyCode::PageDown]);
        assert_eq!(under(&mut v), "ws-29", "stays on the last row");
        press(&mut v, &[KeyCode::Home, KeyCode::Up]);
        assert_eq!(under(&mut v), "ws-00");
        press(&mut v, &[KeyCode::Char('c'), KeyCode::Down]);
        assert_eq!(under(&mut v), "ws-28");
        // Rows that move by themselves leave the cursor in its place.
        row(&mut v, "ws-00", 100, NodeState::Ok);
        assert_eq!(under(&mut v), "ws-29");
        assert_eq!(v.cursor, 1);
    }

    #[test]
    fn the_filter_is_applied_as_typed_and_esc_restores_it() {
        let mut v = view_with(30);
        press(&mut v, &[KeyCode::Char('/')]);
        typed(&mut v, "ws-1*");
        assert_eq!(v.order.len(), 10);
        press(&mut v, &[KeyCode::Enter]);
        assert_eq!(v.overlay, Overlay::None);
        assert_eq!(v.filter.text(), "ws-1*");
        press(
            &mut v,
            &[KeyCode::Char('/'), KeyCode::Backspace, KeyCode::Esc],
        );
        assert_eq!(v.filter.text(), "ws-1*", "Esc gives the filter back");
        assert_eq!(v.order.len(), 10);
        press(&mut v, &[KeyCode::Char('/')]);
        typed(&mut v, "q");
        assert_eq!(v.filter.text(), "ws-1*q", "q is text while filtering");
        let ctrl_u = KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL);
        v.handle_key(ctrl_u, at());
        assert_eq!(
            (v.filter.text(), v.order.len()),
            ("", 30),
            "Ctrl-U clears it"
        );
        press(&mut v, &[KeyCode::Esc, KeyCode::Char('p')]);
        typed(&mut v, "5m");
        v.handle_key(ctrl_u, at());
        let Overlay::Prompt(prompt) = &v.overlay else {
            panic!("the prompt is open");
        };
        assert_eq!(prompt.typed, "", "and a prompt's duration");
    }

    #[test]
    fn esc_never_quits_and_q_does() {
        let mut v = view_with(3);
        for keys in [
            vec![KeyCode::Char('?'), KeyCode::Esc],
            vec![KeyCode::Enter, KeyCode::Esc],
            vec![KeyCode::Char('p'), KeyCode::Esc],
            vec![KeyCode::Char('/'), KeyCode::Esc],
            vec![KeyCode::Esc, KeyCode::Esc],
        ] {
            assert_eq!(press(&mut v, &keys), Action::None, "{keys:?}");
            assert_eq!(v.overlay, Overlay::None);
            assert_eq!(v.detail, None);
        }
        assert_eq!(
            press(&mut v, &[KeyCode::Char('?'), KeyCode::Char('q')]),
            Action::Quit
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(v.handle_key(ctrl_c, at()), Action::Quit);
    }

    #[test]
    fn the_pause_prompt_offers_node_filtered_set_and_fleet() {
        let mut v = view_with(30);
        press(&mut v, &[KeyCode::Char('n'), KeyCode::Char('/')]);
        typed(&mut v, "ws-2");
        press(
            &mut v,
            &[
                KeyCode::Enter,
                KeyCode::Home,
                KeyCode::Down,
                KeyCode::Char('p'),
            ],
        );
        typed(&mut v, "90");
        assert_eq!(
            press(&mut v, &[KeyCode::Enter]),
            Action::Send(Command::Pause {
                target: Target::node("ws-21").unwrap(),
                secs: 90
            })
        );
        press(&mut v, &[KeyCode::Char('p'), KeyCode::Tab]);
        typed(&mut v, "5m");
        assert_eq!(
            press(&mut v, &[KeyCode::Enter]),
            Action::Send(Command::Pause {
                target: Target::matching("*ws-2*").unwrap(),
                secs: 300
            })
        );
        assert_eq!(
            press(
                &mut v,
                &[KeyCode::Char('r'), KeyCode::BackTab, KeyCode::Enter]
            ),
            Action::Send(Command::Resume {
                target: Target::All
            })
        );
    }

    #[test]
    fn a_bad_duration_or_target_is_said_and_the_prompt_stays() {
        let mut v = view_with(0);
        row(&mut v, "odd*name", 1, NodeState::Ok);
        press(&mut v, &[KeyCode::Char('p')]);
        typed(&mut v, "5mm");
        assert_eq!(press(&mut v, &[KeyCode::Enter]), Action::None);
        let Overlay::Prompt(p) = &v.overlay else {
            panic!("{:?}", v.overlay)
        };
        assert!(
            p.error.as_deref().unwrap().contains("unknown unit"),
            "{p:?}"
        );
        press(&mut v, &[KeyCode::Backspace]);
        assert_eq!(press(&mut v, &[KeyCode::Enter]), Action::None);
        let Overlay::Prompt(p) = &v.overlay else {
            panic!("{:?}", v.overlay)
        };
        assert!(
            p.error.as_deref().unwrap().contains("holds * or ?"),
            "{p:?}"
        );
        assert_eq!(
            press(&mut v, &[KeyCode::Tab, KeyCode::Enter]),
            Action::Send(Command::Pause {
                target: Target::All,
                secs: 300
            })
        );
    }

    #[test]
    fn results_come_in_and_the_summary_follows() {
        let mut v = view_with(2);
        let command = Command::Pause {
            target: Target::All,
            secs: 90,
        };
        v.sent(CommandId(4), command);
        assert_eq!(v.overlay, Overlay::Results);
        let update = |kind| Update { link: 0, kind };
        v.apply(
            update(UpdateKind::NodeResult {
                command: CommandId(4),
                node: "ws-00".into(),
                code: 200,
                info: "paused for 90 s".into(),
            }),
            at(),
        );
        assert_eq!(v.message, "ws-00: 200 paused for 90 s");
        v.apply(
            update(UpdateKind::NodeResult {
                command: CommandId(3),
                node: "old".into(),
                code: 200,
                info: String::new(),
            }),
            at(),
        );
        assert_eq!(
            v.last.as_ref().unwrap().nodes().len(),
            1,
            "another command's"
        );
        v.apply(
            update(UpdateKind::NodeResult {
                command: CommandId(4),
                node: "ws-01".into(),
                code: 404,
                info: "not connected to any collector".into(),
            }),
            at(),
        );
        v.apply(
            update(UpdateKind::Answer {
                command: CommandId(4),
                code: 404,
                info: "paused 1 of 2 nodes".into(),
            }),
            at(),
        );
        assert_eq!(
            v.message,
            "pause --all 1m30s: 1 of 2 nodes did not answer 200"
        );
        press(&mut v, &[KeyCode::Esc]);
        assert_eq!(v.overlay, Overlay::None);
        press(&mut v, &[KeyCode::Char('l')]);
        assert_eq!(v.overlay, Overlay::Results);
    }

    #[test]
    fn freeze_and_unfreeze() {
        let mut v = view_with(1);
        press(&mut v, &[KeyCode::Char('f')]);
        typed(&mut v, "30s");
        let Action::Send(freeze) = press(&mut v, &[KeyCode::Enter]) else {
            panic!("no freeze")
        };
        assert_eq!(freeze, Command::Freeze { secs: 30 });
        v.sent(CommandId(1), freeze);
        assert!(!v.is_frozen(Instant::now()), "frozen only once answered");
        v.apply(
            Update {
                link: 0,
                kind: UpdateKind::Answer {
                    command: CommandId(1),
                    code: 200,
                    info: "paused for 30 s".into(),
                },
            },
            at(),
        );
        assert!(v.is_frozen(Instant::now()));
        assert_eq!(v.message, "freeze 30s: answered 200");
        assert_eq!(
            press(&mut v, &[KeyCode::Char('f')]),
            Action::Send(Command::Unfreeze)
        );
        v.sent(CommandId(2), Command::Unfreeze);
        assert!(!v.is_frozen(Instant::now()));
    }

    #[test]
    fn a_reconnected_link_starts_its_rows_again() {
        let mut v = view_with(3);
        v.apply(
            Update {
                link: 0,
                kind: UpdateKind::Connected,
            },
            at(),
        );
        assert!(v.fleet.is_empty());
        assert_eq!(v.links[0].1, LinkState::Connected);
    }
}
