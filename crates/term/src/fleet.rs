//! What the terminal knows about the fleet: the latest pushed row of every node (its values,
//! the state the node gave it, its recent history), keyed by NODE_ID, and the orders and
//! filters it can be shown in. No IO and no drawing here.
//!
//! A row pushed with STATE removed is dropped; when a link reconnects, the rows it brought
//! are dropped too, since the node sends every row again to a terminal that reconnects and a
//! row removed meanwhile would otherwise stay for good.

use super::clock::Now;
use super::filter::Filter;
use super::history::History;
use avp_proto::{NodeState, Report};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shown for a row that carried no NODE_ID.
pub const UNNAMED: &str = "(unnamed)";

/// The latest pushed row of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// NODE_ID (as sent: escape it for display), or [`UNNAMED`].
    pub node: String,
    /// CPU usage, percent.
    pub cpu_percent: u8,
    /// Memory usage, percent.
    pub mem_percent: u8,
    /// When the sample was taken, ms since the Unix epoch, if the report said.
    pub timestamp_ms: Option<u64>,
    /// The state the node gives the row ([`NodeState::Ok`] from a node that says none).
    pub state: NodeState,
    /// When a collector received the node's report, ms since the Unix epoch, if it said.
    pub received_ms: Option<u64>,
    /// Until when the node is paused, ms since the Unix epoch, if it said.
    pub paused_until_ms: Option<u64>,
    /// When the node was last heard of, ms since the Unix epoch: RECEIVED, else TIMESTAMP,
    /// else when the row reached this terminal.
    pub heard_ms: u64,
    /// Index of the link it came from last.
    pub link: usize,
    /// CPU and memory over the last minutes.
    pub history: History,
}

impl Row {
    /// How long ago the node was last heard of.
    pub fn age(&self, wall_ms: u64) -> Duration {
        Duration::from_millis(wall_ms.saturating_sub(self.heard_ms))
    }
}

/// Orders the rows can be shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By NODE_ID, ascending.
    Name,
    /// By CPU usage, busiest first.
    Cpu,
    /// By memory usage, fullest first.
    Mem,
    /// By age, the longest silent first.
    Age,
}

impl SortKey {
    /// Name shown in the header.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::Cpu => "cpu",
            SortKey::Mem => "memory",
            SortKey::Age => "age",
        }
    }
}

/// How many rows are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every row.
    pub nodes: usize,
    /// Rows in [`NodeState::Stale`].
    pub stale: usize,
    /// Rows in [`NodeState::Paused`].
    pub paused: usize,
    /// Rows in [`NodeState::ClockSkew`].
    pub skewed: usize,
}

/// The rows, by NODE_ID. See the module documentation.
#[derive(Debug)]
pub struct Fleet {
    /// When the terminal started: the origin of every history.
    started: Instant,
    rows: Vec<Row>,
    /// INVARIANT: `index[rows[i].node] == i` for every row, and nothing else.
    index: HashMap<String, usize>,
    generation: u64,
}

impl Fleet {
    /// No rows yet; histories count from `started`.
    pub fn new(started: Instant) -> Fleet {
        Fleet {
            started,
            rows: Vec::new(),
            index: HashMap::new(),
            generation: 0,
        }
    }

    /// When the terminal started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Takes in a row pushed on link `link`, received `now`.
    pub fn apply(&mut self, link: usize, report: &Report<'_>, now: Now) {
        self.generation += 1;
        let node = report.node_id.as_deref().unwrap_or(UNNAMED);
        let fleet = report.fleet.unwrap_or_default();
        if fleet.state == NodeState::Removed {
            self.remove(node);
            return;
        }
        let i = match self.index.get(node) {
            Some(&i) => i,
            None => {
                self.index.insert(node.to_string(), self.rows.len());
                self.rows.push(Row {
                    node: node.to_string(),
                    cpu_percent: 0,
                    mem_percent: 0,
                    timestamp_ms: None,
                    state: NodeState::Ok,
                    received_ms: None,
                    paused_until_ms: None,
                    heard_ms: 0,
                    link,
                    history: History::default(),
                });
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[i];
        row.cpu_percent = report.cpu_percent;
        row.mem_percent = report.mem_percent;
        row.timestamp_ms = report.timestamp_ms;
        row.state = fleet.state;
        row.received_ms = fleet.received_ms;
        row.paused_until_ms = fleet.paused_until_ms;
        row.heard_ms = fleet
            .received_ms
            .or(report.timestamp_ms)
            .unwrap_or(now.wall_ms);
        row.link = link;
        row.history.record(
            self.started,
            now.mono,
            report.cpu_percent,
            report.mem_percent,
        );
    }

    /// Drops every row that came last from link `link` (it reconnected and sends them again).
    pub fn forget_link(&mut self, link: usize) {
        let gone: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.link == link)
            .map(|r| r.node.clone())
            .collect();
        for node in gone {
            self.remove(&node);
        }
        self.generation += 1;
    }

    fn remove(&mut self, node: &str) {
        let Some(i) = self.index.remove(node) else {
            return;
        };
        self.rows.swap_remove(i);
        if let Some(moved) = self.rows.get(i) {
            self.index.insert(moved.node.clone(), i);
        }
    }

    /// The row of `node`.
    pub fn get(&self, node: &str) -> Option<&Row> {
        self.index.get(node).map(|&i| &self.rows[i])
    }

    /// Row number `i` of the order [`Fleet::select`] returned, while
    /// [`Fleet::generation`] is unchanged.
    pub fn row(&self, i: usize) -> Option<&Row> {
        self.rows.get(i)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A number that changes whenever a row does (and row numbers with it).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// How many rows are in each state.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            nodes: self.rows.len(),
            ..Counts::default()
        };
        for r in &self.rows {
            match r.state {
                NodeState::Stale => c.stale += 1,
                NodeState::Paused => c.paused += 1,
                NodeState::ClockSkew => c.skewed += 1,
                NodeState::Ok | NodeState::Removed => {}
            }
        }
        c
    }

    /// The numbers of the rows `filter` lets through, in `key` order (ties by NODE_ID, so
    /// the order is stable).
    pub fn select(&self, filter: &Filter, key: SortKey) -> Vec<usize> {
        let mut picked: Vec<usize> = (0..self.rows.len())
            .filter(|&i| filter.matches(&self.rows[i].node))
            .collect();
        picked.sort_unstable_by(|&a, &b| {
            let (a, b) = (&self.rows[a], &self.rows[b]);
            let primary = match key {
                SortKey::Name => std::cmp::Ordering::Equal,
                SortKey::Cpu => b.cpu_percent.cmp(&a.cpu_percent),
                SortKey::Mem => b.mem_percent.cmp(&a.mem_percent),
                SortKey::Age => a.heard_ms.cmp(&b.heard_ms),
            };
            primary.then_with(|| a.node.cmp(&b.node))
        });
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::FleetState;

    fn report(node: Option<&str>, cpu: u8, mem: u8) -> Report<'static> {
        Report {
            fleet: None,
            cpu_percent: cpu,
            mem_percent: mem,
            timestamp_ms: None,
            node_id: node.map(|n| n.to_string().into()),
            instance: None,
        }
    }

    fn with_state(mut r: Report<'static>, state: NodeState, received: u64) -> Report<'static> {
        r.fleet = Some(FleetState {
            state,
            received_ms: Some(received),
            paused_until_ms: None,
        });
        r
    }

    fn names(f: &Fleet, filter: &str, key: SortKey) -> Vec<String> {
        f.select(&Filter::new(filter), key)
            .into_iter()
            .map(|i| f.row(i).unwrap().node.clone())
            .collect()
    }

    fn at(wall_ms: u64) -> Now {
        Now {
            mono: Instant::now(),
            wall_ms,
        }
    }

    #[test]
    fn keeps_the_latest_per_node_and_sorts_and_filters() {
        let mut f = Fleet::new(Instant::now());
        f.apply(
            0,
            &with_state(report(Some("b"), 10, 90), NodeState::Ok, 300),
            at(0),
        );
        f.apply(
            0,
            &with_state(report(Some("a"), 50, 20), NodeState::Ok, 100),
            at(0),
        );
        f.apply(
            1,
            &with_state(report(Some("c"), 50, 40), NodeState::Ok, 200),
            at(0),
        );
        f.apply(1, &report(None, 1, 1), at(50));
        f.apply(
            1,
            &with_state(report(Some("b"), 70, 30), NodeState::Ok, 400),
            at(0),
        );
        assert_eq!(f.len(), 4);
        assert_eq!(names(&f, "", SortKey::Name), ["(unnamed)", "a", "b", "c"]);
        assert_eq!(names(&f, "", SortKey::Cpu), ["b", "a", "c", "(unnamed)"]);
        assert_eq!(names(&f, "", SortKey::Mem), ["c", "b", "a", "(unnamed)"]);
        assert_eq!(names(&f, "", SortKey::Age), ["(unnamed)", "a", "c", "b"]);
        assert_eq!(names(&f, "?", SortKey::Name), ["a", "b", "c"]);
        assert_eq!(f.get("b").unwrap().link, 1);
        assert_eq!(f.get("b").unwrap().history.samples(), 1);
    }

    #[test]
    fn removed_rows_go_and_states_are_counted() {
        let mut f = Fleet::new(Instant::now());
        for (name, state) in [
            ("ok", NodeState::Ok),
            ("stale", NodeState::Stale),
            ("paused", NodeState::Paused),
            ("skew", NodeState::ClockSkew),
        ] {
            f.apply(0, &with_state(report(Some(name), 1, 1), state, 1), at(0));
        }
        let want = Counts {
            nodes: 4,
            stale: 1,
            paused: 1,
            skewed: 1,
        };
        assert_eq!(f.counts(), want);
        let before = f.generation();
        f.apply(
            0,
            &with_state(report(Some("stale"), 1, 1), NodeState::Removed, 2),
            at(0),
        );
        assert_ne!(f.generation(), before);
        assert_eq!(names(&f, "", SortKey::Name), ["ok", "paused", "skew"]);
        assert!(f.get("stale").is_none());
        assert_eq!(
            f.get("skew").unwrap().node,
            "skew",
            "the index follows the moved row"
        );
        f.apply(
            0,
            &with_state(report(Some("never"), 1, 1), NodeState::Removed, 2),
            at(0),
        );
        assert_eq!(f.len(), 3, "removing an unknown row adds nothing");
    }

    #[test]
    fn a_reconnected_link_forgets_its_rows() {
        let mut f = Fleet::new(Instant::now());
        f.apply(0, &report(Some("a"), 1, 1), at(0));
        f.apply(1, &report(Some("b"), 1, 1), at(0));
        f.apply(0, &report(Some("c"), 1, 1), at(0));
        f.forget_link(0);
        assert_eq!(names(&f, "", SortKey::Name), ["b"]);
        assert_eq!(f.get("b").unwrap().node, "b");
    }

    #[test]
    fn age_comes_from_received_then_timestamp_then_arrival() {
        let mut f = Fleet::new(Instant::now());
        let mut r = report(Some("ts"), 1, 1);
        r.timestamp_ms = Some(1_000);
        f.apply(0, &r, at(9_000));
        assert_eq!(
            f.get("ts").unwrap().age(3_500),
            Duration::from_millis(2_500)
        );
        f.apply(0, &with_state(r, NodeState::Ok, 2_000), at(9_000));
        assert_eq!(
            f.get("ts").unwrap().age(3_500),
            Duration::from_millis(1_500)
        );
        f.apply(0, &report(Some("bare"), 1, 1), at(3_000));
        assert_eq!(
            f.get("bare").unwrap().age(3_500),
            Duration::from_millis(500)
        );
    }
}
