//! The store thread's work, on its tokio runtime: connect and make sure the stream and the
//! bucket are there ([`crate::setup`]), then publish the workers' reports with many
//! acknowledgements in flight, confirm them to each worker in the order it added them, put
//! the latest report of each node in the bucket, and watch the bucket for the whole fleet.

use crate::channel::FromNodes;
use crate::commands::{self, CommandReply, OnCommand};
use crate::envelope;
use crate::setup::{connect_client, ensure_stream_and_bucket};
use crate::subject::{report_subject, token};
use crate::thread::Wake;
use crate::{LatestRow, StoreConfig, StoreError, StoreStatus};
use async_nats::jetstream::context::{Context, ContextBuilder, PublishError};
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use async_nats::{HeaderMap, Subject};
use avp_proto::server::Action;
use avp_proto::{Body, Codec, Decoded, Status};
use bytes::Bytes;
use crossbeam_channel::Sender;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::unconstrained;

/// Publishes awaiting their acknowledgement at most.
const MAX_IN_FLIGHT: usize = 8192;
/// Latest rows put in the bucket awaiting their acknowledgement at most.
const MAX_LATEST_IN_FLIGHT: usize = 8192;
/// Lookups of a node's last stored report in flight at most.
const MAX_LOOKUPS: usize = 256;
/// Most nodes whose subject the store thread keeps built (a cache: past it, it starts over).
const MAX_CACHED_NODES: usize = 65_536;
/// How often the stored-once marks not used lately are forgotten ([`Pipeline::rotate_marks`]).
const MARKS_ROTATE_EVERY: Duration = Duration::from_secs(600);
/// Most instances whose mark is kept as recent before the marks rotate early.
const MAX_RECENT_MARKS: usize = 262_144;
/// How long a publish may wait for its acknowledgement before it is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the latest reports go to the bucket and the fleet's changes to the node.
const TICK: Duration = Duration::from_millis(250);
/// A node's latest report is put in the bucket at most this often. Shorter than a report
/// interval (1 s by default), so that a node reporting on schedule has every report put at the
/// first tick after it arrives: at a full interval, a report that came a little early waited
/// for the next tick, and the one after it could be skipped.
const LATEST_EVERY: Duration = Duration::from_millis(500);
/// First wait before a failed publish is sent again; it doubles up to a second.
const RETRY_FIRST: Duration = Duration::from_millis(50);

/// What the node sends the store thread.
pub(crate) enum ToStore {
    /// Reports of one worker; `arena` holds their node ids and envelopes.
    Batch {
        worker: usize,
        records: Vec<Record>,
        arena: Bytes,
    },
    /// The latest reports of this node's peers.
    Latest(Vec<LatestRow>),
    /// A command for an agent connected to another collector.
    Command {
        collector: String,
        node: String,
        action: Action,
        reply: CommandReply,
    },
    /// Everything else.
    Control(Control),
}

/// Commands to the store thread.
pub(crate) enum Control {
    /// Worker `id` reads its confirmations from this channel and is woken by this call.
    Register(usize, Sender<u64>, Wake),
    /// Stop once everything held is stored, or after this long.
    Stop(Duration),
}

/// One report to store, as a worker added it.
pub(crate) struct Record {
    pub(crate) ticket: u64,
    /// Its node id, in the batch's arena.
    pub(crate) node: Range<usize>,
    /// (INSTANCE, SEQUENCE), when it has both.
    pub(crate) identity: Option<(u64, u64)>,
    /// Its envelope, in the batch's arena.
    pub(crate) payload: Range<usize>,
    /// What it costs in the store buffer.
    pub(crate) cost: usize,
}

/// A record on the store thread: ready to publish.
struct Queued {
    worker: usize,
    ticket: u64,
    /// Its node's NODE_ID.
    node: Arc<str>,
    subject: Subject,
    identity: Option<(u64, u64)>,
    payload: Bytes,
    attempts: u32,
    /// Its place in the order records were taken, so that retries keep it.
    order: u64,
}

/// What the store knows of a node's instance.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    /// Every report of the instance up to `upto` is stored, but for those in `in_flight`:
    /// taken, and not confirmed by the stream yet. `upto: None`: none is stored (a first
    /// report may have any SEQUENCE, 0 too).
    Known {
        /// The highest SEQUENCE taken (or found stored), if any.
        upto: Option<u64>,
        /// SEQUENCEs taken and not confirmed yet.
        in_flight: BTreeSet<u64>,
    },
    /// The node's last stored report is not of this instance: nothing to go by.
    Unknown,
}

impl Mark {
    /// Stored up to `seq` (as a lookup found), or nothing stored yet (`None`).
    fn upto(seq: Option<u64>) -> Mark {
        Mark::Known {
            upto: seq,
            in_flight: BTreeSet::new(),
        }
    }

    /// What the copy of report `seq` now being published tells a later lookup (its
    /// [`STORED_THROUGH`] header): the highest SEQUENCE up to which every report of the
    /// instance taken is stored once this copy is. A report still in flight below `seq` (one
    /// being retried) holds it below that report; `None` when nothing can be promised.
    fn stored_through(&self, seq: u64) -> Option<u64> {
        let Mark::Known { upto, in_flight } = self else {
            return None;
        };
        match in_flight.iter().find(|&&s| s != seq) {
            Some(&lowest) => lowest.checked_sub(1),
            None => *upto,
        }
    }
}

/// Forgets the `old` marks and makes the `recent` ones old, but for those with reports in
/// flight, which stay recent.
fn rotate(recent: &mut HashMap<InstanceKey, Mark>, old: &mut HashMap<InstanceKey, Mark>) {
    old.clear();
    for (key, mark) in std::mem::take(recent) {
        match &mark {
            Mark::Known { in_flight, .. } if !in_flight.is_empty() => recent.insert(key, mark),
            _ => old.insert(key, mark),
        };
    }
}

/// The header of a stored report that says up to which SEQUENCE of its instance every report
/// was stored when it was ([`Mark::stored_through`]); what a node that has not seen the instance
/// yet learns its mark from.
const STORED_THROUGH: &str = "Avp-Stored-Through";

type AckFuture = Pin<Box<dyn Future<Output = (Queued, Result<PublishAck, PublishError>)> + Send>>;
/// A node (its NODE_ID) and one of its instances.
type InstanceKey = (Arc<str>, u64);

type LookupFuture = Pin<Box<dyn Future<Output = (InstanceKey, Mark)> + Send>>;
/// A put of a node's latest report, and whether the bucket confirmed it (with the row, to put
/// again when it did not).
type LatestAck = Pin<Box<dyn Future<Output = Result<(), (LatestRow, String)>> + Send>>;

/// A worker's confirmations: its tickets in the order it added them, and whether each is done.
struct Confirms {
    tx: Sender<u64>,
    wake: Wake,
    /// INVARIANT: tickets increase from front to back.
    pending: VecDeque<(u64, usize, bool)>,
    /// The last ticket taken off `pending` that the worker has not been told of yet.
    released: Option<u64>,
}

struct Pipeline {
    js: Context,
    stream: stream::Stream,
    config: StoreConfig,
    budget: Arc<crate::budget::Budget>,
    status: Arc<Mutex<StoreStatus>>,
    workers: Vec<Option<Confirms>>,
    /// The nodes seen lately with their subjects, so that each publish does not build one; a
    /// cache, emptied when it reaches [`MAX_CACHED_NODES`].
    nodes: HashMap<Box<str>, (Arc<str>, Subject)>,
    queue: VecDeque<Queued>,
    /// Records whose publish failed, newest first (the next to send is at the end).
    retrying: Vec<Queued>,
    /// Records taken so far.
    taken: u64,
    acks: FuturesUnordered<AckFuture>,
    /// The marks of the instances seen since the last [`Pipeline::rotate_marks`], and those
    /// seen only before it: a mark not used for two rotations is forgotten (and looked up
    /// again if its instance comes back).
    marks: HashMap<InstanceKey, Mark>,
    old_marks: HashMap<InstanceKey, Mark>,
    marks_rotated: Instant,
    /// Records of an instance whose mark is being looked up, in order.
    parked: HashMap<InstanceKey, VecDeque<Queued>>,
    lookups: FuturesUnordered<LookupFuture>,
    waiting_lookups: VecDeque<InstanceKey>,
    retry_at: Option<Instant>,
    retry_wait: Duration,
    latest_pending: HashMap<String, LatestRow>,
    latest_sent: HashMap<String, Instant>,
    latest_acks: FuturesUnordered<LatestAck>,
    /// Rows were due when the last put stopped at [`MAX_LATEST_IN_FLIGHT`].
    latest_backlog: bool,
    watched: Vec<LatestRow>,
    stored: u64,
    duplicates: u64,
    retries: u64,
}

/// The store thread's body: sets up, says whether it could on `started`, then serves until
/// stopped.
pub(crate) async fn run(
    config: StoreConfig,
    mut from_nodes: FromNodes<ToStore>,
    budget: Arc<crate::budget::Budget>,
    status: Arc<Mutex<StoreStatus>>,
    mut on_latest: Box<dyn FnMut(Vec<LatestRow>) + Send>,
    on_command: Option<OnCommand>,
    started: std::sync::mpsc::Sender<Result<(), StoreError>>,
) {
    let setup = set_up(&config, status.clone()).await;
    let (js, stream, bucket) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let mut watch = match bucket.watch_with_history(">").await {
        Ok(w) => Some(w),
        Err(e) => {
            let _ = started.send(Err(StoreError::Setup {
                what: format!("watch the bucket {}", config.latest_bucket),
                reason: e.to_string(),
            }));
            return;
        }
    };
    status.lock().unwrap_or_else(|e| e.into_inner()).connected = true;
    if let Some(on_command) = on_command {
        // Listening before start-up ends: a node is reachable once it has started.
        match commands::listen(&js.client(), &config.collector).await {
            Ok(requests) => {
                tokio::spawn(commands::serve(js.client(), requests, on_command));
            }
            Err(e) => {
                let _ = started.send(Err(StoreError::Setup {
                    what: "take commands from other nodes".into(),
                    reason: e.to_string(),
                }));
                return;
            }
        }
    }
    let _ = started.send(Ok(()));
    let mut p = Pipeline {
        js,
        stream,
        config,
        budget,
        status,
        workers: Vec::new(),
        nodes: HashMap::new(),
        queue: VecDeque::new(),
        acks: FuturesUnordered::new(),
        marks: HashMap::new(),
        old_marks: HashMap::new(),
        marks_rotated: Instant::now(),
        parked: HashMap::new(),
        lookups: FuturesUnordered::new(),
        retrying: Vec::new(),
        taken: 0,
        waiting_lookups: VecDeque::new(),
        retry_at: None,
        retry_wait: RETRY_FIRST,
        latest_pending: HashMap::new(),
        latest_sent: HashMap::new(),
        latest_acks: FuturesUnordered::new(),
        latest_backlog: false,
        watched: Vec::new(),
        stored: 0,
        duplicates: 0,
        retries: 0,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop_by: Option<Instant> = None;
    // A watch that ended (its server went away, say) is made again, at most once a second.
    let mut rewatch_at = Instant::now();
    loop {
        tokio::select! {
            msg = from_nodes.recv(), if stop_by.is_none() => match msg {
                Some(ToStore::Batch { worker, records, arena }) => p.take(worker, records, &arena),
                Some(ToStore::Latest(rows)) => p.take_latest(rows),
                Some(ToStore::Command { collector, node, action, reply }) => {
                    commands::send(&p.js.client(), &collector, &node, action, reply)
                }
                Some(ToStore::Control(Control::Register(id, tx, wake))) => p.register(id, tx, wake),
                Some(ToStore::Control(Control::Stop(limit))) => stop_by = Some(Instant::now() + limit),
                None => stop_by = Some(Instant::now()),
            },
            Some((record, result)) = p.acks.next(), if !p.acks.is_empty() => p.on_ack(record, result),
            Some((key, mark)) = p.lookups.next(), if !p.lookups.is_empty() => p.on_lookup(key, mark),
            Some(put) = p.latest_acks.next(), if !p.latest_acks.is_empty() => p.on_latest_ack(put),
            entry = next_entry(&mut watch) => p.on_watched(entry),
            _ = tick.tick() => {
                if watch.is_none() && Instant::now() >= rewatch_at {
                    rewatch_at = Instant::now() + Duration::from_secs(1);
                    watch = rewatch(&bucket).await;
                }
                p.rotate_marks(Instant::now());
                p.put_latest().await;
                on_latest(std::mem::take(&mut p.watched));
                p.report_status();
            }
        }
        // Every acknowledgement already in, so that one confirmation (one wake of each worker,
        // one status update) covers the whole read of them rather than each.
        while let Some(Some((record, result))) = p.acks.next().now_or_never() {
            p.on_ack(record, result);
        }
        if p.latest_backlog && p.latest_acks.len() <= MAX_LATEST_IN_FLIGHT / 2 {
            p.put_latest().await;
        }
        p.publish_queued().await;
        p.confirm();
        if let Some(by) = stop_by {
            if p.is_idle() || Instant::now() >= by {
                break;
            }
        }
    }
    if !p.is_idle() {
        let parked: usize = p.parked.values().map(VecDeque::len).sum();
        let unsent = p.queue.len() + p.retrying.len() + parked;
        tracing::error!(
            "store: stopped before the stream took everything: {unsent} reports not sent, {} \
             sent and not confirmed; those acknowledged under --ack-after received are lost",
            p.acks.len()
        );
    }
    p.report_status();
}

/// The next change the bucket watch sees; never resolves while there is no watch. A watch
/// that fails or ends is dropped (the store thread makes it again, see [`rewatch`]).
async fn next_entry(watch: &mut Option<kv::Watch>) -> Option<LatestRow> {
    let Some(w) = watch.as_mut() else {
        return std::future::pending().await;
    };
    match w.next().await {
        Some(Ok(entry)) => serde_json::from_slice(&entry.value).ok(),
        Some(Err(e)) => {
            tracing::warn!("store: watching the latest reports failed: {e}; watching again");
            *watch = None;
            None
        }
        None => {
            tracing::warn!("store: the watch of the latest reports ended; watching again");
            *watch = None;
            None
        }
    }
}

/// A new watch of the bucket, from every node's latest report (what the fleet view may have
/// missed meanwhile); `None`, to be tried again, when the bucket does not answer.
async fn rewatch(bucket: &kv::Store) -> Option<kv::Watch> {
    match bucket.watch_with_history(">").await {
        Ok(w) => {
            tracing::info!("store: watching the latest reports again");
            Some(w)
        }
        Err(e) => {
            tracing::debug!("store: watching the latest reports failed again: {e}");
            None
        }
    }
}

/// Connects, then creates or checks the stream and the bucket.
async fn set_up(
    config: &StoreConfig,
    status: Arc<Mutex<StoreStatus>>,
) -> Result<(Context, stream::Stream, kv::Store), StoreError> {
    let client = connect_client(config, Some(status)).await?;
    // Both bounds in flight are the pipeline's own, so the context never makes a publish wait
    // for a permit: the acknowledgements that would free one are polled by the same task.
    let js = ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .max_ack_inflight(MAX_IN_FLIGHT + MAX_LATEST_IN_FLIGHT)
        .backpressure_on_inflight(false)
        .build(client);
    let (stream, bucket) = ensure_stream_and_bucket(&js, config).await?;
    Ok((js, stream, bucket))
}

impl Pipeline {
    fn register(&mut self, id: usize, tx: Sender<u64>, wake: Wake) {
        if self.workers.len() <= id {
            self.workers.resize_with(id + 1, || None);
        }
        self.workers[id] = Some(Confirms {
            tx,
            wake,
            pending: VecDeque::new(),
            released: None,
        });
    }

    /// Takes a worker's batch: every record gets its place in the worker's order, then goes to
    /// the queue (or waits for its instance's mark).
    fn take(&mut self, worker: usize, records: Vec<Record>, arena: &Bytes) {
        for r in records {
            let name = std::str::from_utf8(&arena[r.node.clone()]).unwrap_or("?");
            let (node, subject) = match self.nodes.get(name) {
                Some(known) => known.clone(),
                None => {
                    if self.nodes.len() >= MAX_CACHED_NODES {
                        self.nodes.clear();
                    }
                    let known = (Arc::from(name), Subject::from(report_subject(name)));
                    self.nodes.insert(name.into(), known.clone());
                    known
                }
            };
            if let Some(c) = self.workers.get_mut(worker).and_then(Option::as_mut) {
                c.pending.push_back((r.ticket, r.cost, false));
            }
            self.taken += 1;
            let queued = Queued {
                worker,
                ticket: r.ticket,
                node,
                subject,
                identity: r.identity,
                payload: arena.slice(r.payload),
                attempts: 0,
                order: self.taken,
            };
            self.admit(queued);
        }
    }

    /// Sends `q` on its way: to the queue, or marked stored when it was stored before, or
    /// parked while its instance's mark is looked up.
    fn admit(&mut self, q: Queued) {
        let Some((instance, seq)) = q.identity else {
            self.queue.push_back(q);
            return;
        };
        let key = (q.node.clone(), instance);
        self.promote(&key);
        if let Some(parked) = self.parked.get_mut(&key) {
            parked.push_back(q);
            return;
        }
        match self.marks.get_mut(&key) {
            // A resend of a report already stored.
            Some(Mark::Known { upto, in_flight })
                if upto.is_some_and(|u| seq <= u) && !in_flight.contains(&seq) =>
            {
                self.duplicates += 1;
                self.done(q.worker, q.ticket);
            }
            // A resend of a report still on its way: published again, so that its ack waits
            // for a stored copy; the stream's duplicate window keeps one of the two.
            Some(Mark::Known { upto, .. }) if upto.is_some_and(|u| seq <= u) => {
                self.queue.push_back(q)
            }
            Some(Mark::Known { upto, in_flight }) => {
                *upto = Some(seq);
                in_flight.insert(seq);
                self.queue.push_back(q);
            }
            Some(Mark::Unknown) => self.queue.push_back(q),
            None => {
                self.parked.insert(key.clone(), VecDeque::from([q]));
                self.waiting_lookups.push_back(key);
                self.start_lookups();
            }
        }
    }

    fn start_lookups(&mut self) {
        while self.lookups.len() < MAX_LOOKUPS {
            let Some(key) = self.waiting_lookups.pop_front() else {
                return;
            };
            let stream = self.stream.clone();
            let subject = report_subject(&key.0);
            self.lookups.push(Box::pin(async move {
                let mut wait = RETRY_FIRST;
                let mark = loop {
                    match stream.direct_get_last_for_subject(subject.clone()).await {
                        Ok(m) => break mark_of(&m.headers, &m.payload, key.1),
                        // No report of that node yet: nothing stored.
                        Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                            break Mark::upto(None)
                        }
                        // The records wait (parked) until the stream answers.
                        Err(e) => {
                            tracing::debug!("store: looking up {subject} failed: {e}; retrying");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(1));
                        }
                    }
                };
                (key, mark)
            }));
        }
    }

    /// Moves the mark of `key` back among the recent ones, if it is among the old.
    fn promote(&mut self, key: &InstanceKey) {
        if !self.marks.contains_key(key) {
            if let Some(mark) = self.old_marks.remove(key) {
                self.marks.insert(key.clone(), mark);
            }
        }
    }

    /// Every [`MARKS_ROTATE_EVERY`], or once [`MAX_RECENT_MARKS`] instances were seen since the
    /// last time: forgets the marks not used since the rotation before, and makes the recent
    /// ones old. A mark with reports in flight stays recent.
    fn rotate_marks(&mut self, now: Instant) {
        let due = now.duration_since(self.marks_rotated) >= MARKS_ROTATE_EVERY;
        if !due && self.marks.len() < MAX_RECENT_MARKS {
            return;
        }
        self.marks_rotated = now;
        rotate(&mut self.marks, &mut self.old_marks);
    }

    fn on_lookup(&mut self, key: InstanceKey, mark: Mark) {
        let parked = self.parked.remove(&key).unwrap_or_default();
        self.marks.insert(key, mark);
        for q in parked {
            self.admit(q);
        }
        self.start_lookups();
    }

    /// Publishes from the queue while there is room in flight (and no retry is waiting).
    async fn publish_queued(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.retry_at = None;
        while self.acks.len() < MAX_IN_FLIGHT {
            let Some(q) = self.retrying.pop().or_else(|| self.queue.pop_front()) else {
                return;
            };
            let mut message = PublishMessage::build().payload(q.payload.clone());
            if let Some((instance, seq)) = q.identity {
                // Message ids are unique over the whole stream: the node's subject is part of it.
                message = message.message_id(format!("{}:{instance:016x}:{seq}", q.subject));
                let key = (q.node.clone(), instance);
                let mark = self.marks.get(&key).or_else(|| self.old_marks.get(&key));
                let through = mark.and_then(|m| m.stored_through(seq));
                if let Some(through) = through {
                    message = message.header(STORED_THROUGH, through.to_string().as_str());
                }
            }
            match self.js.send_publish(q.subject.clone(), message).await {
                // Outside tokio's cooperative budget: thousands of acknowledgements wait here,
                // and with the budget, each one polled once it was spent is woken and polled
                // again, which took more of the thread than the publishes themselves.
                Ok(ack) => self
                    .acks
                    .push(Box::pin(unconstrained(async move { (q, ack.await) }))),
                Err(e) => {
                    self.retry(q, &e);
                    return;
                }
            }
        }
    }

    fn on_ack(&mut self, q: Queued, result: Result<PublishAck, PublishError>) {
        match result {
            Ok(ack) => {
                if ack.duplicate {
                    self.duplicates += 1;
                } else {
                    self.stored += 1;
                }
                if let Some((instance, seq)) = q.identity {
                    let key = (q.node.clone(), instance);
                    self.promote(&key);
                    if let Some(Mark::Known { in_flight, .. }) = self.marks.get_mut(&key) {
                        in_flight.remove(&seq);
                    }
                }
                self.retry_wait = RETRY_FIRST;
                self.done(q.worker, q.ticket);
            }
            Err(e) => self.retry(q, &e),
        }
    }

    /// Puts `q` back at the front of the queue, to be sent again after a pause.
    fn retry(&mut self, mut q: Queued, e: &PublishError) {
        self.retries += 1;
        q.attempts += 1;
        if q.attempts == 1 || q.attempts.is_multiple_of(100) {
            tracing::warn!(
                "store: publishing to {} failed ({} attempts): {e}; retrying",
                q.subject,
                q.attempts
            );
        }
        // Failed publishes come back in any order: retried oldest first.
        let at = self.retrying.partition_point(|r| r.order > q.order);
        self.retrying.insert(at, q);
        self.retry_at = Some(Instant::now() + self.retry_wait);
        self.retry_wait = (self.retry_wait * 2).min(Duration::from_secs(1));
    }

    /// Marks a worker's ticket stored.
    fn done(&mut self, worker: usize, ticket: u64) {
        if let Some(c) = self.workers.get_mut(worker).and_then(Option::as_mut) {
            // A worker's tickets rise, and its batches come in order: `pending` is sorted.
            if let Ok(at) = c.pending.binary_search_by_key(&ticket, |&(t, _, _)| t) {
                c.pending[at].2 = true;
            }
        }
    }

    /// Confirms to each worker the tickets stored in its order, gives their bytes back to the
    /// store buffer, and wakes the worker. The bytes go back and the counts are published
    /// before any worker hears of its confirmations, so that a status read after a
    /// confirmation counts it.
    fn confirm(&mut self) {
        let mut progress = false;
        for c in self.workers.iter_mut().flatten() {
            while let Some(&(ticket, cost, true)) = c.pending.front() {
                c.pending.pop_front();
                self.budget.give(cost);
                c.released = Some(ticket);
                progress = true;
            }
        }
        if !progress {
            return;
        }
        self.report_status();
        for c in self.workers.iter_mut().flatten() {
            if let Some(ticket) = c.released.take() {
                let _ = c.tx.send(ticket);
                (c.wake)();
            }
        }
    }

    fn take_latest(&mut self, rows: Vec<LatestRow>) {
        for row in rows {
            match self.latest_pending.get(&row.node) {
                Some(held) if held.ts > row.ts => {}
                _ => {
                    self.latest_pending.insert(row.node.clone(), row);
                }
            }
        }
    }

    /// Puts in the bucket the latest report of each node that changed, at most once per
    /// [`LATEST_EVERY`] per node and [`MAX_LATEST_IN_FLIGHT`] unacknowledged; the rest wait for room.
    async fn put_latest(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .latest_pending
            .keys()
            .filter(|n| {
                self.latest_sent
                    .get(*n)
                    .is_none_or(|t| now.duration_since(*t) >= LATEST_EVERY)
            })
            .cloned()
            .collect();
        let room = MAX_LATEST_IN_FLIGHT.saturating_sub(self.latest_acks.len());
        self.latest_backlog = due.len() > room;
        for node in due.into_iter().take(room) {
            let Some(row) = self.latest_pending.remove(&node) else {
                continue;
            };
            let Ok(value) = serde_json::to_vec(&row) else {
                continue;
            };
            let subject = format!("$KV.{}.{}", self.config.latest_bucket, token(&node));
            let message = PublishMessage::build().payload(value.into());
            match self.js.send_publish(subject, message).await {
                Ok(ack) => {
                    let row = row.clone();
                    self.latest_acks.push(Box::pin(async move {
                        ack.await.map(drop).map_err(|e| (row, e.to_string()))
                    }))
                }
                Err(e) => {
                    tracing::debug!("store: putting the latest report of {node} failed: {e}");
                    self.latest_pending.insert(node, row);
                    continue;
                }
            }
            self.latest_sent.insert(node, now);
        }
        // Forget nodes not heard from in a while, so that the map does not grow for ever.
        self.latest_sent.retain(|_, t| {
            now.duration_since(*t) < self.config.max_age.min(Duration::from_secs(3600))
        });
    }

    /// A put the bucket did not confirm is put again (unless a newer row of its node waits).
    fn on_latest_ack(&mut self, put: Result<(), (LatestRow, String)>) {
        let Err((row, e)) = put else {
            return;
        };
        tracing::debug!(
            "store: putting the latest report of {} failed: {e}",
            row.node
        );
        self.latest_sent.remove(&row.node);
        if !self.latest_pending.contains_key(&row.node) {
            self.latest_pending.insert(row.node.clone(), row);
        }
    }

    fn on_watched(&mut self, row: Option<LatestRow>) {
        if let Some(row) = row {
            self.watched.push(row);
        }
    }

    fn report_status(&self) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.stored = self.stored;
        s.duplicates = self.duplicates;
        s.retries = self.retries;
        s.buffered = self.budget.used();
    }

    /// True when nothing is held: every record stored and confirmed.
    fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self.retrying.is_empty()
            && self.acks.is_empty()
            && self.parked.is_empty()
            && self.workers.iter().flatten().all(|c| c.pending.is_empty())
    }
}

/// The mark of `instance` that a node's last stored report (its headers and envelope) gives:
/// its [`STORED_THROUGH`] header when the report is of that instance.
fn mark_of(headers: &HeaderMap, envelope: &[u8], instance: u64) -> Mark {
    let Some(stored) = envelope::decode(envelope) else {
        return Mark::Unknown;
    };
    let of_instance = match Codec::Binary.decode(stored.frame) {
        Ok(Status::Complete((Decoded::Message(m), _))) => {
            matches!(m.body, Body::StatReport(r) if r.instance == Some(instance))
        }
        _ => false,
    };
    let through = headers
        .get(STORED_THROUGH)
        .and_then(|v| v.as_str().parse::<u64>().ok());
    match through {
        Some(through) if of_instance => Mark::upto(Some(through)),
        _ => Mark::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(upto: u64, in_flight: &[u64]) -> Mark {
        Mark::Known {
            upto: Some(upto),
            in_flight: in_flight.iter().copied().collect(),
        }
    }

    #[test]
    fn a_report_in_flight_below_holds_the_promise_below_it() {
        assert_eq!(known(10, &[10]).stored_through(10), Some(10));
        assert_eq!(known(10, &[]).stored_through(10), Some(10), "a resend");
        // 5 is being retried while 6 to 10 are published: none of them may promise 10.
        assert_eq!(known(10, &[5, 9, 10]).stored_through(10), Some(4));
        assert_eq!(
            known(10, &[5]).stored_through(5),
            Some(10),
            "5 was the last one out"
        );
        assert_eq!(known(10, &[0, 10]).stored_through(10), None);
        assert_eq!(Mark::Unknown.stored_through(3), None);
    }

    #[test]
    fn marks_unused_for_two_rotations_are_forgotten_unless_in_flight() {
        let key = |n: &str| (Arc::<str>::from(n), 1);
        let mut recent =
            HashMap::from([(key("idle"), known(5, &[])), (key("busy"), known(5, &[5]))]);
        let mut old = HashMap::from([(key("gone"), known(1, &[]))]);
        rotate(&mut recent, &mut old);
        assert_eq!(recent.keys().collect::<Vec<_>>(), [&key("busy")]);
        assert_eq!(old.keys().collect::<Vec<_>>(), [&key("idle")]);
        rotate(&mut recent, &mut old);
        assert!(recent.contains_key(&key("busy")) && !old.contains_key(&key("idle")));
    }

    #[test]
    fn a_lookup_trusts_the_header_of_its_own_instance_only() {
        let msg = avp_proto::Message {
            sequence: Some(10),
            body: Body::StatReport(avp_proto::Report {
                cpu_percent: 1,
                mem_percent: 2,
                timestamp_ms: Some(1),
                node_id: Some("ws-1".into()),
                instance: Some(7),
                fleet: None,
            }),
        };
        let mut frame = Vec::new();
        msg.encode(&mut frame).unwrap();
        let mut stored = Vec::new();
        envelope::encode(1, "127.0.0.1:1".parse().unwrap(), "c", &frame, &mut stored);
        let mut headers = HeaderMap::new();
        assert_eq!(mark_of(&headers, &stored, 7), Mark::Unknown, "no header");
        headers.insert(STORED_THROUGH, "4");
        assert_eq!(mark_of(&headers, &stored, 7), Mark::upto(Some(4)));
        assert_eq!(
            mark_of(&headers, &stored, 8),
            Mark::Unknown,
            "another instance"
        );
    }
}
