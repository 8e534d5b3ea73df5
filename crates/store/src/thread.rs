//! The store's thread and the handles the node holds: [`Store`] for the node, one
//! [`WorkerStore`] per worker.

use crate::budget::{Budget, Credit};
use crate::channel::{self, ToStoreTx};
use crate::commands::{CommandReply, OnCommand};
use crate::envelope;
use crate::pipeline::{self, Control, Record, ToStore};
use crate::{LatestRow, StoreConfig, StoreError, StoreStatus};
use avp_proto::result_code;
use avp_proto::server::Action;
use bytes::Bytes;
use crossbeam_channel::Receiver;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Called by the store thread to wake a worker that has confirmations to read.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The running store: its thread and what the node needs to reach it.
pub struct Store {
    to_store: ToStoreTx<ToStore>,
    budget: Arc<Budget>,
    status: Arc<Mutex<StoreStatus>>,
    collector: Arc<str>,
    thread: Option<JoinHandle<()>>,
}

impl Store {
    /// Connects to the servers, creates or checks the stream and the bucket, and starts the
    /// store thread. Fails (with what to fix) when no server answers within the connect
    /// timeout or when the stream exists with a setting avpd cannot work with.
    ///
    /// `on_latest` receives, on the store thread, the latest reports of every node of the
    /// fleet (this node's included) as the bucket sees them change: every tick (250 ms), with
    /// the rows that changed since the last one (none, often). `on_command`, when given,
    /// carries the commands other nodes relay for this node's agents.
    pub fn start(
        config: StoreConfig,
        on_latest: Box<dyn FnMut(Vec<LatestRow>) + Send>,
        on_command: Option<OnCommand>,
    ) -> Result<Store, StoreError> {
        let budget = Budget::new(config.buffer);
        let status = Arc::new(Mutex::new(StoreStatus {
            buffer_limit: config.buffer,
            ..StoreStatus::default()
        }));
        let (to_store, from_nodes) = channel::channel();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let collector: Arc<str> = config.collector.as_str().into();
        let thread_budget = budget.clone();
        let thread_status = status.clone();
        let thread = std::thread::Builder::new()
            .name("avpd-store".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = started_tx.send(Err(StoreError::Thread(e)));
                        return;
                    }
                };
                runtime.block_on(pipeline::run(
                    config,
                    from_nodes,
                    thread_budget,
                    thread_status,
                    on_latest,
                    on_command,
                    started_tx,
                ));
            })
            .map_err(StoreError::Thread)?;
        match started_rx.recv() {
            Ok(Ok(())) => Ok(Store {
                to_store,
                budget,
                status,
                collector,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(StoreError::Thread(std::io::Error::other(
                "the store thread ended during start-up",
            ))),
        }
    }

    /// The handle of worker `id`; `wake` is called when it has confirmations to read.
    pub fn worker(&self, id: usize, wake: Wake) -> WorkerStore {
        let (confirm_tx, confirmed) = crossbeam_channel::unbounded();
        let _ = self
            .to_store
            .send(ToStore::Control(Control::Register(id, confirm_tx, wake)));
        WorkerStore {
            id,
            to_store: self.to_store.clone(),
            confirmed,
            credit: Credit::new(self.budget.clone()),
            next_ticket: 1,
            batch: Vec::new(),
            arena: Vec::new(),
            collector: self.collector.clone(),
        }
    }

    /// Relays `action` for `node` to the node whose collector id is `collector`; `reply` gets
    /// the result (404 when no node listens there, 504 when it does not answer in time).
    pub fn relay(&self, collector: &str, node: &str, action: Action, reply: CommandReply) {
        let command = ToStore::Command {
            collector: collector.into(),
            node: node.into(),
            action,
            reply,
        };
        if let Err(e) = self.to_store.send(command) {
            if let ToStore::Command { reply, .. } = e.0 {
                reply(result_code::OVERLOADED, "the store is stopping".into());
            }
        }
    }

    /// This node's collector id.
    pub fn collector(&self) -> &str {
        &self.collector
    }

    /// What the store thread reports of itself now.
    pub fn status(&self) -> StoreStatus {
        let mut s = *self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.buffered = self.budget.used();
        s
    }

    /// Stops the store thread once what it holds is stored, or after `deadline`.
    pub fn shutdown(mut self, deadline: Duration) {
        self.stop(deadline);
    }

    fn stop(&mut self, deadline: Duration) {
        let _ = self
            .to_store
            .send(ToStore::Control(Control::Stop(deadline)));
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the store thread panicked");
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

/// One worker's link to the store: its batch of reports, its share of the store buffer, and
/// the confirmations of what was stored.
///
/// Tickets count from 1 and increase by one with every report added; the store confirms them
/// in order ([`WorkerStore::confirmed`] is the highest ticket stored so far).
pub struct WorkerStore {
    id: usize,
    to_store: ToStoreTx<ToStore>,
    confirmed: Receiver<u64>,
    credit: Credit,
    next_ticket: u64,
    batch: Vec<Record>,
    /// The node ids and envelopes of the batch, back to back.
    arena: Vec<u8>,
    collector: Arc<str>,
}

/// Bytes a record costs in the store buffer beyond its envelope (its bookkeeping).
const RECORD_OVERHEAD: usize = 64;

impl WorkerStore {
    /// Adds a report of `node` (its `frame`, received at `received_ms` from `peer`) to the
    /// batch and returns its ticket; `identity` is its (INSTANCE, SEQUENCE) when it has both.
    /// `None` when the store buffer is full: the report is not taken.
    #[inline]
    pub fn add(
        &mut self,
        node: &str,
        identity: Option<(u64, u64)>,
        received_ms: u64,
        peer: SocketAddr,
        frame: &[u8],
    ) -> Option<u64> {
        let start = self.arena.len();
        self.arena.extend_from_slice(node.as_bytes());
        let payload_start = self.arena.len();
        envelope::encode(received_ms, peer, &self.collector, frame, &mut self.arena);
        let cost = self.arena.len() - start + RECORD_OVERHEAD;
        if !self.credit.spend(cost) {
            self.arena.truncate(start);
            return None;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.batch.push(Record {
            ticket,
            node: start..payload_start,
            identity,
            payload: payload_start..self.arena.len(),
            cost,
        });
        Some(ticket)
    }

    /// Hands the batch to the store thread (nothing when it is empty).
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.batch);
        let arena = Bytes::from(std::mem::take(&mut self.arena));
        let _ = self.to_store.send(ToStore::Batch {
            worker: self.id,
            records,
            arena,
        });
    }

    /// Hands the latest reports of this worker's peers to the store, to put in the bucket of
    /// latest reports (stamped with this node's collector id).
    pub fn publish_latest(&self, rows: impl IntoIterator<Item = (String, u8, u8, u64, u64)>) {
        let rows = rows
            .into_iter()
            .map(|(node, cpu, mem, ts, received_ms)| LatestRow {
                node,
                cpu,
                mem,
                ts,
                received_ms,
                collector: self.collector.to_string(),
            })
            .collect();
        let _ = self.to_store.send(ToStore::Latest(rows));
    }

    /// The highest ticket the store confirmed since the last call, if any.
    pub fn confirmed(&self) -> Option<u64> {
        self.confirmed.try_iter().max()
    }
}
