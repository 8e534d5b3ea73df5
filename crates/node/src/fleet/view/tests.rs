//! The fleet view's rules on a fake clock: stale after three intervals (or 10 s, or the rule
//! given), removal after the TTL and the tombstone's purge, a skewed clock that cannot pin a
//! row, the bound on rows, pauses, and the change log terminals read.

use super::*;

const T0: u64 = 1_700_000_000_000;

fn report(node: &str, cpu: u8, received_ms: u64) -> NodeReport {
    NodeReport {
        node: node.into(),
        cpu_percent: cpu,
        mem_percent: 50,
        timestamp_ms: received_ms,
        received_ms,
        collector: None,
    }
}

fn state(view: &FleetView, node: &str) -> Option<NodeState> {
    view.get(node).map(|r| r.fleet.state)
}

fn changed(view: &FleetView, after: u64) -> Vec<(String, NodeState)> {
    view.changes(after, view.head())
        .map(|(_, r)| (r.node.to_string(), r.fleet.state))
        .collect()
}

#[test]
fn a_node_is_stale_after_three_of_its_intervals_or_ten_seconds_before_one_is_known() {
    let mut view = FleetView::new(FleetRules::default());
    view.apply([report("once", 1, T0)]);
    view.tick(T0 + 9_999);
    assert_eq!(state(&view, "once"), Some(NodeState::Ok));
    view.tick(T0 + 10_000);
    assert_eq!(state(&view, "once"), Some(NodeState::Stale));

    view.apply([report("every-2s", 1, T0), report("every-2s", 2, T0 + 2_000)]);
    view.tick(T0 + 2_000 + 5_999);
    assert_eq!(state(&view, "every-2s"), Some(NodeState::Ok));
    view.tick(T0 + 2_000 + 6_000);
    assert_eq!(state(&view, "every-2s"), Some(NodeState::Stale));
    // A report brings it back.
    view.apply([report("every-2s", 3, T0 + 9_000)]);
    assert_eq!(state(&view, "every-2s"), Some(NodeState::Ok));
}

#[test]
fn a_stale_after_rule_applies_to_every_node() {
    let mut view = FleetView::new(FleetRules {
        stale_after: Some(Duration::from_secs(30)),
        ..FleetRules::default()
    });
    view.apply([report("n", 1, T0), report("n", 1, T0 + 1_000)]);
    view.tick(T0 + 1_000 + 29_999);
    assert_eq!(state(&view, "n"), Some(NodeState::Ok));
    view.tick(T0 + 1_000 + 30_000);
    assert_eq!(state(&view, "n"), Some(NodeState::Stale));
}

#[test]
fn a_silent_node_is_removed_after_the_ttl_and_purged_once_pushed() {
    let mut view = FleetView::new(FleetRules {
        node_ttl: Duration::from_secs(60),
        ..FleetRules::default()
    });
    view.apply([report("gone", 1, T0), report("here", 1, T0)]);
    let before = view.head();
    view.tick(T0 + 59_999);
    view.apply([report("here", 2, T0 + 59_999)]);
    view.tick(T0 + 60_000);
    assert_eq!(state(&view, "gone"), None, "removed rows are not shown");
    assert_eq!(view.len(), 1);
    // The removal is a change terminals get.
    let changes = changed(&view, before);
    assert!(
        changes.contains(&("gone".into(), NodeState::Removed)),
        "{changes:?}"
    );
    assert!(view.matching("*").iter().all(|n| &**n != "gone"));
    view.purge(view.head());
    assert!(changed(&view, 0).iter().all(|(n, _)| n != "gone"));
    // It may come back.
    view.apply([report("gone", 7, T0 + 70_000)]);
    assert_eq!(state(&view, "gone"), Some(NodeState::Ok));
    assert_eq!(view.len(), 2);
}

#[test]
fn a_far_future_timestamp_is_flagged_and_cannot_pin_the_row() {
    let mut view = FleetView::new(FleetRules::default());
    let mut future = report("skewed", 1, T0);
    future.timestamp_ms = T0 + 3_600_000;
    view.apply([future]);
    assert_eq!(state(&view, "skewed"), Some(NodeState::ClockSkew));
    // A later report with a true clock replaces it: ordering is by receive time.
    view.apply([report("skewed", 9, T0 + 1_000)]);
    let row = view.get("skewed").unwrap();
    assert_eq!((row.cpu_percent, row.fleet.state), (9, NodeState::Ok));
    // An older one (received before) does not.
    view.apply([report("skewed", 4, T0 + 500)]);
    assert_eq!(view.get("skewed").unwrap().cpu_percent, 9);
}

#[test]
fn the_view_is_bounded_and_counts_what_it_refused() {
    let mut view = FleetView::new(FleetRules {
        max_nodes: 2,
        ..FleetRules::default()
    });
    view.apply([report("a", 1, T0), report("b", 1, T0), report("c", 1, T0)]);
    assert_eq!((view.len(), view.refused()), (2, 1));
    view.apply([report("a", 2, T0 + 1)]);
    assert_eq!(
        view.get("a").unwrap().cpu_percent,
        2,
        "known nodes still update"
    );
}

#[test]
fn new_rules_apply_to_the_rows_already_held() {
    let mut view = FleetView::new(FleetRules::default());
    view.apply([report("a", 1, T0), report("b", 1, T0 + 5_000)]);
    view.set_rules(FleetRules {
        node_ttl: Duration::from_secs(8),
        max_nodes: 1,
        ..FleetRules::default()
    });
    view.tick(T0 + 8_000);
    assert_eq!(state(&view, "a"), None, "the shorter TTL removed it");
    assert_eq!(state(&view, "b"), Some(NodeState::Ok));
    view.apply([report("c", 1, T0 + 8_000)]);
    assert_eq!(
        (view.len(), view.refused()),
        (1, 1),
        "the lower bound refuses"
    );
}

#[test]
fn a_paused_node_shows_paused_until_its_pause_ends_then_ages_from_there() {
    let mut view = FleetView::new(FleetRules::default());
    view.apply([report("p", 1, T0), report("p", 1, T0 + 1_000)]);
    view.set_paused("p", Some(T0 + 100_000), T0 + 1_000);
    let row = view.get("p").unwrap();
    assert_eq!(row.fleet.state, NodeState::Paused);
    assert_eq!(row.fleet.paused_until_ms, Some(T0 + 100_000));
    view.tick(T0 + 99_999);
    assert_eq!(
        state(&view, "p"),
        Some(NodeState::Paused),
        "silent but paused"
    );
    view.tick(T0 + 100_000);
    let row = view.get("p").unwrap();
    assert_eq!(
        (row.fleet.state, row.fleet.paused_until_ms),
        (NodeState::Ok, None)
    );
    view.tick(T0 + 100_000 + 3_000);
    assert_eq!(
        state(&view, "p"),
        Some(NodeState::Stale),
        "three intervals after the pause"
    );
    // Resumed early: ok again at once.
    view.set_paused("p", Some(T0 + 500_000), T0 + 200_000);
    view.set_paused("p", None, T0 + 200_500);
    assert_eq!(state(&view, "p"), Some(NodeState::Ok));
}

#[test]
fn changes_list_each_row_once_in_the_order_of_its_last_change() {
    let mut view = FleetView::new(FleetRules::default());
    view.apply([report("a", 1, T0), report("b", 1, T0), report("c", 1, T0)]);
    let seen = view.head();
    view.apply([
        report("a", 2, T0 + 1),
        report("c", 2, T0 + 1),
        report("a", 3, T0 + 2),
    ]);
    let after: Vec<(String, u8)> = view
        .changes(seen, view.head())
        .map(|(_, r)| (r.node.to_string(), r.cpu_percent))
        .collect();
    assert_eq!(after, [("c".to_string(), 2), ("a".to_string(), 3)]);
    // A terminal that connects now gets every row once.
    assert_eq!(changed(&view, 0).len(), 3);
    // Reading part of the changes and going on from there misses nothing.
    let upto = view.changes(0, view.head()).next().unwrap().0;
    let rest: Vec<_> = changed(&view, upto);
    assert_eq!(rest.len(), 2);
}

#[test]
fn targets_are_the_nodes_a_glob_matches() {
    let mut view = FleetView::new(FleetRules::default());
    view.apply(["lab-3-1", "lab-3-2", "lab-4-1"].map(|n| report(n, 1, T0)));
    let names = |p| {
        view.matching(p)
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("lab-3-*"), ["lab-3-1", "lab-3-2"]);
    assert_eq!(names("*").len(), 3);
    assert_eq!(names("lab-4-1"), ["lab-4-1"]);
    assert!(names("nope").is_empty());
}
