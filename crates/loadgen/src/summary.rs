//! What a run measured and what the figure means, in one plain sentence, and the command to
//! run next for a real capacity test.

use crate::report::{fmt_latency, group, RunReport};
use crate::table::fmt_secs;

/// One sentence: what was measured and what it means.
pub fn sentence(r: &RunReport) -> String {
    let p = &r.params;
    if let Some(why) = &r.no_answer {
        return format!("Nothing was answered, so there is no latency to report: {why}.");
    }
    let (who, who_first) = match p.embedded_node_workers {
        Some(1) => (
            "one avpd node worker in this process",
            "One avpd node worker in this process",
        ),
        Some(_) => (
            "the avpd node in this process",
            "The avpd node in this process",
        ),
        None => ("the target", "The target"),
    };
    let p99 = fmt_latency((r.latency.corrected.p99_us * 1e3) as u64);
    let every = fmt_secs(p.interval_s);
    match (p.agents, p.rate) {
        (Some(n), _) => format!(
            "{} simulated agents each reported every {every}: {who} answered {} reports per second, \
             {:.3}% before the agent's next report was due, with a corrected p99 of {p99}; \
             {}.",
            group(n as f64),
            group(r.throughput),
            r.on_time.unwrap_or(0.0) * 100.0,
            fleet_verdict(r)
        ),
        (None, Some(rate)) => format!(
            "At an offered {} messages per second over {} connections, {who} answered {} per \
             second with a corrected p99 of {p99}: the load of {} agents reporting every {every}.",
            group(rate),
            group(p.connections as f64),
            group(r.throughput),
            group(r.capacity_agents)
        ),
        (None, None) => format!(
            "{who_first} answered {} reports per second from {} connections, {} outstanding each, \
             with a p99 of {p99}: the most it answers at that concurrency on this machine (the load \
             of {} agents reporting every {every}), not yet a capacity at a latency objective.",
            group(r.throughput),
            group(p.connections as f64),
            p.pipeline,
            group(r.capacity_agents)
        ),
    }
}

/// The next command for a real capacity test, after a closed-loop run: a sweep to a latency
/// objective, or a fleet of agents; `None` after a sweep-worthy run already.
pub fn next_command(r: &RunReport) -> Option<String> {
    let p = &r.params;
    if p.rate.is_some() || r.no_answer.is_some() || r.merged.is_some() {
        return None;
    }
    let target = match p.embedded_node_workers {
        Some(_) => "--embedded".to_string(),
        None => format!("--target {}", p.target),
    };
    let agents = (r.capacity_agents / 10.0).round().max(100.0);
    Some(format!(
        "Next, find the highest rate that keeps p99 under 5 ms:\n  \
         avp-loadgen {target} --sweep --slo p99=5ms --connections 100 --pipeline 16 --warmup 1s --duration 5s --html sweep.html\n\
         or see whether a fleet of agents reporting every second fits:\n  \
         avp-loadgen {target} --agents {} --interval 1s --connect-rate 2000 --warmup 5s --duration 30s --html fleet.html",
        agents as u64
    ))
}

/// Whether the whole fleet got through, and if not what stopped it.
fn fleet_verdict(r: &RunReport) -> String {
    let e = &r.errors;
    if e.connect_failures > 0 {
        format!(
            "not every agent got in: {} connection attempts failed{}",
            group(e.connect_failures as f64),
            r.connect_error
                .as_ref()
                .map_or(String::new(), |why| format!(" ({why})"))
        )
    } else if e.failed_requests() > 0 || e.disconnects > 0 || r.ok < r.sent {
        "that fleet does not fit: see the errors".into()
    } else if let Some(late) = r.on_time.map(|share| 1.0 - share).filter(|&l| l > 0.0) {
        format!(
            "that fleet is not on schedule: {:.3}% of the answers came after the agent's next \
             report was due",
            late * 100.0
        )
    } else {
        "that fleet fits at this latency".into()
    }
}
