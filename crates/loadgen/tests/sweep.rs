//! The sweep stops at the first step a deliberately slow server cannot keep up with, names
//! each step and its rate in its progress lines, and states capacity in agents too.

mod common;

use avp_loadgen::progress::Progress;
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
    let mut progress = Progress::new(Vec::new());
    let result = sweep(&base, &cfg, &mut progress).unwrap();
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
    // A rate of 600/s with the default one-second interval is 600 agents' worth.
    assert_eq!(result.best_agents, Some(600.0));

    let lines = String::from_utf8(progress.into_inner()).unwrap();
    for (n, rate) in [(1, "150"), (2, "300"), (3, "600"), (4, "1,200")] {
        let label = format!("step {n}/6 at {rate} msg/s");
        assert!(lines.contains(&format!("{label}: starting\n")), "{lines}");
        assert!(
            lines.contains(&format!("{label} [")),
            "a second of {label}: {lines}"
        );
        assert!(lines.contains(&format!("{label}: ")), "{lines}");
    }
    assert!(lines.contains("met the objectives"), "{lines}");
}

#[test]
fn a_fleet_sweep_counts_agents_and_names_them_in_each_step() {
    let addr = common::spawn_server(Arc::new(|_, msg: &Message<'_>| vec![correct_answer(msg)]));
    let mut base = config(addr);
    base.duration = Duration::from_secs(1);
    base.interval = Duration::from_millis(100);
    let cfg = SweepConfig {
        start_rate: 1.0,
        start_agents: Some(4),
        factor: 2.0,
        max_steps: 2,
        // Generous: the steps are meant to pass on a busy machine.
        slo: vec!["p99=2s".parse().unwrap()],
        error_budget: 0.5,
    };
    let mut progress = Progress::new(Vec::new());
    let result = sweep(&base, &cfg, &mut progress).unwrap();
    let agents: Vec<Option<usize>> = result.steps.iter().map(|s| s.agents).collect();
    assert_eq!(agents, vec![Some(4), Some(8)]);
    // 4 agents reporting every 100 ms offer 40 reports a second.
    assert_eq!(result.steps[0].rate, 40.0);
    assert_eq!(result.best_agents, Some(8.0), "{:?}", result.steps);
    let lines = String::from_utf8(progress.into_inner()).unwrap();
    assert!(
        lines.contains("step 1/2 at 40 msg/s (4 agents): starting"),
        "{lines}"
    );
    assert!(
        lines.contains("step 2/2 at 80 msg/s (8 agents): starting"),
        "{lines}"
    );
}
