//! The UDP data plane against reflection over real sockets: no answer larger than the
//! datagram it answers, and the `--udp-allow` source list.

mod common;

use avp_proto::{Body, Message};
use avpd_node::Node;
use common::{config, frame, report, udp_client, wait_for_counters};

#[test]
fn udp_answers_are_never_larger_than_their_datagrams() {
    let node = Node::start(config()).unwrap();
    let socket = udp_client(&node);
    let datagrams = [
        // The 4-byte datagram: a report whose body is one stray byte (it earned 62
        // bytes of 400 once).
        frame(3, &[0x01]),
        // An unknown message type, no body.
        frame(77, &[]),
        // A report with CPU over 100 and a SEQUENCE: its bare 400 echoes the SEQUENCE.
        frame(
            3,
            &[0x01, 0x01, 200, 0x02, 0x01, 50, 0x03, 0x04, 0, 0, 0, 9],
        ),
        // The same with a padding AVP of an unknown attribute.
        frame(
            3,
            &[
                0x01, 0x01, 200, 0x02, 0x01, 50, 0x7f, 0x08, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
        // Padded far past what its 400 with a text would take: still answered code-only.
        frame(
            3,
            &[
                [0x01, 0x01, 200, 0x02, 0x01, 50, 0x7f, 200].as_slice(),
                &[0; 200],
            ]
            .concat(),
        ),
    ];
    let mut buf = [0u8; 65536];
    for (marker, datagram) in datagrams.iter().enumerate() {
        socket.send(datagram).unwrap();
        // A report after it: its ack tells that everything before it was answered or dropped.
        socket.send(&report(1000 + marker as u64)).unwrap();
        loop {
            let n = socket.recv(&mut buf).expect("the marker's ack");
            let answer = avp_proto::decode_datagram(&buf[..n]).expect("one frame");
            let answer = Message::parse(answer).expect("a valid answer");
            if answer == Message::ack(Some(1000 + marker as u64)) {
                break;
            }
            assert!(
                n <= datagram.len(),
                "a {n}-byte answer to a {}-byte datagram: {answer:?}",
                datagram.len()
            );
            assert!(
                matches!(answer.body, Body::CommandResponse { info: None, .. }),
                "an error answering a datagram is code-only: {answer:?}"
            );
        }
    }
    // The answers that did not fit were dropped and counted.
    wait_for_counters(&node, |c| c.tally.oversize_dropped >= 2);
}

#[test]
fn udp_allow_drops_datagrams_from_other_sources_and_counts_them() {
    let mut cfg = config();
    cfg.udp_allow = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap()];
    let node = Node::start(cfg).unwrap();
    let socket = udp_client(&node);
    for seq in 0..3 {
        socket.send(&report(seq)).unwrap();
    }
    let counted = wait_for_counters(&node, |c| c.udp_refused == 3);
    assert_eq!(
        counted.tally.reports, 0,
        "no report from outside the list was taken"
    );
    assert_eq!(counted.tally.answers, 0);

    let mut cfg = config();
    cfg.udp_allow = vec![
        "10.0.0.0/8".parse().unwrap(),
        "127.0.0.0/8".parse().unwrap(),
    ];
    let node = Node::start(cfg).unwrap();
    let socket = udp_client(&node);
    socket.send(&report(4)).unwrap();
    let mut buf = [0u8; 64];
    let n = socket
        .recv(&mut buf)
        .expect("an answer from a listed source");
    let answer = Message::parse(avp_proto::decode_datagram(&buf[..n]).unwrap()).unwrap();
    assert_eq!(answer, Message::ack(Some(4)));
    assert_eq!(node.counters().udp_refused, 0);
}
