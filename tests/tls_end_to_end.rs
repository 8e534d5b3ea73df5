//! The binaries over TLS: `avpd agent` reports to `avpd serve` over tls:// with a client
//! certificate, `avpd term --plain` watches the fleet over tls://, refused handshakes are
//! counted on the status line and logged; protected mode at start-up.

mod client_support;

use avp_proto::{Body, Message};
use avp_testkit::tls::{Identity, Pki};
use client_support::{avpd, field, report, serve, NodeProc};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;

/// Starts `avpd serve` with tls:// on both planes, presenting `server`, client certificates
/// from the CA in `client_ca` required, and `extra` flags.
fn serve_tls(server: &Identity, client_ca: &Path, extra: &[&str]) -> NodeProc {
    let mut args = vec![
        "--listen",
        "tls://127.0.0.1:0",
        "--admin",
        "tls://127.0.0.1:0",
        "--tls-cert",
        server.cert.to_str().unwrap(),
        "--tls-key",
        server.key.to_str().unwrap(),
        "--tls-client-ca",
        client_ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    serve(&args)
}

/// [`serve_tls`] with `pki`'s server certificate and CA, quick pushes and status lines.
fn tls_node(pki: &Pki) -> NodeProc {
    let fast = ["--report-interval", "100ms", "--status-interval", "200ms"];
    serve_tls(&pki.server(), &pki.ca(), &fast)
}

/// `--ca`, `--cert` and `--key` of a client of `pki` presenting `identity`.
fn client_flags(pki: &Pki, identity: &Identity) -> Vec<String> {
    [
        "--ca",
        pki.ca().to_str().unwrap(),
        "--cert",
        identity.cert.to_str().unwrap(),
        "--key",
        identity.key.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// The loopback address of a `scheme://127.0.0.1:PORT` URL.
fn local(url: &str) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], client_support::port(url)))
}

#[test]
fn an_agent_reports_over_tls_and_a_terminal_sees_it_over_tls() {
    let pki = Pki::new("e2e");
    let node = tls_node(&pki);
    let agent_id = pki.client("agent");
    let mut args = [
        "agent",
        "--collector",
        &node.data,
        "--node-id",
        "tls-agent",
        "--interval",
        "100ms",
        "--count",
        "3",
    ]
    .map(String::from)
    .to_vec();
    args.extend(client_flags(&pki, &agent_id));
    let mut agent = avpd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(agent.wait_exit(), 0, "{}", agent.stderr.tail());
    let line = agent.stderr.wait_contains("agent stopped");
    assert_eq!(field(&line, "acked"), Some("3"), "{line}");

    let operator = pki.client("operator");
    let admin = node.admin.clone().expect("a management plane");
    let mut args = ["term", "--plain", "--connect", &admin]
        .map(String::from)
        .to_vec();
    args.extend(client_flags(&pki, &operator));
    let mut term = avpd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let line = term.stdout.wait_contains("node=tls-agent ");
    assert_eq!(field(&line, "link"), Some(admin.as_str()), "{line}");
}

#[test]
fn refused_handshakes_are_counted_on_the_status_line_and_logged() {
    let pki = Pki::new("refusals");
    let mut node = tls_node(&pki);
    let err = pki.refused(local(&node.data), None);
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    let line = node.proc.stderr.wait_contains("TLS handshake refused");
    assert!(line.contains("127.0.0.1"), "{line}");
    node.proc.stderr.wait_contains("tls_refused=1");

    // A terminal without --ca cannot even try, and says what it needs.
    let admin = node.admin.clone().unwrap();
    let mut term = avpd(&["term", "--plain", "--connect", &admin]);
    assert_ne!(term.wait_exit(), 0);
    term.stderr.wait_contains("--ca FILE");
}

#[test]
fn a_handshake_that_never_completes_is_closed_after_the_frame_timeout() {
    let pki = Pki::new("stalled");
    let fast = ["--frame-timeout", "300ms", "--status-interval", "200ms"];
    let mut node = serve_tls(&pki.server(), &pki.ca(), &fast);
    // The first bytes of a ClientHello record header, then nothing: the idle timeout (300 s)
    // would hold it for minutes.
    let stalled = std::net::TcpStream::connect(local(&node.data)).unwrap();
    (&stalled).write_all(&[0x16, 0x03]).unwrap();
    // And one that sends nothing at all.
    let silent = std::net::TcpStream::connect(local(&node.data)).unwrap();
    for mut peer in [stalled, silent] {
        peer.set_read_timeout(Some(client_support::WAIT)).unwrap();
        // At most an alert comes before the end of the stream.
        let mut rest = Vec::new();
        let end = peer.read_to_end(&mut rest);
        assert!(
            end.is_ok() || end.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
            "the node closes the connection: {end:?}"
        );
    }
    let line = node
        .proc
        .stderr
        .wait_contains("TLS handshake not complete within the frame timeout");
    assert!(line.contains("127.0.0.1"), "{line}");
    // Each status line counts the refusals of its interval.
    let mut refused = 0;
    node.proc.stderr.wait_for("both refusals counted", |l| {
        refused += field(l, "tls_refused").map_or(0, |n| n.parse::<u32>().unwrap());
        (refused == 2).then_some(())
    });
}

#[test]
fn protected_mode_refuses_an_open_management_plane_and_says_what_to_add() {
    let mut node = avpd(&[
        "serve",
        "--listen",
        "tcp://127.0.0.1:0",
        "--admin",
        "tcp://0.0.0.0:0",
    ]);
    assert_ne!(node.wait_exit(), 0);
    let line = node.stderr.wait_contains("protected mode");
    assert!(
        line.contains("--tls-client-ca") && line.contains("--admin-insecure"),
        "{line}"
    );
}

#[test]
fn protected_mode_lets_insecure_and_loopback_management_planes_start() {
    let insecure = serve(&[
        "--listen",
        "tcp://127.0.0.1:0",
        "--admin",
        "tcp://0.0.0.0:0",
        "--admin-insecure",
    ]);
    assert!(insecure.admin.unwrap().starts_with("tcp://0.0.0.0:"));
    let loopback = serve(&[
        "--listen",
        "tcp://127.0.0.1:0",
        "--admin",
        "tcp://127.0.0.1:0",
    ]);
    assert!(loopback.admin.is_some());
}

#[test]
fn with_admin_tls_client_ca_an_agent_certificate_does_not_open_the_management_plane() {
    let agents = Pki::new("agents");
    let operators = Pki::new("operators");
    let operators_ca = operators.ca();
    let admin_ca = ["--admin-tls-client-ca", operators_ca.to_str().unwrap()];
    let node = serve_tls(&agents.server(), &agents.ca(), &admin_ca);
    let admin = local(node.admin.as_deref().unwrap());
    let agent_cert = agents.client("agent");
    let err = agents.refused(admin, Some(&agent_cert));
    assert!(err.to_string().contains("UnknownCA"), "{err}");
    // Clients trust the node's certificate through the agents' CA, which issued it.
    let mut terminal = agents
        .connect(admin, Some(&operators.client("operator")))
        .expect("handshake");
    terminal.send_msg(&Message::pause(Some(1), 60, None));
    assert!(matches!(
        terminal.expect().body,
        Body::CommandResponse { code: 200, .. }
    ));
    let mut agent = agents
        .connect(local(&node.data), Some(&agent_cert))
        .expect("handshake");
    agent.send(&report(1));
    assert_eq!(agent.expect(), Message::ack(Some(1)));
}
