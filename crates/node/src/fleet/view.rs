//! The management plane's fleet view: one row per node with its latest report, its state
//! (ok, stale, paused, clock skew, removed), and a version that says which rows changed since
//! a terminal last got them.
//!
//! Rules ([`FleetRules`]):
//! - A row is keyed by NODE_ID (a reporter without one by its IP address, see
//!   [`super::NodeReport`]).
//! - Reports are ordered by receive time: a newer report replaces the row whatever its
//!   TIMESTAMP says, so a far-future TIMESTAMP cannot pin a row; a TIMESTAMP further than
//!   `max_clock_skew` from the receive time flags the row as clock skew.
//! - A row is stale once nothing was heard for `stale_after` (when set), else for three of
//!   the node's own report intervals (as observed between its last reports), else 10 s.
//! - A paused row (an operator paused the node) shows as paused until its pause ends, and its
//!   silence counts from then.
//! - A row silent for `node_ttl` is removed: it stays as a tombstone (STATE removed) until
//!   every terminal got it ([`FleetView::purge`]), then it is gone.
//! - At most `max_nodes` rows; reports of further nodes are refused and counted.
//!
//! Every change (a report, a state change) gives the row the view's next version and moves it
//! to the end of the change log, so [`FleetView::changes`] lists each row at most once, in the
//! order of their last change. Time is passed in (ms since the Unix epoch): tests drive it.

use super::NodeReport;
use avp_proto::{FleetState, NodeState, Report};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How rows age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetRules {
    /// Silence after which a row is stale; `None`: three of the node's intervals, or
    /// [`DEFAULT_STALE_AFTER`] until its interval is known.
    pub stale_after: Option<Duration>,
    /// Silence after which a row is removed.
    pub node_ttl: Duration,
    /// Most rows held.
    pub max_nodes: usize,
    /// A TIMESTAMP further than this from the receive time is flagged as clock skew.
    pub max_clock_skew: Duration,
}

/// The stale time of a node whose report interval is not known yet.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(10);

impl Default for FleetRules {
    fn default() -> Self {
        FleetRules {
            stale_after: None,
            node_ttl: Duration::from_secs(600),
            max_nodes: 1_000_000,
            max_clock_skew: Duration::from_secs(60),
        }
    }
}

/// One node's row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    cpu_percent: u8,
    mem_percent: u8,
    state: NodeState,
    timestamp_ms: u64,
    received_ms: u64,
    /// The gap between its last two reports, ms; 0 until two were seen.
    interval_ms: u64,
    /// Since when it has been silent: its last report, or the end of a pause.
    silent_since_ms: u64,
    /// Its latest report's TIMESTAMP was far from the receive time.
    skewed: bool,
    paused_until_ms: Option<u64>,
    /// The collector that holds the node's connection, when another node does.
    collector: Option<Arc<str>>,
    version: u64,
}

/// A row as terminals get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowView<'a> {
    /// The node.
    pub node: &'a str,
    /// CPU percent of its latest report.
    pub cpu_percent: u8,
    /// Memory percent of its latest report.
    pub mem_percent: u8,
    /// Its latest report's TIMESTAMP (or receive time).
    pub timestamp_ms: u64,
    /// Its state and times.
    pub fleet: FleetState,
}

impl RowView<'_> {
    /// The STAT_REPORT that pushes this row.
    pub fn report(&self) -> Report<'_> {
        Report {
            cpu_percent: self.cpu_percent,
            mem_percent: self.mem_percent,
            timestamp_ms: Some(self.timestamp_ms),
            node_id: Some(self.node.into()),
            instance: None,
            fleet: Some(self.fleet),
        }
    }
}

/// The fleet view. See the module documentation.
#[derive(Debug)]
pub struct FleetView {
    rules: FleetRules,
    rows: FxHashMap<Arc<str>, Row>,
    /// Every row (and tombstone) under its version.
    log: BTreeMap<u64, Arc<str>>,
    version: u64,
    /// Rows removed and not purged yet.
    tombstones: usize,
    refused: u64,
}

impl FleetView {
    /// Ages and bounds the rows by `rules` from now on: a shorter time to live or stale time
    /// applies at the next [`FleetView::tick`], a lower bound refuses new nodes until the view
    /// is under it again (rows held are kept).
    pub fn set_rules(&mut self, rules: FleetRules) {
        self.rules = rules;
    }

    /// An empty view with `rules`.
    pub fn new(rules: FleetRules) -> FleetView {
        FleetView {
            rules,
            rows: FxHashMap::default(),
            log: BTreeMap::new(),
            version: 0,
            tombstones: 0,
            refused: 0,
        }
    }

    /// Merges reports (from workers or the store), each as of its receive time; a report
    /// older than the row's is ignored.
    pub fn apply(&mut self, batch: impl IntoIterator<Item = NodeReport>) {
        for r in batch {
            self.apply_one(r);
        }
    }

    fn apply_one(&mut self, r: NodeReport) {
        let skew = r.timestamp_ms.abs_diff(r.received_ms) > millis(self.rules.max_clock_skew);
        let version = self.version + 1;
        let full = self.rows.len() - self.tombstones >= self.rules.max_nodes;
        match self.rows.get_mut(r.node.as_str()) {
            Some(row) => {
                if r.received_ms <= row.received_ms {
                    return;
                }
                if row.state == NodeState::Removed {
                    self.tombstones -= 1;
                    row.interval_ms = 0;
                } else {
                    row.interval_ms = r.received_ms - row.received_ms;
                }
                row.cpu_percent = r.cpu_percent;
                row.mem_percent = r.mem_percent;
                row.timestamp_ms = r.timestamp_ms;
                row.received_ms = r.received_ms;
                row.silent_since_ms = row.silent_since_ms.max(r.received_ms);
                row.skewed = skew;
                row.collector = r.collector;
                row.state = fresh_state(row, r.received_ms);
                let old = std::mem::replace(&mut row.version, version);
                let key = self.log.remove(&old).expect("every row is in the log");
                self.log.insert(version, key);
            }
            None if full => {
                self.refused += 1;
                return;
            }
            None => {
                let key: Arc<str> = r.node.into();
                let mut row = Row {
                    cpu_percent: r.cpu_percent,
                    mem_percent: r.mem_percent,
                    state: NodeState::Ok,
                    timestamp_ms: r.timestamp_ms,
                    received_ms: r.received_ms,
                    interval_ms: 0,
                    silent_since_ms: r.received_ms,
                    skewed: skew,
                    paused_until_ms: None,
                    collector: r.collector,
                    version,
                };
                row.state = fresh_state(&row, r.received_ms);
                self.rows.insert(key.clone(), row);
                self.log.insert(version, key);
            }
        }
        self.version = version;
    }

    /// Records that `node` is paused until `until_ms` (or, `None`, resumed). Unknown nodes
    /// are ignored.
    pub fn set_paused(&mut self, node: &str, until_ms: Option<u64>, now_ms: u64) {
        let Some(row) = self.rows.get_mut(node) else {
            return;
        };
        if row.state == NodeState::Removed {
            return;
        }
        if until_ms.is_none() && row.paused_until_ms.is_some() {
            // Silence counts from the resume: the agent starts sampling again now.
            row.silent_since_ms = row.silent_since_ms.max(now_ms);
        }
        row.paused_until_ms = until_ms;
        let state = self.state_at(self.rows.get(node).expect("just found"), now_ms);
        self.change(node, state, true);
    }

    /// Moves every row to its state at `now_ms`: stale, removed, paused or not.
    pub fn tick(&mut self, now_ms: u64) {
        let changed: Vec<(Arc<str>, NodeState)> = self
            .rows
            .iter()
            .filter(|(_, row)| row.state != NodeState::Removed)
            .filter_map(|(key, row)| {
                let state = self.state_at(row, now_ms);
                let pause_over = row.paused_until_ms.is_some_and(|t| now_ms >= t);
                (state != row.state || pause_over).then(|| (key.clone(), state))
            })
            .collect();
        for (key, state) in changed {
            self.change(&key, state, false);
        }
    }

    /// The state of `row` at `now_ms`.
    fn state_at(&self, row: &Row, now_ms: u64) -> NodeState {
        if row.paused_until_ms.is_some_and(|t| now_ms < t) {
            return NodeState::Paused;
        }
        let heard = row.silent_since_ms.max(row.paused_until_ms.unwrap_or(0));
        let silent = now_ms.saturating_sub(heard);
        if silent >= millis(self.rules.node_ttl) {
            NodeState::Removed
        } else if silent >= self.stale_after_ms(row) {
            NodeState::Stale
        } else if row.skewed {
            NodeState::ClockSkew
        } else {
            NodeState::Ok
        }
    }

    fn stale_after_ms(&self, row: &Row) -> u64 {
        match (self.rules.stale_after, row.interval_ms) {
            (Some(d), _) => millis(d),
            (None, 0) => millis(DEFAULT_STALE_AFTER),
            (None, interval) => 3 * interval,
        }
    }

    /// Gives `node` state `state` and the next version. Unless `keep_pause`, a pause that is
    /// over is forgotten.
    fn change(&mut self, node: &str, state: NodeState, keep_pause: bool) {
        let version = self.version + 1;
        let Some(row) = self.rows.get_mut(node) else {
            return;
        };
        if !keep_pause
            && row
                .paused_until_ms
                .is_some_and(|_| state != NodeState::Paused)
        {
            row.paused_until_ms = None;
        }
        if state == NodeState::Removed {
            self.tombstones += 1;
        }
        row.state = state;
        let old = std::mem::replace(&mut row.version, version);
        let key = self.log.remove(&old).expect("every row is in the log");
        self.log.insert(version, key);
        self.version = version;
    }

    /// Drops the tombstones of rows removed at or before version `upto` (every terminal got
    /// them).
    pub fn purge(&mut self, upto: u64) {
        let gone: Vec<(u64, Arc<str>)> = self
            .log
            .range(..=upto)
            .filter(|(_, key)| self.rows[&**key].state == NodeState::Removed)
            .map(|(v, k)| (*v, k.clone()))
            .collect();
        for (version, key) in gone {
            self.log.remove(&version);
            self.rows.remove(&key);
            self.tombstones -= 1;
        }
    }

    /// The version of the last change.
    pub fn head(&self) -> u64 {
        self.version
    }

    /// The rows that changed after version `after`, up to `upto`, oldest change first, with
    /// their versions.
    pub fn changes(&self, after: u64, upto: u64) -> impl Iterator<Item = (u64, RowView<'_>)> {
        self.log
            .range(after.saturating_add(1)..=upto)
            .map(|(version, key)| (*version, self.view_of(key)))
    }

    fn view_of<'a>(&'a self, key: &'a str) -> RowView<'a> {
        let row = &self.rows[key];
        RowView {
            node: key,
            cpu_percent: row.cpu_percent,
            mem_percent: row.mem_percent,
            timestamp_ms: row.timestamp_ms,
            fleet: FleetState {
                state: row.state,
                received_ms: Some(row.received_ms),
                paused_until_ms: row
                    .paused_until_ms
                    .filter(|_| row.state == NodeState::Paused),
            },
        }
    }

    /// Every row but those removed, in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = RowView<'_>> {
        self.rows
            .iter()
            .filter(|(_, row)| row.state != NodeState::Removed)
            .map(|(key, _)| self.view_of(key))
    }

    /// The row of `node`, unless it was removed.
    pub fn get<'a>(&'a self, node: &'a str) -> Option<RowView<'a>> {
        let (key, row) = self.rows.get_key_value(node)?;
        (row.state != NodeState::Removed).then(|| self.view_of(key))
    }

    /// The collector that holds `node`'s connection, when another node does.
    pub fn collector_of(&self, node: &str) -> Option<Arc<str>> {
        self.rows.get(node)?.collector.clone()
    }

    /// The nodes (not removed) whose id matches `pattern`, in id order.
    pub fn matching(&self, pattern: &str) -> Vec<Arc<str>> {
        let mut nodes: Vec<Arc<str>> = self
            .rows
            .iter()
            .filter(|(key, row)| row.state != NodeState::Removed && avp_units::glob(pattern, key))
            .map(|(key, _)| key.clone())
            .collect();
        nodes.sort_unstable();
        nodes
    }

    /// Rows held, not counting those removed.
    pub fn len(&self) -> usize {
        self.rows.len() - self.tombstones
    }

    /// True when no node is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in `state` now.
    pub fn count(&self, state: NodeState) -> usize {
        self.rows.values().filter(|r| r.state == state).count()
    }

    /// Reports refused because the view was full, since it was made.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// The state of a row that just got a report at `now_ms`.
fn fresh_state(row: &Row, now_ms: u64) -> NodeState {
    if row.paused_until_ms.is_some_and(|t| now_ms < t) {
        NodeState::Paused
    } else if row.skewed {
        NodeState::ClockSkew
    } else {
        NodeState::Ok
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
