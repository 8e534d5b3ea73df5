//! Deadlines over real sockets: a header trickled in, a peer that never reads its answers,
//! a terminal that never acknowledges what it is pushed.

mod common;

use avp_endpoint::Scheme;
use avp_proto::Message;
use avpd_node::Node;
use common::{config, connect, report, wait_for_counters, Peer, WAIT};
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

#[test]
fn a_frame_trickled_in_is_closed_at_its_deadline_whatever_the_idle_timeout() {
    let mut cfg = config();
    cfg.frame_timeout = Duration::from_millis(300);
    cfg.idle_timeout = Duration::from_secs(3600);
    let node = Node::start(cfg).unwrap();
    let mut c = connect(&node, Scheme::Tcp);
    // A maximal frame, one byte every 20 ms: each byte is activity, none completes the frame
    // (which would take 20 minutes).
    let mut frame = vec![0xff, 0xff, 3];
    frame.resize(0xffff, 0x63);
    c.stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let closed = loop {
        let mut byte = [0u8; 1];
        match c.stream.read(&mut byte) {
            Ok(0) => break true,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("unexpected {other:?}"),
        }
        if sent == frame.len() - 1 || started.elapsed() > WAIT {
            break false;
        }
        match c.stream.write_all(&frame[sent..sent + 1]) {
            Ok(()) => sent += 1,
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "the trickle kept the connection open ({sent} bytes sent)"
    );
    assert!(
        sent < frame.len() - 1,
        "closed before the frame could complete"
    );
    let counted = wait_for_counters(&node, |c| c.frame_timeouts == 1);
    assert_eq!(counted.idle_closed, 0);
}

#[test]
fn a_peer_that_never_reads_is_closed_after_the_slow_peer_timeout() {
    let mut cfg = config();
    cfg.max_output = 16 * 1024;
    cfg.slow_peer_timeout = Duration::from_millis(300);
    cfg.workers = 1;
    let node = Node::start(cfg).unwrap();
    let mut hog = connect(&node, Scheme::Tcp);
    let socket = socket2::SockRef::from(&hog.stream);
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    hog.stream.set_write_timeout(Some(WAIT)).unwrap();
    let chunk: Vec<u8> = (0..1024).flat_map(|_| report(0)).collect();
    // Writes block once the node stops reading, and fail once it closed the connection.
    let mut written = 0usize;
    let error = loop {
        match hog.stream.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(written < 1 << 30, "the node never stopped reading");
    };
    assert!(
        matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "closed by the node, not timed out: {error}"
    );
    let mut other = connect(&node, Scheme::Tcp);
    other.send(&report(5));
    assert_eq!(other.expect(), Message::ack(Some(5)));
    wait_for_counters(&node, |c| c.slow_peers == 1);
}

#[test]
fn a_terminal_that_never_acknowledges_is_closed_though_it_is_pushed_to() {
    let mut cfg = config();
    cfg.workers = 1;
    cfg.admin.listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
    cfg.admin.report_interval = Duration::from_millis(20);
    cfg.admin.ack_timeout = Duration::from_millis(300);
    cfg.admin.idle_timeout = Duration::from_secs(3600);
    let node = Node::start(cfg).unwrap();
    let mut agent = connect(&node, Scheme::Tcp);
    let mut terminal = Peer::connect(
        node.admin_addr(Scheme::Tcp).unwrap(),
        avp_proto::Codec::Binary,
    );
    let named = |seq: u64| {
        let mut out = Vec::new();
        common::pushed_report(seq, "ws-1", (seq % 100) as u8, 5, common::unix_millis())
            .encode(&mut out)
            .unwrap();
        out
    };
    agent.send(&named(1));
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    // The terminal reads every push and answers none; new rows keep coming while it waits.
    let mut pushes = 0;
    let mut seq = 2;
    loop {
        match terminal.recv_within(Duration::from_millis(50)) {
            Some(_) => pushes += 1,
            None if terminal_closed(&mut terminal) => break,
            None => {}
        }
        agent.send(&named(seq));
        assert_eq!(agent.expect(), Message::ack(Some(seq)));
        seq += 1;
        assert!(seq < 100_000, "the silent terminal was never closed");
    }
    assert!(pushes > 0, "the terminal was pushed rows");
    wait_for_counters(&node, |c| c.ack_timeouts == 1);
}

/// True when the node closed `peer`'s connection.
fn terminal_closed(peer: &mut Peer) -> bool {
    peer.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match peer.stream.peek(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    peer.stream.set_nonblocking(false).unwrap();
    closed
}
