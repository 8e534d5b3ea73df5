//! Bounds: connection limit, idle timeout, a peer that never reads, graceful shutdown.

mod common;

use avp_endpoint::Scheme;
use avp_proto::Message;
use avpd_node::Node;
use common::{command_response, config, connect, report, Peer};
use std::io::{ErrorKind, Write};
use std::time::Duration;

#[test]
fn connections_past_the_limit_get_503_and_are_closed() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let node = Node::start(cfg).unwrap();
    let mut held: Vec<Peer> = (0..2).map(|_| connect(&node, Scheme::Tcp)).collect();
    for (i, c) in held.iter_mut().enumerate() {
        c.send(&report(i as u64));
        assert_eq!(c.expect(), Message::ack(Some(i as u64)));
    }
    let mut extra = connect(&node, Scheme::Tcp);
    let info = command_response(&extra.expect(), 503, None);
    assert_eq!(info, "too many connections");
    extra.expect_closed();
    drop(held.pop());
    // The slot frees once the node has seen the close; a later connection gets in.
    let accepted = (0..200).any(|_| {
        let mut c = connect(&node, Scheme::Tcp);
        c.send(&report(9));
        c.recv() == Some(Message::ack(Some(9)))
    });
    assert!(accepted, "a freed slot is reused");
}

#[test]
fn idle_connections_are_closed() {
    let mut cfg = config();
    cfg.idle_timeout = Duration::from_millis(300);
    let node = Node::start(cfg).unwrap();
    let mut c = connect(&node, Scheme::Tcp);
    c.send(&report(1));
    assert_eq!(c.expect(), Message::ack(Some(1)));
    c.expect_closed();
}

#[test]
fn a_peer_that_never_reads_is_not_read_from_and_others_are_served() {
    let mut cfg = config();
    cfg.max_output = 64 * 1024;
    cfg.workers = 1;
    let node = Node::start(cfg).unwrap();
    let mut hog = connect(&node, Scheme::Tcp);
    hog.stream
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let hog_socket = socket2::SockRef::from(&hog.stream);
    hog_socket.set_send_buffer_size(64 * 1024).unwrap();
    hog_socket.set_recv_buffer_size(64 * 1024).unwrap();
    // Write reports without reading until the node stops taking them. If it read without
    // bound, 64 MiB would go through; it must stall far earlier (output bound plus kernel
    // socket buffers).
    let chunk: Vec<u8> = (0..4096).flat_map(|_| report(0)).collect();
    let limit = 64 << 20;
    let mut written = 0usize;
    while written < limit {
        // Resume where a short write stopped, so the stream stays whole reports.
        match hog.stream.write(&chunk[written % chunk.len()..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(
        written < limit,
        "the node kept reading from a peer that never reads"
    );
    eprintln!("the node stopped reading after {written} bytes");
    let mut other = connect(&node, Scheme::Tcp);
    other.send(&report(42));
    assert_eq!(
        other.expect(),
        Message::ack(Some(42)),
        "others are served meanwhile"
    );
    // Complete the last partial report from a clone of the socket while this thread reads:
    // every report gets its ack, in order, and nothing was lost.
    let tail = report(0)[written % 15..].to_vec();
    let mut tail_writer = hog.stream.try_clone().unwrap();
    tail_writer.set_write_timeout(None).unwrap();
    let writer = std::thread::spawn(move || {
        if tail.len() < 15 {
            tail_writer.write_all(&tail).unwrap();
        }
    });
    for _ in 0..written.div_ceil(15) {
        assert_eq!(hog.expect(), Message::ack(Some(0)));
    }
    writer.join().unwrap();
    hog.send(&report(7));
    assert_eq!(hog.expect(), Message::ack(Some(7)), "usable after draining");
}

#[test]
fn shutdown_sends_the_answers_owed_then_closes() {
    let node = Node::start(config()).unwrap();
    let addr = node.local_addr(Scheme::Tcp).unwrap();
    let mut c = connect(&node, Scheme::Tcp);
    let batch: Vec<u8> = (0..1000).flat_map(report).collect();
    c.send(&batch);
    assert_eq!(c.expect(), Message::ack(Some(0)));
    node.shutdown();
    let mut next = 1;
    while let Some(msg) = c.recv() {
        assert_eq!(
            msg,
            Message::ack(Some(next)),
            "answers stay in order and none is skipped"
        );
        next += 1;
    }
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}
