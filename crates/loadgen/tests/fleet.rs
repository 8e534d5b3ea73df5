//! A fleet of agents: one connection each, named `<prefix>-<i>`, obeying the PAUSE and RESUME
//! the node sends; connections opened from the local addresses asked for, and ramped at the
//! connect rate.

mod common;

use avp_endpoint::{Endpoint, Scheme};
use avp_loadgen::fleet;
use avp_loadgen::observe::Observer;
use avp_loadgen::report::RunReport;
use avp_loadgen::run::{run, RunConfig};
use avp_loadgen::stats::Counts;
use avp_loadgen::timeline::Second;
use avp_proto::{Body, Message};
use avp_testkit::{accept, Peer, WAIT};
use common::{config, correct_answer, spawn_server_with_peers};
use hdrhistogram::Histogram;
use std::net::{IpAddr, TcpListener};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Hands every second's counts to the test.
struct Seconds(mpsc::Sender<Counts>);

impl Observer for Seconds {
    fn on_second(&mut self, s: &Second, _: &Histogram<u64>) {
        let _ = self.0.send(s.counts);
    }
}

/// Acknowledges the reports on `peer` until PAUSE or RESUME `seq` is answered; returns the
/// NODE_IDs of the reports seen.
fn ack_until_answered(peer: &mut Peer, seq: u64) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let m = peer.expect();
        match m.body {
            Body::StatReport(r) => {
                names.extend(r.node_id.map(|n| n.into_owned()));
                peer.send_msg(&Message::ack(m.sequence));
            }
            Body::CommandResponse { code, .. } if m.sequence == Some(seq) => {
                assert_eq!(code, 200, "the agent answers the node's command");
                return names;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn agents_report_under_their_names_and_obey_pause_and_resume() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = RunConfig {
        timeout: Duration::from_secs(30),
        duration: Duration::from_secs(600),
        interval: Duration::from_millis(100),
        ..RunConfig::new(Endpoint::new(Scheme::Tcp, l.local_addr().unwrap()))
    };
    cfg.node_names.prefix = "t".into();
    fleet::configure(&mut cfg, 2);
    let stop = cfg.stop.clone();
    let (tx, seconds) = mpsc::channel();
    let loadgen = std::thread::spawn(move || {
        let out = run(&cfg, &mut Seconds(tx)).expect("the run completes");
        RunReport::new(&cfg, &out)
    });
    let mut peers = [
        accept(&l, avp_proto::Codec::Binary),
        accept(&l, avp_proto::Codec::Binary),
    ];
    let names: Vec<String> = peers
        .iter_mut()
        .map(|p| {
            let m = p.expect();
            p.send_msg(&Message::ack(m.sequence));
            match m.body {
                Body::StatReport(r) => r.node_id.unwrap().into_owned(),
                other => panic!("an agent reports first: {other:?}"),
            }
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["t-00000", "t-00001"]);
    let [mut a, mut b] = peers;
    let other = std::thread::spawn(move || {
        // The other agent keeps reporting, acknowledged, until the run ends.
        while let Some(m) = b.recv() {
            b.send_msg(&Message::ack(m.sequence));
        }
    });

    a.send_msg(&Message {
        sequence: Some(1000),
        body: Body::Pause {
            target: None,
            duration_secs: 3600,
        },
    });
    ack_until_answered(&mut a, 1000);
    // Paused: the loadgen says so by skipping this agent's slots.
    loop {
        let c = seconds.recv_timeout(WAIT).expect("a second of the run");
        if c.skipped_while_paused > 0 {
            break;
        }
    }
    a.send_msg(&Message {
        sequence: Some(1001),
        body: Body::Resume { target: None },
    });
    // Whatever the agent sent while paused would come before its answer to RESUME.
    let while_paused = ack_until_answered(&mut a, 1001);
    assert_eq!(while_paused, Vec::<String>::new(), "no report while paused");
    let m = a.expect();
    assert!(
        matches!(m.body, Body::StatReport(_)),
        "reports again after RESUME"
    );
    a.send_msg(&Message::ack(m.sequence));

    stop.stop();
    // Answer what is still on its way until the loadgen closes.
    while let Some(m) = a.recv() {
        a.send_msg(&Message::ack(m.sequence));
    }
    let report = loadgen.join().unwrap();
    other.join().unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.params.agents, Some(2));
    assert_eq!(report.params.connections, 2);
    assert_eq!(report.from_target.pauses, 1);
    assert_eq!(report.from_target.resumes, 1);
    assert!(report.from_target.skipped_while_paused > 0);
    assert_eq!(report.errors.failed_requests(), 0, "{:?}", report.errors);
    assert_eq!(report.errors.unsolicited, 0, "commands are not errors");
    assert!(report
        .table()
        .contains("2 agents, one report every 100ms each (20 msg/s)"));
}

#[test]
fn connections_are_opened_from_the_source_addresses_round_robin() {
    let (addr, peers) =
        spawn_server_with_peers(Arc::new(|_, m: &Message<'_>| vec![correct_answer(m)]));
    let mut cfg = config(addr);
    cfg.connections = 4;
    cfg.requests = Some(400);
    cfg.source_addrs = "127.0.0.2-127.0.0.3".parse().unwrap();
    let out = run(&cfg, &mut ()).unwrap();
    assert_eq!(out.stats.ok, 400, "{:?}", out.stats.errors);
    let mut ips: Vec<IpAddr> = peers.lock().unwrap().iter().map(|a| a.ip()).collect();
    ips.sort();
    let want: Vec<IpAddr> = ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ips, want);
    assert_eq!(
        RunReport::new(&cfg, &out).params.source_addrs,
        "127.0.0.2-127.0.0.3"
    );
}

#[test]
fn connections_are_ramped_at_the_connect_rate() {
    let (addr, _) = spawn_server_with_peers(Arc::new(|_, m: &Message<'_>| vec![correct_answer(m)]));
    let mut cfg = config(addr);
    cfg.connections = 20;
    cfg.connect_rate = Some(10.0);
    cfg.duration = Duration::from_secs(3);
    let (tx, rx) = mpsc::channel();
    let out = run(&cfg, &mut Seconds(tx)).unwrap();
    assert!(out.stats.ok > 0, "{:?}", out.stats.errors);
    let open: Vec<u64> = rx.try_iter().map(|c| c.connections).collect();
    // Connection i is opened i / 10 s after the start: never more than 11 by the end of the
    // first second, however slow the machine; all 20 once the ramp is over.
    assert!(open[0] <= 11, "{open:?}");
    assert!(open.windows(2).all(|w| w[0] <= w[1]), "{open:?}");
    assert_eq!(open.iter().max(), Some(&20), "{open:?}");
}
