//! The node's metric families, encoded from the latest [`Observation`] at each scrape.
//!
//! Nothing here counts: every value is a copy of what the node's threads already keep (the
//! workers' cumulative counters, the store's state, the fleet view's figures), so the metrics
//! cost the data plane nothing.

use avpd_node::fleet::NodeReport;
use avpd_node::observe::{FleetFigures, Observation, Observer};
use avpd_node::stats::{Counters, WorkerKind};
use avpd_store::StoreStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::fmt;

/// Every kind of worker, in the order the families list them.
const KINDS: [WorkerKind; 3] = [
    WorkerKind::DataTcp,
    WorkerKind::DataUdp,
    WorkerKind::Management,
];

/// Encodes the node's families from its [`Observer`] at each scrape.
#[derive(Debug)]
pub struct NodeCollector {
    observer: Observer,
}

impl NodeCollector {
    /// A collector of `observer`'s figures.
    pub fn new(observer: Observer) -> NodeCollector {
        NodeCollector { observer }
    }
}

impl Collector for NodeCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        encode(&self.observer.latest(), encoder)
    }
}

/// Encodes the families of `observation`: the workers', and the store's and the fleet's when
/// it has them.
pub(crate) fn encode(
    observation: &Observation,
    encoder: DescriptorEncoder,
) -> Result<(), fmt::Error> {
    let mut out = Families { encoder };
    workers(&mut out, &totals(observation))?;
    out.gauge(
        "buffered",
        "Bytes of input and output buffers the node's connections hold now (--max-buffer-memory bounds them).",
        Some(&Unit::Bytes),
        [(
            Labels::new(),
            observation.workers.iter().map(|(s, _)| s.buffered as i64).sum::<i64>(),
        )],
    )?;
    out.gauge(
        "buffer_limit",
        "The bound on avpd_buffered_bytes (--max-buffer-memory).",
        Some(&Unit::Bytes),
        [(Labels::new(), observation.buffer_limit as i64)],
    )?;
    if let Some(store) = &observation.store {
        store_families(&mut out, store)?;
    }
    if let Some(fleet) = &observation.fleet {
        fleet_families(&mut out, fleet)?;
    }
    Ok(())
}

/// The summed counters and open connections of each kind of worker that has reported.
fn totals(o: &Observation) -> Vec<(WorkerKind, Counters, usize)> {
    KINDS
        .iter()
        .filter_map(|&kind| {
            let mut counters = Counters::default();
            let mut open = 0;
            let mut any = false;
            for (s, _) in o.workers.iter().filter(|(s, _)| s.kind == kind) {
                counters.add(&s.counters);
                open += s.open;
                any = true;
            }
            any.then_some((kind, counters, open))
        })
        .collect()
}

/// One metric family at a time, each with its samples.
struct Families<'a> {
    encoder: DescriptorEncoder<'a>,
}

impl Families<'_> {
    /// A family of `metric_type` with one sample per label set; nothing without samples.
    fn family<L: EncodeLabelSet, M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        metric_type: MetricType,
        samples: impl IntoIterator<Item = (L, M)>,
    ) -> Result<(), fmt::Error> {
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return Ok(());
        }
        let mut family = self
            .encoder
            .encode_descriptor(name, help, unit, metric_type)?;
        for (labels, metric) in samples {
            metric.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn counter<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: impl IntoIterator<Item = (L, u64)>,
    ) -> Result<(), fmt::Error> {
        let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
        self.family(name, help, unit, MetricType::Counter, samples)
    }

    fn gauge<L: EncodeLabelSet, N: prometheus_client::encoding::EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        samples: impl IntoIterator<Item = (L, N)>,
    ) -> Result<(), fmt::Error> {
        let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
        self.family(name, help, unit, MetricType::Gauge, samples)
    }
}

type Labels = Vec<(&'static str, &'static str)>;

fn lane(kind: WorkerKind) -> Labels {
    vec![("plane", kind.plane()), ("transport", kind.transport())]
}

fn with(mut labels: Labels, key: &'static str, value: &'static str) -> Labels {
    labels.push((key, value));
    labels
}

/// Messages, answers, connections and bytes, by plane and transport.
fn workers(
    out: &mut Families<'_>,
    totals: &[(WorkerKind, Counters, usize)],
) -> Result<(), fmt::Error> {
    out.counter(
        "messages_received",
        "Messages received, by plane, transport and kind.",
        None,
        totals.iter().flat_map(|(kind, c, _)| {
            let t = &c.tally;
            [
                ("report", t.reports),
                ("command", t.commands),
                ("push_ack", t.push_acks),
                ("invalid", t.invalid),
                ("unsupported", t.unsupported),
                ("unsolicited", t.unsolicited),
            ]
            .map(|(k, v)| (with(lane(*kind), "kind", k), v))
        }),
    )?;
    out.counter(
        "answers",
        "Answers decided, by plane, transport and result code.",
        None,
        totals.iter().flat_map(|(kind, c, _)| {
            answers_by_code(c).map(|(code, v)| (with(lane(*kind), "code", code), v))
        }),
    )?;
    out.counter(
        "reports_pushed",
        "Reports pushed to terminals by the management plane.",
        None,
        totals
            .iter()
            .filter(|(kind, _, _)| *kind == WorkerKind::Management)
            .map(|(_, c, _)| (Labels::new(), c.tally.pushes)),
    )?;
    let tcp = || {
        totals
            .iter()
            .filter(|(kind, _, _)| kind.transport() == "tcp")
    };
    let plane = |kind: &WorkerKind| vec![("plane", kind.plane())];
    out.gauge(
        "connections_open",
        "TCP connections open now, by plane.",
        None,
        tcp().map(|(kind, _, open)| (plane(kind), *open as i64)),
    )?;
    out.counter(
        "connections_accepted",
        "TCP connections accepted, by plane.",
        None,
        tcp().map(|(kind, c, _)| (plane(kind), c.accepted)),
    )?;
    out.counter(
        "connections_refused",
        "TCP connections refused at the connection bound, by plane.",
        None,
        tcp().map(|(kind, c, _)| (plane(kind), c.rejected)),
    )?;
    out.counter(
        "connections_closed",
        "TCP connections closed, by plane and reason.",
        None,
        tcp().flat_map(|(kind, c, _)| {
            closes_by_reason(c).map(|(reason, v)| (with(plane(kind), "reason", reason), v))
        }),
    )?;
    out.counter(
        "accept_errors",
        "accept() failures other than would-block (a full descriptor table), by plane.",
        None,
        tcp().map(|(kind, c, _)| (plane(kind), c.accept_errors)),
    )?;
    out.counter(
        "received",
        "Bytes read from sockets, by plane and transport.",
        Some(&Unit::Bytes),
        totals.iter().map(|(kind, c, _)| (lane(*kind), c.bytes_in)),
    )?;
    out.counter(
        "sent",
        "Bytes written to sockets, by plane and transport.",
        Some(&Unit::Bytes),
        totals.iter().map(|(kind, c, _)| (lane(*kind), c.bytes_out)),
    )?;
    let udp = || {
        totals
            .iter()
            .filter(|(kind, _, _)| *kind == WorkerKind::DataUdp)
    };
    out.counter(
        "udp_datagrams_dropped",
        "UDP datagrams dropped unanswered because they were not exactly one frame.",
        None,
        udp().map(|(_, c, _)| (Labels::new(), c.udp_bad_datagrams)),
    )?;
    out.counter(
        "udp_datagrams_refused",
        "UDP datagrams dropped unanswered because their source is outside --udp-allow.",
        None,
        udp().map(|(_, c, _)| (Labels::new(), c.udp_refused)),
    )?;
    out.counter(
        "udp_answers_dropped",
        "UDP answers dropped, by reason: the socket would block, or the answer was larger than the datagram it answered.",
        None,
        udp().flat_map(|(_, c, _)| {
            [
                ("would_block", c.udp_send_dropped),
                ("oversize", c.tally.oversize_dropped),
            ]
            .map(|(reason, v)| (vec![("reason", reason)], v))
        }),
    )?;
    out.counter(
        "fleet_reports_dropped",
        "Reports not recorded in the fleet view because it was full.",
        None,
        [(
            Labels::new(),
            totals.iter().map(|(_, c, _)| c.fleet_dropped).sum::<u64>(),
        )],
    )
}

/// Answers by result code: every error answer the sessions decided (one per message answered
/// 400, 401, 501 or 503, including the few a UDP datagram could not carry), the error answers
/// of fleet commands (404, 503, 504, and `other` for a code an agent answered with), and the
/// 200s that make up the rest of the answers written.
fn answers_by_code(c: &Counters) -> [(&'static str, u64); 8] {
    let t = &c.tally;
    let by_code = [
        ("400", t.invalid),
        ("401", t.unauthorized),
        ("404", c.command_not_found),
        ("501", t.unsupported + t.unrelayed),
        ("503", t.refused + c.command_overloaded),
        ("504", c.command_timed_out),
        ("other", c.command_failed),
    ];
    let errors: u64 = by_code.iter().map(|(_, v)| v).sum();
    let ok = (t.answers + t.oversize_dropped).saturating_sub(errors);
    let [a, b, d, e, f, g, h] = by_code;
    [("200", ok), a, b, d, e, f, g, h]
}

/// Closed connections by reason; `shutdown` is what the other reasons leave (connections
/// closed by a stopping node).
fn closes_by_reason(c: &Counters) -> [(&'static str, u64); 9] {
    let known = [
        ("peer", c.peer_closed),
        ("idle", c.idle_closed),
        ("frame_timeout", c.frame_timeouts),
        ("ack_timeout", c.ack_timeouts),
        ("slow_peer", c.slow_peers),
        ("framing", c.framing_errors),
        ("io", c.io_errors),
        ("tls_refused", c.tls_refused),
    ];
    let rest = c
        .closed
        .saturating_sub(known.iter().map(|(_, v)| v).sum::<u64>());
    let [a, b, d, e, h, f, g, t] = known;
    [a, b, d, e, h, f, g, t, ("shutdown", rest)]
}

fn store_families(out: &mut Families<'_>, s: &StoreStatus) -> Result<(), fmt::Error> {
    let one = |v: i64| [(Labels::new(), v)];
    out.gauge(
        "store_connected",
        "1 while a NATS server of the store is connected, else 0.",
        None,
        one(i64::from(s.connected)),
    )?;
    out.gauge(
        "store_buffered",
        "Bytes of reports held for the store now (queued or in flight).",
        Some(&Unit::Bytes),
        one(s.buffered as i64),
    )?;
    out.gauge(
        "store_buffer_limit",
        "The bound on the bytes held for the store (--store-buffer).",
        Some(&Unit::Bytes),
        one(s.buffer_limit as i64),
    )?;
    out.counter(
        "store_reports_stored",
        "Reports the store confirmed stored.",
        None,
        [(Labels::new(), s.stored)],
    )?;
    out.counter(
        "store_duplicates",
        "Resent reports found already stored and not stored again.",
        None,
        [(Labels::new(), s.duplicates)],
    )?;
    out.counter(
        "store_publish_retries",
        "Publishes to the store that failed and were retried.",
        None,
        [(Labels::new(), s.retries)],
    )
}

fn fleet_families(out: &mut Families<'_>, f: &FleetFigures) -> Result<(), fmt::Error> {
    out.gauge(
        "fleet_nodes",
        "Nodes in the fleet view.",
        None,
        [(Labels::new(), f.nodes as i64)],
    )?;
    out.gauge(
        "fleet_stale_nodes",
        "Nodes the fleet view shows as stale (after --stale-after, or three of their report intervals).",
        None,
        [(Labels::new(), f.stale as i64)],
    )?;
    if f.reports.is_empty() {
        return Ok(());
    }
    let node = |r: &NodeReport| vec![("node", r.node.clone())];
    out.gauge(
        "node_cpu_ratio",
        "CPU usage of each node in its latest report, 0 to 1.",
        None,
        f.reports
            .iter()
            .map(|r| (node(r), f64::from(r.cpu_percent) / 100.0)),
    )?;
    out.gauge(
        "node_memory_ratio",
        "Memory usage of each node in its latest report, 0 to 1.",
        None,
        f.reports
            .iter()
            .map(|r| (node(r), f64::from(r.mem_percent) / 100.0)),
    )?;
    out.gauge(
        "node_last_report_timestamp",
        "When a collector received each node's latest report, seconds since the Unix epoch.",
        Some(&Unit::Seconds),
        f.reports
            .iter()
            .map(|r| (node(r), r.received_ms as f64 / 1000.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use avp_proto::server::Tally;

    #[test]
    fn answers_add_up_to_what_the_sessions_wrote() {
        let c = Counters {
            tally: Tally {
                invalid: 2,
                unsupported: 1,
                refused: 3,
                unauthorized: 1,
                oversize_dropped: 2,
                unrelayed: 1,
                answers: 16,
                ..Tally::default()
            },
            command_not_found: 2,
            command_overloaded: 1,
            command_timed_out: 1,
            command_failed: 1,
            ..Counters::default()
        };
        let codes = answers_by_code(&c);
        assert_eq!(
            codes,
            [
                ("200", 5),
                ("400", 2),
                ("401", 1),
                ("404", 2),
                ("501", 2),
                ("503", 4),
                ("504", 1),
                ("other", 1)
            ]
        );
        let decided: u64 = codes.iter().map(|(_, v)| v).sum();
        assert_eq!(decided, c.tally.answers + c.tally.oversize_dropped);
    }

    #[test]
    fn closes_by_reason_add_up_to_the_closes() {
        let c = Counters {
            closed: 20,
            peer_closed: 10,
            idle_closed: 3,
            io_errors: 2,
            slow_peers: 1,
            tls_refused: 1,
            ..Counters::default()
        };
        let reasons = closes_by_reason(&c);
        assert_eq!(reasons[7], ("tls_refused", 1));
        assert_eq!(reasons[8], ("shutdown", 3));
        assert_eq!(reasons.iter().map(|(_, v)| v).sum::<u64>(), 20);
    }
}
