//! Fairness over real sockets: one peer that pipelines reports as fast as it can does not
//! starve another on the same worker.

mod common;

use avp_endpoint::Scheme;
use avp_proto::Message;
use avpd_node::Node;
use common::{config, connect, report};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[test]
fn a_greedy_peer_does_not_starve_a_latency_probe_on_its_worker() {
    let mut cfg = config();
    cfg.workers = 1;
    let node = Node::start(cfg).unwrap();
    let greedy = connect(&node, Scheme::Tcp).stream;
    let mut reader = greedy.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    // Reads (and discards) the greedy peer's answers so that it is never paused on its output.
    let counting = {
        let (stop, answered) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !stop.load(Ordering::Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answered.fetch_add(n as u64, Ordering::Relaxed),
                };
            }
        })
    };
    // Writes reports back to back, faster than the node decodes them.
    let writing = {
        let stop = stop.clone();
        let mut greedy = greedy;
        let chunk: Vec<u8> = (0..8192).flat_map(|i| report(i % 100)).collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if greedy.write_all(&chunk).is_err() {
                    break;
                }
            }
            greedy
        })
    };
    // The greedy peer is being served before the probe starts.
    common::wait_for_counters(&node, |c| c.tally.reports > 100_000);
    let before = answered.load(Ordering::Relaxed);
    let mut probe = connect(&node, Scheme::Tcp);
    for seq in 0..50 {
        probe.send(&report(seq));
        // Within the test kit's generous wait. A liveness check: on a loopback where the node
        // drains the greedy peer's socket faster than it fills, the probe is answered even
        // without a per-event budget; the bound on one event's reads is checked next to the
        // code (net::conn's tests).
        assert_eq!(probe.expect(), Message::ack(Some(seq)));
    }
    let during = answered.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let greedy = writing.join().unwrap();
    greedy.shutdown(std::net::Shutdown::Both).unwrap();
    counting.join().unwrap();
    assert!(during > 0, "the greedy peer kept being answered meanwhile");
}
