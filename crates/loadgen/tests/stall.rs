//! A target that stalls for one second must show a one-second corrected tail over real sockets.

mod common;

use avp_loadgen::run::run;
use avp_proto::Message;
use common::{config, correct_answer, spawn_server};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn one_second_stall_is_a_one_second_corrected_tail() {
    // The server holds its answer to request 200 for one second; everything behind it waits.
    let addr = spawn_server(Arc::new(|n, msg: &Message<'_>| {
        if n == 200 {
            std::thread::sleep(Duration::from_secs(1));
        }
        vec![correct_answer(msg)]
    }));
    let mut cfg = config(addr);
    cfg.rate = Some(500.0);
    cfg.pipeline = 1;
    cfg.duration = Duration::from_secs(3);
    let out = run(&cfg, &mut ()).unwrap();
    let s = &out.stats;
    assert_eq!(s.ok, 1_500, "{:?}", s.errors);
    let ms = |v: u64| v as f64 / 1e6;
    // Corrected: the requests due during the stall (~500 of 1,500, a third) waited up to 1 s.
    assert!(
        ms(s.corrected.max()) >= 990.0,
        "corrected max {}",
        ms(s.corrected.max())
    );
    assert!(ms(s.corrected.value_at_quantile(0.9)) >= 300.0);
    // Uncorrected: one request saw the stall, so its max is 1 s but its p90 does not move.
    assert!(ms(s.uncorrected.max()) >= 990.0);
    assert!(s.uncorrected.count_between(500_000_000, u64::MAX) <= 2);
}
