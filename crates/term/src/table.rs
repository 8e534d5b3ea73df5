//! What the terminal knows about the fleet: the latest report of every node it heard about,
//! and the orders it can show them in. No IO and no drawing here.

use avp_proto::Report;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Shown for a report that carried no NODE_ID.
pub const UNNAMED: &str = "(unnamed)";

/// The latest report of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// NODE_ID, or [`UNNAMED`].
    pub node: String,
    /// CPU usage, percent.
    pub cpu_percent: u8,
    /// Memory usage, percent.
    pub mem_percent: u8,
    /// When the sample was taken, ms since the Unix epoch, if the report said.
    pub timestamp_ms: Option<u64>,
    /// When the terminal received it.
    pub received: Instant,
    /// Index of the link it came from.
    pub link: usize,
}

impl Row {
    /// How old the sample is: since its TIMESTAMP when it has one, else since it arrived.
    pub fn age(&self, now: Instant, wall_now: SystemTime) -> Duration {
        match self.timestamp_ms {
            Some(ts) => wall_now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_sub(Duration::from_millis(ts)),
            None => now.saturating_duration_since(self.received),
        }
    }
}

/// Orders the table can be shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By node id, ascending.
    Node,
    /// By CPU usage, busiest first.
    Cpu,
    /// By memory usage, fullest first.
    Mem,
}

impl SortKey {
    /// Name shown in the header.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Node => "node",
            SortKey::Cpu => "cpu",
            SortKey::Mem => "memory",
        }
    }
}

/// Latest report per node.
#[derive(Debug, Default)]
pub struct FleetTable {
    rows: HashMap<String, Row>,
}

impl FleetTable {
    /// Records `report`, received now on link `link`, replacing the node's previous one.
    pub fn update(&mut self, link: usize, report: &Report<'_>, now: Instant) {
        let node = report.node_id.as_deref().unwrap_or(UNNAMED);
        let row = Row {
            node: node.to_string(),
            cpu_percent: report.cpu_percent,
            mem_percent: report.mem_percent,
            timestamp_ms: report.timestamp_ms,
            received: now,
            link,
        };
        self.rows.insert(row.node.clone(), row);
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True before any report arrived.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows in `key` order; ties are broken by node id so the order is stable.
    pub fn sorted(&self, key: SortKey) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.rows.values().collect();
        rows.sort_by(|a, b| {
            let primary = match key {
                SortKey::Node => std::cmp::Ordering::Equal,
                SortKey::Cpu => b.cpu_percent.cmp(&a.cpu_percent),
                SortKey::Mem => b.mem_percent.cmp(&a.mem_percent),
            };
            primary.then_with(|| a.node.cmp(&b.node))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn names(t: &FleetTable, key: SortKey) -> Vec<String> {
        t.sorted(key).iter().map(|r| r.node.clone()).collect()
    }

    #[test]
    fn keeps_the_latest_per_node_and_sorts() {
        let now = Instant::now();
        let mut t = FleetTable::default();
        t.update(0, &report(Some("b"), 10, 90), now);
        t.update(0, &report(Some("a"), 50, 20), now);
        t.update(1, &report(Some("c"), 50, 40), now);
        t.update(1, &report(None, 1, 1), now);
        t.update(1, &report(Some("b"), 70, 30), now);
        assert_eq!(t.len(), 4);
        assert_eq!(names(&t, SortKey::Node), ["(unnamed)", "a", "b", "c"]);
        assert_eq!(names(&t, SortKey::Cpu), ["b", "a", "c", "(unnamed)"]);
        assert_eq!(names(&t, SortKey::Mem), ["c", "b", "a", "(unnamed)"]);
        assert_eq!(t.sorted(SortKey::Cpu)[0].link, 1);
    }

    #[test]
    fn age_comes_from_the_timestamp() {
        let now = Instant::now();
        let mut r = report(Some("a"), 1, 1);
        r.timestamp_ms = Some(1_000);
        let mut t = FleetTable::default();
        t.update(0, &r, now);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_millis(3_500);
        assert_eq!(
            t.sorted(SortKey::Node)[0].age(now, wall),
            Duration::from_millis(2_500)
        );
    }
}
