//! The metrics reference in docs/OPERATIONS.md against what the endpoint exposes.

use super::*;
use avpd_node::fleet::NodeReport;
use avpd_node::observe::FleetFigures;
use avpd_node::stats::{Counters, WorkerKind, WorkerSnapshot};
use avpd_store::StoreStatus;
use prometheus_client::encoding::DescriptorEncoder;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// A collector of a fixed observation.
#[derive(Debug)]
struct Fixed(Observation);

impl Collector for Fixed {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        collect::encode(&self.0, encoder)
    }
}

/// An observation with every kind of worker, a store and per-node figures: every family.
fn everything() -> Observation {
    let worker = |worker, kind| {
        let snapshot = WorkerSnapshot {
            worker,
            kind,
            open: 1,
            buffered: 0,
            counters: Counters::default(),
        };
        (snapshot, Instant::now())
    };
    Observation {
        buffer_limit: 1 << 20,
        workers: vec![
            worker(0, WorkerKind::DataTcp),
            worker(1, WorkerKind::DataUdp),
            worker(2, WorkerKind::Management),
        ],
        store: Some(StoreStatus::default()),
        fleet: Some(Arc::new(FleetFigures {
            nodes: 1,
            stale: 0,
            reports: vec![NodeReport {
                node: "ws-1".into(),
                cpu_percent: 1,
                mem_percent: 2,
                timestamp_ms: 3,
                received_ms: 4,
                collector: None,
            }],
        })),
    }
}

/// Each family of a text-format scrape: its type and the names of its labels.
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_string(), (kind.to_string(), BTreeSet::new()));
        } else if !line.starts_with('#') {
            let (series, _) = line.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let family = families.get_mut(name).expect("a sample of a typed family");
            for pair in labels
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.is_empty())
            {
                family.1.insert(pair.split_once('=').unwrap().0.to_string());
            }
        }
    }
    families
}

/// The rows of the metrics reference: name, type and label names.
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc = include_str!("../../../docs/OPERATIONS.md");
    let start = doc
        .find("### Metrics reference")
        .expect("a metrics reference");
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| `avpd_"))
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let name = cells[0].trim_start_matches("| ").trim_matches('`');
            let labels = cells[2]
                .split(", ")
                .filter(|l| *l != "-")
                .map(|l| l.trim_matches('`').to_string())
                .collect();
            (name.to_string(), (cells[1].to_string(), labels))
        })
        .collect()
}

#[test]
fn the_metrics_reference_is_what_the_endpoint_exposes() {
    let registry = registry(Box::new(Fixed(everything())), "0.0.0");
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).unwrap();
    assert_eq!(
        documented(),
        families(&text),
        "docs/OPERATIONS.md against:\n{text}"
    );
}
