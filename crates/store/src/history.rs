//! Reading stored reports back, for `avpd history`: an ordered consumer over the stream of
//! reports, from a start time, for one node, the nodes a glob matches, or all.
//!
//! This runs on the caller's thread with a runtime of its own: it is a command, not part of a
//! node.

use crate::envelope;
use crate::setup::connect_client;
use crate::subject::node_of;
use crate::subject::{report_subject, SUBJECTS};
use crate::{StoreConfig, StoreError};
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use avp_proto::{Body, Codec, Decoded, Report, Status};
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which stored reports to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// One node, by its id.
    pub node: Option<String>,
    /// The nodes whose ids match this glob (`*` any run of characters, `?` one).
    pub pattern: Option<String>,
    /// Reports stored at or after this time.
    pub since: Option<SystemTime>,
    /// Reports stored before this time.
    pub until: Option<SystemTime>,
}

/// One stored report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The node it reports.
    pub node: String,
    /// When its collector received it, ms since the Unix epoch.
    pub received_ms: u64,
    /// The collector that received it.
    pub collector: String,
    /// Who sent it.
    pub peer: SocketAddr,
    /// Its SEQUENCE.
    pub sequence: Option<u64>,
    /// What it reports.
    pub report: Report<'static>,
}

/// Reads the reports `query` selects, oldest first, handing each to `on_row`; returns how many
/// stored messages were not reports this version reads (skipped).
pub fn read(
    config: &StoreConfig,
    query: &Query,
    mut on_row: impl FnMut(Row),
) -> Result<u64, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreError::Thread)?;
    runtime.block_on(async {
        let client = connect_client(config, None).await?;
        let js = async_nats::jetstream::new(client);
        let setup = |what: &str, e: &dyn std::fmt::Display| StoreError::Setup {
            what: what.to_string(),
            reason: e.to_string(),
        };
        let stream = retried(|| js.get_stream(&config.stream))
            .await
            .map_err(|e| setup(&format!("open the stream {}", config.stream), &e))?;
        let filter = match &query.node {
            Some(node) => report_subject(node),
            None => SUBJECTS.to_string(),
        };
        let deliver_policy = match query.since {
            Some(t) => DeliverPolicy::ByStartTime {
                start_time: to_datetime(t),
            },
            None => DeliverPolicy::All,
        };
        let ordered = OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            ..Default::default()
        };
        let consumer = retried(|| stream.create_consumer(ordered.clone()))
            .await
            .map_err(|e| setup("read the stream", &e))?;
        let info = retried(|| consumer.get_info())
            .await
            .map_err(|e| setup("read the stream", &e))?;
        let mut skipped = 0;
        if info.num_pending == 0 {
            return Ok(skipped);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| setup("read the stream", &e))?;
        // `--since` and `--until` both select by the time the stream stored a report (the
        // order of the stream), so that neither depends on a collector's clock.
        let until = query.until.map(to_datetime);
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| setup("read the stream", &e))?;
            let (pending, stored) = match message.info() {
                Ok(i) => (i.pending, Some(i.published)),
                Err(_) => (0, None),
            };
            if until.is_some_and(|u| stored.is_some_and(|s| s >= u)) {
                break;
            }
            match row_of(&message.subject, &message.payload) {
                Some(row)
                    if query
                        .pattern
                        .as_deref()
                        .is_none_or(|p| avp_units::glob(p, &row.node)) =>
                {
                    on_row(row)
                }
                Some(_) => {}
                None => skipped += 1,
            }
            if pending == 0 {
                break;
            }
        }
        Ok(skipped)
    })
}

/// Runs `attempt` until it succeeds, up to five times with a growing pause between: a cluster
/// that just lost a server answers nothing until it has elected new leaders.
async fn retried<T, E, F>(mut attempt: impl FnMut() -> F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut wait = Duration::from_millis(250);
    for _ in 1..5 {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    attempt().await
}

/// A stored message as a row; `None` when it is not a report this version reads.
fn row_of(subject: &str, payload: &[u8]) -> Option<Row> {
    let node = node_of(subject.strip_prefix("avp.reports.")?)?;
    let stored = envelope::decode(payload)?;
    let Ok(Status::Complete((Decoded::Message(m), _))) = Codec::Binary.decode(stored.frame) else {
        return None;
    };
    let Body::StatReport(report) = m.body else {
        return None;
    };
    Some(Row {
        node,
        received_ms: stored.received_ms,
        collector: stored.collector.to_string(),
        peer: stored.peer,
        sequence: m.sequence,
        report: report.into_owned(),
    })
}

/// Per-node figures over the rows read: samples, first and last receive times, and the
/// least, mean and most CPU and memory.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    nodes: std::collections::BTreeMap<String, NodeSummary>,
}

/// One node's figures in a [`Summary`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeSummary {
    /// Reports read.
    pub samples: u64,
    /// Receive time of the first and the last, ms since the Unix epoch.
    pub first_ms: u64,
    /// See `first_ms`.
    pub last_ms: u64,
    /// CPU percent: least, mean, most.
    pub cpu: (u8, f64, u8),
    /// Memory percent: least, mean, most.
    pub mem: (u8, f64, u8),
}

impl Summary {
    /// Adds one row.
    pub fn add(&mut self, row: &Row) {
        let (cpu, mem) = (row.report.cpu_percent, row.report.mem_percent);
        let at = row.received_ms;
        let s = self.nodes.entry(row.node.clone()).or_insert(NodeSummary {
            samples: 0,
            first_ms: at,
            last_ms: at,
            cpu: (cpu, 0.0, cpu),
            mem: (mem, 0.0, mem),
        });
        s.samples += 1;
        s.first_ms = s.first_ms.min(at);
        s.last_ms = s.last_ms.max(at);
        let n = s.samples as f64;
        for (acc, v) in [(&mut s.cpu, cpu), (&mut s.mem, mem)] {
            acc.0 = acc.0.min(v);
            acc.2 = acc.2.max(v);
            acc.1 += (f64::from(v) - acc.1) / n;
        }
    }

    /// Every node's figures, by node id.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &NodeSummary)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }
}

fn to_datetime(t: SystemTime) -> time::OffsetDateTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    time::OffsetDateTime::UNIX_EPOCH + d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_keep_extremes_and_means_per_node() {
        let row = |node: &str, at, cpu, mem| Row {
            node: node.into(),
            received_ms: at,
            collector: "c".into(),
            peer: "127.0.0.1:1".parse().unwrap(),
            sequence: None,
            report: Report {
                fleet: None,
                cpu_percent: cpu,
                mem_percent: mem,
                timestamp_ms: None,
                node_id: None,
                instance: None,
            },
        };
        let mut s = Summary::default();
        for r in [row("b", 5, 10, 40), row("a", 7, 1, 2), row("b", 3, 30, 20)] {
            s.add(&r);
        }
        let nodes: Vec<_> = s.nodes().collect();
        assert_eq!(nodes[0].0, "a");
        let b = nodes[1].1;
        assert_eq!((b.samples, b.first_ms, b.last_ms), (2, 3, 5));
        assert_eq!(b.cpu, (10, 20.0, 30));
        assert_eq!(b.mem, (20, 30.0, 40));
    }
}
