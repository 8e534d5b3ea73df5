//! `avpd agent --key-file` against `avpd serve --agent-keys`: signed reports are acknowledged,
//! an agent with the wrong secret is refused and drops its reports, the node counts it; and
//! avp-loadgen's signed reports (`--key-file`, here its library) are acknowledged alike; a
//! SIGHUP gives the node new keys and the agent a new secret and interval.

mod client_support;

use avp_proto::auth::Key;
use client_support::{avpd, field, loadgen_reports, serve, NodeProc};
use std::path::Path;

/// `avpd serve` on an ephemeral port with the key file `keys`, a status line every `status`.
fn keyed_node(keys: &Path, status: &str) -> NodeProc {
    serve(&[
        "--listen",
        "tcp://127.0.0.1:0",
        "--no-admin",
        "--agent-keys",
        keys.to_str().unwrap(),
        "--status-interval",
        status,
    ])
}

#[test]
fn signed_agents_are_acked_and_a_wrong_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("agent-keys.toml");
    std::fs::write(&keys, "\"ws-17\" = \"right\"\n").unwrap();
    let (right, wrong) = (dir.path().join("right"), dir.path().join("wrong"));
    std::fs::write(&right, "right\n").unwrap();
    std::fs::write(&wrong, "wrong\n").unwrap();
    let mut node = keyed_node(&keys, "100ms");
    for (key, acked, unauthorized) in [(&right, "3", "0"), (&wrong, "0", "3")] {
        let mut agent = avpd(&[
            "agent",
            "--collector",
            &node.data,
            "--interval",
            "20ms",
            "--node-id",
            "ws-17",
            "--count",
            "3",
            "--key-file",
            key.to_str().unwrap(),
        ]);
        let line = agent.stderr.wait_contains("agent stopped:");
        assert_eq!(field(&line, "acked"), Some(acked), "{line}");
        assert_eq!(field(&line, "unauthorized"), Some(unauthorized), "{line}");
        assert_eq!(agent.wait_exit(), 0);
    }
    node.proc.stderr.wait_for("unauthorized=3", |l| {
        l.contains("report refused (401)").then_some(())
    });
    let status = node
        .proc
        .stderr
        .wait_for("a status line counting them", |l| {
            field(l, "unauthorized")
                .filter(|n| *n != "0")
                .map(str::to_string)
        });
    assert!(status.parse::<u64>().unwrap() > 0);
}

#[test]
fn sighup_reads_the_agent_keys_again() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("agent-keys.toml");
    std::fs::write(&keys, "\"ws-17\" = \"one\"\n").unwrap();
    // A status interval this long leaves the reading to SIGHUP: the file's time is checked on
    // the status tick only.
    let mut node = keyed_node(&keys, "1h");
    std::fs::write(&keys, "\"ws-17\" = \"one\"\n\"ws-18\" = \"two\"\n").unwrap();
    node.proc.signal("HUP");
    node.proc
        .stderr
        .wait_contains("SIGHUP: agent keys read again: 2 nodes have a key");
    std::fs::write(&keys, "not toml at all = = =\n").unwrap();
    node.proc.signal("HUP");
    node.proc
        .stderr
        .wait_contains("SIGHUP: agent keys not read, the previous ones stay");
}

#[test]
fn sighup_gives_the_agent_its_new_secret_and_interval() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("agent-keys.toml");
    std::fs::write(&keys, "\"ws-17\" = \"new\"\n").unwrap();
    let node = keyed_node(&keys, "1h");
    let (secret, config) = (dir.path().join("secret"), dir.path().join("agent.toml"));
    std::fs::write(&secret, "old\n").unwrap();
    let agent_config = |interval: &str| {
        format!(
            "collector = [\"{}\"]\nnode-id = \"ws-17\"\nlog = \"debug\"\ninterval = \"{interval}\"\n\
             key-file = \"{}\"\n",
            node.data,
            secret.display()
        )
    };
    std::fs::write(&config, agent_config("1h")).unwrap();
    let mut agent = avpd(&["agent", "--config", config.to_str().unwrap()]);
    agent
        .stderr
        .wait_contains("report seq=1 refused, dropped: ");
    std::fs::write(&secret, "new\n").unwrap();
    std::fs::write(&config, agent_config("20ms")).unwrap();
    agent.signal("HUP");
    agent.stderr.wait_contains("interval: \"1h\" -> \"20ms\"");
    // With the old interval no second report would come; with the old secret none is acked.
    agent.stderr.wait_contains("acked seq=");
    agent.terminate();
    assert_eq!(agent.wait_exit(), 0);
}

#[test]
fn a_keyed_node_acks_every_signed_loadgen_report_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("agent-keys.toml");
    std::fs::write(
        &keys,
        "\"loadgen-00000\" = \"s\"\n\"loadgen-00001\" = \"s\"\n",
    )
    .unwrap();
    let node = keyed_node(&keys, "10s");
    for (secret, ok) in [(&b"s"[..], 400), (&b"not it"[..], 0)] {
        let stats = loadgen_reports(&node.data, Some(Key::new(secret)));
        assert_eq!(stats.answered, 400, "{stats:?}");
        assert_eq!(stats.ok, ok, "{stats:?}");
        assert_eq!(
            stats.errors.status_4xx,
            400 - ok,
            "every other one answered 401"
        );
    }
}
