//! What the node shows of itself to exporters (the Prometheus endpoint, the service manager's
//! watchdog): the latest counters of every worker, the store's state and the fleet's figures,
//! kept in one shared place by the node's own threads and copied out by a reader.
//!
//! Workers take no part in it: the status reporter records the snapshots they already send it
//! every tick, and the management plane records the fleet's figures once per push through a
//! [`FleetTap`]. A reader holds the lock for the time of a copy.

use crate::fleet::{FleetView, NodeReport};
use crate::stats::WorkerSnapshot;
use avp_proto::NodeState;
use avpd_store::StoreStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the fleet's figures include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetFiguresConfig {
    /// Keep every node's latest report in the figures (one row per node of the view).
    pub per_node: bool,
}

/// The latest figures of a node, as an exporter reads them.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The latest snapshot of each worker that has sent one, with the time it arrived.
    pub workers: Vec<(WorkerSnapshot, Instant)>,
    /// The bound on the bytes the workers' connections buffer (`--max-buffer-memory`).
    pub buffer_limit: usize,
    /// The store's state, when the node stores reports.
    pub store: Option<StoreStatus>,
    /// The fleet view's figures, when the node has a management plane and was asked for
    /// them.
    pub fleet: Option<Arc<FleetFigures>>,
}

impl Observation {
    /// How many workers have sent no snapshot for longer than `limit` before `now`. Every
    /// worker sends one each tick, even while busy, so a silent one is stuck.
    pub fn silent_workers(&self, now: Instant, limit: Duration) -> usize {
        self.workers
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(*at) > limit)
            .count()
    }
}

/// The fleet view's figures as of the management plane's latest push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetFigures {
    /// Nodes in the view.
    pub nodes: usize,
    /// Nodes the view shows as stale (see [`crate::fleet::FleetRules`]).
    pub stale: usize,
    /// Every node's latest report when per-node figures were asked for; else empty.
    pub reports: Vec<NodeReport>,
}

/// A shared handle on a node's [`Observation`]; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Observer {
    shared: Arc<Mutex<Observation>>,
}

impl Observer {
    /// An observer of a node whose connections buffer at most `buffer_limit` bytes.
    pub fn new(buffer_limit: usize) -> Observer {
        let observer = Observer::default();
        observer.lock().buffer_limit = buffer_limit;
        observer
    }

    /// Reports buffered bytes against `buffer_limit` from now on.
    pub(crate) fn set_buffer_limit(&self, buffer_limit: usize) {
        self.lock().buffer_limit = buffer_limit;
    }

    /// A copy of the latest figures.
    pub fn latest(&self) -> Observation {
        self.lock().clone()
    }

    /// Records a worker's snapshot, arrived at `at`.
    pub(crate) fn record_worker(&self, snapshot: WorkerSnapshot, at: Instant) {
        let mut o = self.lock();
        match o
            .workers
            .iter_mut()
            .find(|(s, _)| s.worker == snapshot.worker)
        {
            Some(slot) => *slot = (snapshot, at),
            None => o.workers.push((snapshot, at)),
        }
    }

    /// Records the store's state.
    pub(crate) fn record_store(&self, status: StoreStatus) {
        self.lock().store = Some(status);
    }

    /// A tap that records the fleet's figures described by `config` into this observer.
    pub fn fleet_tap(&self, config: FleetFiguresConfig) -> FleetTap {
        FleetTap {
            observer: self.clone(),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Observation> {
        // The figures are plain values: a writer that panicked left them usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The management plane's hook into an [`Observer`]: records the fleet view's figures.
#[derive(Debug, Clone)]
pub struct FleetTap {
    observer: Observer,
    config: FleetFiguresConfig,
}

impl FleetTap {
    /// Records the figures of `view`.
    pub fn record(&self, view: &FleetView) {
        let figures = figures(view, self.config);
        self.observer.lock().fleet = Some(Arc::new(figures));
    }
}

/// The figures of `view`.
fn figures(view: &FleetView, config: FleetFiguresConfig) -> FleetFigures {
    FleetFigures {
        nodes: view.len(),
        stale: view.count(NodeState::Stale),
        reports: if config.per_node {
            view.rows()
                .map(|r| NodeReport {
                    node: r.node.to_string(),
                    cpu_percent: r.cpu_percent,
                    mem_percent: r.mem_percent,
                    timestamp_ms: r.timestamp_ms,
                    received_ms: r.fleet.received_ms.unwrap_or(r.timestamp_ms),
                    collector: None,
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetRules;
    use crate::stats::{Counters, WorkerKind};

    fn report(node: &str, received_ms: u64) -> NodeReport {
        NodeReport {
            node: node.into(),
            cpu_percent: 10,
            mem_percent: 20,
            timestamp_ms: received_ms,
            received_ms,
            collector: None,
        }
    }

    #[test]
    fn figures_count_stale_nodes_and_keep_rows_only_when_asked() {
        let mut view = FleetView::new(FleetRules {
            stale_after: Some(Duration::from_secs(1)),
            ..FleetRules::default()
        });
        view.apply([report("fresh", 9_500), report("old", 1_000)]);
        view.tick(10_000);
        let f = figures(&view, FleetFiguresConfig { per_node: false });
        assert_eq!((f.nodes, f.stale, f.reports.len()), (2, 1, 0));
        let mut f = figures(&view, FleetFiguresConfig { per_node: true });
        f.reports.sort_by(|a, b| a.node.cmp(&b.node));
        assert_eq!(
            f.reports,
            vec![report("fresh", 9_500), report("old", 1_000)]
        );
    }

    #[test]
    fn a_worker_is_silent_once_its_snapshot_is_older_than_the_limit() {
        let observer = Observer::default();
        let start = Instant::now();
        let snapshot = |worker| WorkerSnapshot {
            worker,
            kind: WorkerKind::DataTcp,
            open: 0,
            buffered: 0,
            counters: Counters::default(),
        };
        observer.record_worker(snapshot(0), start);
        observer.record_worker(snapshot(1), start + Duration::from_secs(5));
        observer.record_worker(snapshot(1), start + Duration::from_secs(9));
        let o = observer.latest();
        assert_eq!(o.workers.len(), 2, "one entry per worker");
        let at = start + Duration::from_secs(10);
        assert_eq!(o.silent_workers(at, Duration::from_secs(2)), 1);
        assert_eq!(o.silent_workers(at, Duration::from_secs(20)), 0);
    }
}
