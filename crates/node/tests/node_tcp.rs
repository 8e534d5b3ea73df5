//! The binary data plane over real TCP sockets on loopback.

mod common;

use avp_endpoint::Scheme;
use avp_proto::{Body, Message};
use common::{command_response, config, connect, frame, report, start, wait_for_counters, Peer};
use std::io::Write;

#[test]
fn seed_report_is_acked() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    c.send(&[0x00, 0x09, 0x03, 0x01, 0x01, 0x1E, 0x02, 0x01, 0x35]);
    assert_eq!(c.expect(), Message::ack(None));
}

#[test]
fn report_split_byte_by_byte() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    for byte in report(77) {
        c.stream.write_all(&[byte]).unwrap();
        c.stream.flush().unwrap();
    }
    assert_eq!(c.expect(), Message::ack(Some(77)));
}

#[test]
fn thousand_reports_in_one_write_are_answered_in_order() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    let batch: Vec<u8> = (0..1000).flat_map(report).collect();
    c.send(&batch);
    for seq in 0..1000 {
        assert_eq!(c.expect(), Message::ack(Some(seq)));
    }
}

#[test]
fn every_error_is_answered_and_the_connection_stays_usable() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    let seq = [6, 4, 0, 0, 0, 9];
    let with_seq = |body: &[u8]| [&seq[..], body].concat();
    let cases: Vec<(u8, Vec<u8>, u16, &str)> = vec![
        (
            3,
            with_seq(&[1, 1, 1, 1, 1, 2, 2, 1, 3]),
            400,
            "CPU_USAGE appears more than once",
        ),
        (
            3,
            with_seq(&[1, 1, 101, 2, 1, 3]),
            400,
            "CPU_USAGE 101 is out of range 0..=100",
        ),
        (
            3,
            with_seq(&[1, 0, 2, 1, 3]),
            400,
            "CPU_USAGE has an empty value",
        ),
        (
            3,
            with_seq(&[1, 1, 1, 2, 1, 3, 8, 2, 0xC3, 0x28]),
            400,
            "NODE_ID is not valid UTF-8",
        ),
        (
            3,
            // ESC [ 2 J: a terminal escape that would clear an operator's screen.
            with_seq(&[1, 1, 1, 2, 1, 3, 8, 5, b'w', 0x1b, b'[', b'2', b'J']),
            400,
            "NODE_ID holds a control character",
        ),
        (
            3,
            with_seq(&[1, 1, 1]),
            400,
            "STAT_REPORT requires MEM_USAGE",
        ),
        (0, with_seq(&[]), 400, "PAUSE requires DURATION"),
        (
            1,
            with_seq(&[3, 1, 5]),
            400,
            "DURATION is not allowed in RESUME",
        ),
        (
            3,
            with_seq(&[1, 1, 1, 2, 5, 3]),
            400,
            "runs past the end of the message",
        ),
        (9, with_seq(&[1, 1, 1]), 501, "unsupported message type 9"),
        (255, with_seq(&[]), 501, "unsupported message type 255"),
    ];
    for (i, (msg_type, body, code, text)) in cases.into_iter().enumerate() {
        c.send(&frame(msg_type, &body));
        let info = command_response(&c.expect(), code, Some(9));
        assert!(
            info.contains(text),
            "case {i}: {info:?} should mention {text:?}"
        );
        c.send(&report(1000 + i as u64));
        assert_eq!(
            c.expect(),
            Message::ack(Some(1000 + i as u64)),
            "usable after case {i}"
        );
    }
}

#[test]
fn pause_and_resume_are_answered_200() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    c.send(&frame(0, &[3, 1, 200, 6, 4, 0, 0, 0, 1]));
    assert_eq!(
        command_response(&c.expect(), 200, Some(1)),
        "paused for 200 s"
    );
    c.send(&frame(1, &[6, 4, 0, 0, 0, 2]));
    assert_eq!(command_response(&c.expect(), 200, Some(2)), "resumed");
}

#[test]
fn unsolicited_answers_are_ignored() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    c.send(&frame(4, &[6, 4, 0, 0, 0, 1]));
    c.send(&frame(2, &[4, 2, 0, 200, 5, 2, b'o', b'k']));
    c.send(&frame(2, &[])); // invalid too, still never answered
    c.send(&report(3));
    assert_eq!(
        c.expect(),
        Message::ack(Some(3)),
        "only the report is answered"
    );
}

#[test]
fn lengths_below_three_close_the_connection_and_spare_the_others() {
    let node = start();
    let mut other = connect(&node, Scheme::Tcp);
    for len in 0u8..3 {
        let mut c = connect(&node, Scheme::Tcp);
        c.send(&report(1));
        c.send(&[0, len, 3, 1, 1, 1]);
        assert_eq!(
            c.expect(),
            Message::ack(Some(1)),
            "answers owed before the bad frame are sent"
        );
        c.expect_closed();
        other.send(&report(len as u64));
        assert_eq!(other.expect(), Message::ack(Some(len as u64)));
    }
}

#[test]
fn largest_frame_is_accepted() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    let mut body = vec![1, 1, 30, 2, 1, 53, 6, 4, 0, 0, 0, 5];
    while body.len() + 3 + 257 <= 65535 {
        body.extend_from_slice(&[200, 255]);
        body.extend(std::iter::repeat_n(0xAB, 255));
    }
    let pad = 65535 - 3 - body.len() - 2;
    body.extend_from_slice(&[201, pad as u8]);
    body.extend(std::iter::repeat_n(0, pad));
    let big = frame(3, &body);
    assert_eq!(big.len(), 65535);
    c.send(&big);
    c.send(&big);
    assert_eq!(c.expect(), Message::ack(Some(5)));
    assert_eq!(c.expect(), Message::ack(Some(5)));
}

#[test]
fn two_thousand_concurrent_connections() {
    let node = start();
    let mut clients: Vec<Peer> = (0..2000).map(|_| connect(&node, Scheme::Tcp)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&report(i as u64));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.expect(), Message::ack(Some(i as u64)));
    }
}

#[test]
fn peers_that_vanish_mid_frame_or_reset_do_not_hurt_others() {
    let node = start();
    let mut survivor = connect(&node, Scheme::Tcp);
    for round in 0..20u64 {
        let mut c = connect(&node, Scheme::Tcp);
        c.send(&report(round)[..7]);
        if round % 2 == 0 {
            drop(c); // FIN mid-frame
        } else {
            let socket = socket2::SockRef::from(&c.stream);
            socket.set_linger(Some(std::time::Duration::ZERO)).unwrap();
            drop(c); // RST
        }
        survivor.send(&report(round));
        assert_eq!(survivor.expect(), Message::ack(Some(round)));
    }
}

#[test]
fn a_half_closed_peer_still_gets_its_answers() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    let batch: Vec<u8> = (0..100).flat_map(report).collect();
    c.send(&batch);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    for seq in 0..100 {
        assert_eq!(c.expect(), Message::ack(Some(seq)));
    }
    assert_eq!(c.recv(), None, "closed once everything owed was sent");
}

#[test]
fn sequence_wider_than_four_bytes_is_echoed() {
    let node = start();
    let mut c = connect(&node, Scheme::Tcp);
    c.send(&frame(3, &[1, 1, 1, 2, 1, 2, 6, 8, 1, 2, 3, 4, 5, 6, 7, 8]));
    let ack = c.expect();
    assert_eq!(
        (ack.body, ack.sequence),
        (Body::StatReportAck, Some(0x0102_0304_0506_0708))
    );
}

#[test]
fn ipv6_loopback_works() {
    let mut cfg = common::config();
    cfg.listen = vec![
        "tcp://[::1]:0".parse().unwrap(),
        "udp://[::1]:0".parse().unwrap(),
    ];
    let node = avpd_node::Node::start(cfg).unwrap();
    let addr = node.local_addr(Scheme::Tcp).unwrap();
    assert!(addr.is_ipv6());
    let mut c = Peer::connect(addr, avp_proto::Codec::Binary);
    c.send(&report(6));
    assert_eq!(c.expect(), Message::ack(Some(6)));
}

#[test]
fn a_node_id_with_escape_codes_is_answered_400_over_a_socket() {
    let node = start();
    let mut agent = connect(&node, Scheme::Tcp);
    let name = b"evil\x1b[2Jname";
    let mut body = vec![1, 1, 10, 2, 1, 20, 6, 4, 0, 0, 0, 5, 8, name.len() as u8];
    body.extend_from_slice(name);
    agent.send(&frame(3, &body));
    let answer = agent.expect();
    assert_eq!(answer.sequence, Some(5));
    assert!(
        matches!(answer.body, Body::CommandResponse { code: 400, .. }),
        "{answer:?}"
    );
    // The connection goes on.
    agent.send(&report(6));
    assert_eq!(agent.expect(), Message::ack(Some(6)));
}

#[test]
fn the_management_plane_answers_a_report_501_over_a_socket() {
    let mut c = config();
    c.admin.listen = vec!["tcp://127.0.0.1:0".parse().unwrap()];
    let node = avpd_node::Node::start(c).unwrap();
    let mut terminal = Peer::connect(
        node.admin_addr(Scheme::Tcp).unwrap(),
        avp_proto::Codec::Binary,
    );
    terminal.send(&report(1));
    let answer = loop {
        let m = terminal.expect();
        if m.sequence == Some(1) {
            break m;
        }
    };
    assert!(
        matches!(answer.body, Body::CommandResponse { code: 501, .. }),
        "{answer:?}"
    );
    wait_for_counters(&node, |c| c.tally.unsupported == 1 && c.tally.reports == 0);
}
