//! TLS on both planes over real loopback sockets, with certificates the test makes: reports
//! acked over tls://, peers without an accepted client certificate refused during the
//! handshake, a terminal that sees the fleet over tls://, and protected mode.

mod common;

use avp_endpoint::{Endpoint, Scheme};
use avp_proto::{Body, Codec, Message, Report};
use avp_testkit::tls::{Identity, Pki};
use avp_tls::ServerTls;
use avpd_node::{Config, Node, StartError};
use common::{config, report, Peer};
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

/// The node's TLS: the server certificate `pki` issues, and, with `client_auth`, client
/// certificates that `pki` issued required.
fn server_tls(pki: &Pki, client_auth: bool) -> ServerTls {
    let server = pki.server();
    let ca = pki.ca();
    ServerTls::from_files(
        &server.cert,
        &server.key,
        client_auth.then_some(ca.as_path()),
    )
    .expect("TLS settings load")
}

/// A node with a tls:// and a tcp:// data-plane endpoint, served with `tls`.
fn tls_node(tls: ServerTls) -> Node {
    let mut c = config();
    c.listen = ["tls://127.0.0.1:0", "tcp://127.0.0.1:0"]
        .iter()
        .map(|s| s.parse::<Endpoint>().unwrap())
        .collect();
    c.tls = Some(tls);
    Node::start(c).expect("node starts")
}

/// Asserts that a client presenting `identity` to `addr` gets its report acked.
fn assert_served(pki: &Pki, addr: SocketAddr, identity: Option<&Identity>) {
    let mut agent = pki.connect(addr, identity).expect("handshake");
    agent.send(&report(1));
    assert_eq!(agent.expect(), Message::ack(Some(1)));
}

#[test]
fn reports_over_tls_are_acked_in_order() {
    let pki = Pki::new("reports");
    let node = tls_node(server_tls(&pki, true));
    let addr = node.local_addr(Scheme::Tls).unwrap();
    let mut agent = pki
        .connect(addr, Some(&pki.client("agent-1")))
        .expect("handshake");
    agent.send(&report(7));
    assert_eq!(agent.expect(), Message::ack(Some(7)));
    // Far more than one TLS record each way, in one write: answered in order.
    let batch: Vec<u8> = (0..5000).flat_map(report).collect();
    agent.send(&batch);
    for seq in 0..5000 {
        assert_eq!(agent.expect(), Message::ack(Some(seq)));
    }
    // The plain endpoint beside it still speaks plain TCP.
    let mut plain = common::connect(&node, Scheme::Tcp);
    plain.send(&report(3));
    assert_eq!(plain.expect(), Message::ack(Some(3)));
}

#[test]
fn a_peer_that_says_close_notify_and_half_closes_gets_every_answer_then_the_end() {
    let pki = Pki::new("half-close");
    let node = tls_node(server_tls(&pki, true));
    let addr = node.local_addr(Scheme::Tls).unwrap();
    let mut agent = pki.connect(addr, Some(&pki.client("a"))).unwrap();
    let batch: Vec<u8> = (0..2000).flat_map(report).collect();
    agent.send(&batch);
    agent.stream.conn.send_close_notify();
    agent.stream.flush().unwrap();
    agent.stream.sock.shutdown(Shutdown::Write).unwrap();
    for seq in 0..2000 {
        assert_eq!(agent.expect(), Message::ack(Some(seq)));
    }
    // The node ends its side with close_notify: a clean end of stream.
    assert_eq!(agent.recv(), None);
}

#[test]
fn without_a_client_ca_any_tls_client_is_served() {
    let pki = Pki::new("open");
    let node = tls_node(server_tls(&pki, false));
    assert_served(&pki, node.local_addr(Scheme::Tls).unwrap(), None);
}

#[test]
fn a_client_without_a_certificate_is_refused_in_the_handshake() {
    let pki = Pki::new("no-cert");
    let node = tls_node(server_tls(&pki, true));
    let addr = node.local_addr(Scheme::Tls).unwrap();
    let err = pki.refused(addr, None);
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    // The node still serves a client that has one.
    assert_served(&pki, addr, Some(&pki.client("a")));
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new("ours");
    let other = Pki::new("theirs");
    let node = tls_node(server_tls(&pki, true));
    let addr = node.local_addr(Scheme::Tls).unwrap();
    // The intruder trusts our server, but its certificate comes from another CA.
    let intruder = other.client("intruder");
    let err = pki.refused(addr, Some(&intruder));
    assert!(err.to_string().contains("UnknownCA"), "{err}");
}

#[test]
fn a_plaintext_peer_on_a_tls_endpoint_is_not_answered() {
    let pki = Pki::new("plaintext");
    let node = tls_node(server_tls(&pki, true));
    let mut peer = Peer::connect(node.local_addr(Scheme::Tls).unwrap(), Codec::Binary);
    peer.send(&report(1));
    peer.expect_closed();
}

#[test]
fn a_terminal_over_tls_sees_the_fleet() {
    let pki = Pki::new("fleet");
    let mut c = config();
    c.admin.listen = vec!["tls://127.0.0.1:0".parse().unwrap()];
    c.admin.tls = Some(server_tls(&pki, true));
    c.admin.report_interval = Duration::from_millis(100);
    let node = Node::start(c).expect("node starts");
    let mut agent = common::connect(&node, Scheme::Tcp);
    agent.send_msg(&Message {
        sequence: Some(1),
        body: Body::StatReport(Report {
            cpu_percent: 42,
            mem_percent: 17,
            timestamp_ms: Some(avp_testkit::unix_millis()),
            node_id: Some("web-1".into()),
            instance: Some(1),
            fleet: None,
        }),
    });
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    let addr = node.admin_addr(Scheme::Tls).unwrap();
    let mut terminal = pki.connect(addr, Some(&pki.client("operator"))).unwrap();
    let pushed = terminal.expect();
    match &pushed.body {
        Body::StatReport(r) => {
            assert_eq!(r.node_id.as_deref(), Some("web-1"));
            assert_eq!((r.cpu_percent, r.mem_percent), (42, 17));
        }
        other => panic!("expected the fleet's row, got {other:?}"),
    }
    terminal.send_msg(&Message::ack(pushed.sequence));
    // A terminal without a certificate does not get in.
    let err = pki.refused(addr, None);
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
}

/// A config whose management plane listens on `admin`.
fn admin_on(admin: &str) -> Config {
    let mut c = config();
    c.admin.listen = vec![admin.parse().unwrap()];
    c
}

#[test]
fn protected_mode_refuses_an_open_management_plane() {
    for admin in ["tcp://0.0.0.0:0", "json+tcp://[::]:0", "tls://0.0.0.0:0"] {
        let mut c = admin_on(admin);
        // TLS without client authentication protects nothing against a stranger.
        c.admin.tls = Some(server_tls(&Pki::new("half"), false));
        match Node::start(c) {
            Err(StartError::Unprotected(e)) => assert_eq!(e.to_string(), admin),
            Err(other) => panic!("{admin}: expected protected mode, got {other}"),
            Ok(_) => panic!("{admin}: the node started unprotected"),
        }
    }
}

#[test]
fn protected_mode_lets_loopback_authenticated_tls_and_insecure_start() {
    drop(Node::start(admin_on("tcp://127.0.0.1:0")).expect("loopback starts"));
    let mut c = admin_on("tcp://0.0.0.0:0");
    c.admin.insecure = true;
    drop(Node::start(c).expect("--admin-insecure starts"));
    let pki = Pki::new("protected");
    let mut c = admin_on("tls://0.0.0.0:0");
    c.admin.tls = Some(server_tls(&pki, true));
    let node = Node::start(c).expect("tls:// with client authentication starts");
    let port = node.admin_addr(Scheme::Tls).unwrap().port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut terminal = pki.connect(addr, Some(&pki.client("op"))).unwrap();
    terminal.send_msg(&Message::pause(Some(1), 60, None));
    match terminal.expect().body {
        Body::CommandResponse { code, .. } => assert_eq!(code, 200),
        other => panic!("expected the pause's answer, got {other:?}"),
    }
}

#[test]
fn a_tls_endpoint_without_a_certificate_does_not_start() {
    let mut c = config();
    c.listen = vec!["tls://127.0.0.1:0".parse().unwrap()];
    let err = Node::start(c).err().expect("refused");
    assert!(err.to_string().contains("--tls-cert"), "{err}");
}

#[test]
fn a_tls_record_trickled_in_is_closed_at_the_frame_deadline() {
    let pki = Pki::new("trickle");
    let mut c = config();
    c.listen = vec!["tls://127.0.0.1:0".parse::<Endpoint>().unwrap()];
    c.tls = Some(server_tls(&pki, false));
    c.frame_timeout = Duration::from_millis(300);
    c.idle_timeout = Duration::from_secs(3600);
    let node = Node::start(c).expect("node starts");
    let mut agent = pki
        .connect(node.local_addr(Scheme::Tls).unwrap(), None)
        .expect("handshake");
    agent.send(&report(1));
    assert_eq!(agent.expect(), Message::ack(Some(1)));
    // The header of a 16 KiB application-data record and its first byte: rustls holds them,
    // so the session never sees a partial frame; only the record's deadline can close it.
    let mut sock = &agent.stream.sock;
    sock.write_all(&[0x17, 0x03, 0x03, 0x40, 0x00, 0x00])
        .unwrap();
    sock.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut rest = Vec::new();
    let end = std::io::Read::read_to_end(&mut sock, &mut rest);
    assert!(
        end.is_ok() || end.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "the node closes the connection: {end:?}"
    );
    let counted = common::wait_for_counters(&node, |c| c.frame_timeouts == 1);
    assert_eq!(counted.idle_closed, 0);
}
