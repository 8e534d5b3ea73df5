//! The sweep stops at the first step a deliberately slow server cannot keep up with.

mod common;

use avp_loadgen::sweep::{sweep, SweepConfig};
use avp_proto::Message;
use common::{config, correct_answer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sweep_stops_where_the_slow_server_saturates() {
    // A single virtual server of 1 ms per message (capacity 1,000/s): each answer is due 1 ms
    // after the later of its arrival and the previous answer's due time. Deadlines, not
    // sleeps, set the pace, so a late wake-up does not lower the capacity.
    let free_at = Arc::new(Mutex::new(Instant::now()));
    let addr = common::spawn_server(Arc::new(move |_, msg: &Message<'_>| {
        let due = {
            let mut f = free_at.lock().unwrap();
            *f = (*f).max(Instant::now()) + Duration::from_millis(1);
            *f
        };
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        vec![correct_answer(msg)]
    }));
    let mut base = config(addr);
    base.pipeline = 64;
    base.duration = Duration::from_secs(2);
    let cfg = SweepConfig {
        start_rate: 150.0,
        start_agents: None,
        factor: 2.0,
        max_steps: 6,
        slo: vec!["p99=100ms".parse().unwrap()],
        error_budget: 0.001,
    };
    let result = sweep(&base, &cfg, &mut ()).unwrap();
    let seen: Vec<f64> = result.steps.iter().map(|s| s.rate).collect();
    // 150, 300 and 600/s are within capacity; at 1,200/s the queue grows by 200 messages a
    // second, so after 2 s the corrected p99 is far past 100 ms and the sweep stops there.
    assert_eq!(seen, vec![150.0, 300.0, 600.0, 1_200.0]);
    assert_eq!(result.best_rate, Some(600.0));
    let last = result.steps.last().unwrap();
    assert!(
        last.broken.as_deref().unwrap().starts_with("p99"),
        "{:?}",
        last.broken
    );
    assert!(result.steps[..3].iter().all(|s| s.broken.is_none()));
}
