//! The full-screen `avpd term`, checked as a person would see it: run under tmux at 80x24 and
//! 160x40, typed at with `send-keys`, read with `tmux capture-pane -p`, against a node played
//! by the test. Needs tmux installed (CI installs it).

mod client_support;

use avp_proto::{Body, FleetState, NodeState};
use client_support::{unix_millis, FakeNode, Tmux};
use std::net::TcpListener;

/// A row's state as the node pushes it, received now.
fn state(state: NodeState, paused_until_ms: Option<u64>) -> FleetState {
    FleetState {
        state,
        received_ms: Some(unix_millis()),
        paused_until_ms,
    }
}

/// `ms` as HH:MM:SS in UTC+5:30 (the zone the terminal runs in below, `TZ=IST-5:30`).
fn india_hms(ms: u64) -> String {
    let secs = (ms / 1000 + 5 * 3600 + 30 * 60) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// True when a line of `screen` holds both `needle` and `part`.
fn line_has(screen: &str, needle: &str, part: &str) -> bool {
    screen
        .lines()
        .any(|l| l.contains(needle) && l.contains(part))
}

/// Starts the terminal under tmux (`width` x `height`, local time UTC+5:30) on a listener of
/// its own; returns the node's side of its connection.
fn start(width: u16, height: u16) -> (Tmux, TcpListener, FakeNode, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let tmux = Tmux::start_sized(
        &format!(
            "env TZ=IST-5:30 {} term --connect {url}",
            env!("CARGO_BIN_EXE_avpd")
        ),
        width,
        height,
    );
    let node = FakeNode::accept(&l);
    (tmux, l, node, url)
}

#[test]
fn the_full_screen_at_80x24() {
    let (tmux, _l, mut node, url) = start(80, 24);
    let long = "lab-3-workstation-0017.example.org";
    let paused_until = unix_millis() + 90_000;
    node.push(long, 99, 10, state(NodeState::Ok, None));
    for i in 0..60u8 {
        let fleet = match i {
            7 => state(NodeState::Stale, None),
            8 => state(NodeState::Paused, Some(paused_until)),
            9 => state(NodeState::ClockSkew, None),
            _ => state(NodeState::Ok, None),
        };
        node.push(&format!("ws-{i:02}"), i, 60 - i, fleet);
    }
    // The screen is read while it may be half drawn: every check is part of a wait.
    tmux.wait_screen("every row counted, the link, a long name whole", |s| {
        s.contains("61 nodes · 1 stale · 1 paused · 1 clock skew · sort cpu")
            && s.contains(&format!("link {url} connected"))
            && line_has(s, long, " 99% ")
            && line_has(s, long, " 10% ")
    });

    // Sorted by name, the states show in the STATUS column, in local time.
    tmux.keys(&["n"]);
    let paused = format!("paused until {}", india_hms(paused_until));
    tmux.wait_screen("name order with every status", |s| {
        s.contains("sort name")
            && s.lines()
                .any(|l| l.starts_with("ws-00 ") && l.trim_end().ends_with(" ok"))
            && line_has(s, "ws-07", "stale")
            && line_has(s, "ws-08", &paused)
            && line_has(s, "ws-09", "clock skew")
            && s.contains("ws-18")
            && !s.contains("ws-19")
    });

    // Scrolling.
    tmux.keys(&["End"]);
    tmux.wait_screen("the last row", |s| s.contains("ws-59") && !s.contains(long));
    tmux.keys(&["Home"]);
    tmux.wait_screen("the first row", |s| {
        s.contains(long) && !s.contains("ws-59")
    });
    tmux.keys(&["PgDn"]);
    tmux.wait_screen("the next page", |s| {
        s.contains("ws-19") && !s.contains(long)
    });
    tmux.keys(&["Home", "j", "j", "Enter"]);
    tmux.wait_screen("the detail of the third row", |s| {
        s.contains("ws-01 · ok · cpu 1% · mem 59%")
            && s.contains("CPU % (last 5m)")
            && s.contains("memory % (last 5m)")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the table again", |s| {
        s.contains("NODE") && !s.contains("CPU %")
    });
    tmux.keys(&["k", "Enter"]);
    tmux.wait_screen("the detail of the row above", |s| {
        s.contains("ws-00 · ok · cpu 0% · mem 60%")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the table again", |s| {
        s.contains("NODE") && !s.contains("CPU %")
    });

    // Help, closed by Esc, which does not quit.
    tmux.keys(&["?"]);
    tmux.wait_screen("the help", |s| {
        s.contains("keys (Esc closes)") && s.contains("freeze the view")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the help closed", |s| {
        !s.contains("keys (Esc closes)") && s.contains("61 nodes · 1 stale")
    });

    // A glob filter, and a pause of the filtered set with a result per node.
    tmux.keys(&["/", "ws-1*", "Enter"]);
    tmux.wait_screen("the filter", |s| {
        s.contains("filter ws-1* (10 shown)") && s.contains("ws-19") && !s.contains(long)
    });
    tmux.keys(&["p"]);
    tmux.wait_screen("the pause prompt", |s| {
        s.contains("▸ this node: ws-1") && s.contains("the filtered set: ws-1* (10 nodes)")
    });
    tmux.keys(&["Tab", "5m", "Enter"]);
    let pause = node.command();
    assert_eq!(
        pause.body,
        Body::Pause {
            target: Some("ws-1*".into()),
            duration_secs: 300
        }
    );
    node.answer(
        &pause,
        &[
            ("ws-10", 200, "paused for 300 s"),
            ("ws-11", 404, "not connected to any collector"),
        ],
        404,
        "paused 1 of 2 nodes",
    );
    tmux.wait_screen("each node's result", |s| {
        s.contains("ws-11: 404 not connected to any collector")
            && s.contains("ws-10: 200 paused for 300 s")
            && s.contains("done: pause --match ws-1* 5m: 1 of 2 nodes did not answer 200")
    });
    tmux.keys(&["Escape"]);
    let until = unix_millis() + 300_000;
    node.push("ws-10", 10, 50, state(NodeState::Paused, Some(until)));
    node.push("ws-12", 12, 48, state(NodeState::Removed, None));
    let paused = format!("paused until {}", india_hms(until));
    tmux.wait_screen("the pause shown and a row removed", |s| {
        s.contains("60 nodes · 1 stale · 2 paused")
            && s.contains("(9 shown)")
            && line_has(s, "ws-10", &paused)
            && s.contains("ws-19")
            && !s.contains("ws-12")
    });

    // A duration that does not parse is said so.
    tmux.keys(&["p", "5x", "Enter"]);
    tmux.wait_screen("the duration refused", |s| s.contains("unknown unit \"x\""));
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the prompt closed", |s| !s.contains("pause agents"));

    // Freezing the view is PAUSE without TARGET.
    tmux.keys(&["f", "30", "Enter"]);
    let freeze = node.command();
    assert_eq!(
        freeze.body,
        Body::Pause {
            target: None,
            duration_secs: 30
        }
    );
    node.answer(&freeze, &[], 200, "paused for 30 s");
    tmux.wait_screen("the frozen view", |s| {
        s.contains("FROZEN 30s left") || s.contains("FROZEN 29s left")
    });
    tmux.keys(&["f"]);
    assert_eq!(node.command().body, Body::Resume { target: None });

    tmux.keys(&["q"]);
    tmux.wait_screen("the shell after quitting", |s| !s.contains("nodes · "));
}

#[test]
fn the_full_screen_at_160x40_and_a_lost_link() {
    let (tmux, l, mut node, url) = start(160, 40);
    let names = [
        "rack-12-blade-07-workstation.example.org",
        "rack-12-blade-08-workstation.example.org",
    ];
    node.push(names[0], 50, 25, state(NodeState::Ok, None));
    node.push(names[1], 40, 75, state(NodeState::Ok, None));
    let half = format!("{}{}", "█".repeat(10), "░".repeat(10));
    tmux.wait_screen("both rows, busiest first, with 20-cell bars", |s| {
        line_has(s, names[0], &half) && s.contains(names[1]) && s.find(names[0]) < s.find(names[1])
    });

    // Resume the node under the cursor: its exact id.
    tmux.keys(&["r"]);
    tmux.wait_screen("the resume prompt", |s| {
        s.contains(&format!("▸ this node: {}", names[0]))
    });
    tmux.keys(&["Enter"]);
    let resume = node.command();
    assert_eq!(
        resume.body,
        Body::Resume {
            target: Some(names[0].into())
        }
    );
    node.answer(
        &resume,
        &[(names[0], 200, "resumed")],
        200,
        "resumed 1 of 1 nodes",
    );
    tmux.wait_screen("the result", |s| {
        s.contains(&format!("{}: 200 resumed", names[0]))
            && s.contains("done: 1 of 1 nodes answered 200")
    });
    tmux.keys(&["Escape"]);

    // The link's state is shown apart from the nodes'; a reconnection brings the rows again.
    let addr = l.local_addr().unwrap();
    drop((node, l));
    tmux.wait_screen("the lost link, the rows kept", |s| {
        s.contains("reconnecting in") && line_has(s, names[0], " ok")
    });
    let l = TcpListener::bind(addr).unwrap();
    let mut node = FakeNode::accept(&l);
    tmux.wait_screen("the link back, its rows to come", |s| {
        s.contains(&format!("link {url} connected")) && s.contains("0 nodes")
    });
    node.push(names[1], 40, 75, state(NodeState::Stale, None));
    tmux.wait_screen("the row again", |s| {
        s.contains("1 nodes · 1 stale") && line_has(s, names[1], "stale")
    });
}

#[test]
fn the_full_screen_at_160x40_scrolls_filters_helps_and_pauses_the_fleet() {
    let (tmux, _l, mut node, _url) = start(160, 40);
    for i in 0..80u8 {
        let name = format!("rack-{:02}-blade-{:02}.example.org", i / 10, i % 10);
        node.push(&name, i, 80 - i, state(NodeState::Ok, None));
    }
    tmux.wait_screen("every row counted, the busiest first", |s| {
        s.contains("80 nodes · 0 stale") && line_has(s, "rack-07-blade-09", " 79% ")
    });
    tmux.keys(&["n"]);
    tmux.wait_screen("name order, one screen of rows", |s| {
        s.contains("sort name")
            && s.contains("rack-00-blade-00")
            && s.contains("rack-02-blade-09")
            && !s.contains("rack-07-blade-09")
    });
    tmux.keys(&["End"]);
    tmux.wait_screen("the last row", |s| {
        s.contains("rack-07-blade-09") && !s.contains("rack-00-blade-00")
    });
    tmux.keys(&["Home", "PgDn"]);
    tmux.wait_screen("the next page, not one more row", |s| {
        s.contains("rack-07-blade-00") && !s.contains("rack-00-")
    });
    tmux.keys(&["Home"]);

    // A substring filter, then the detail of its second row, with both charts.
    tmux.keys(&["/", "blade-07", "Enter"]);
    tmux.wait_screen("the filter", |s| {
        s.contains("filter blade-07 (8 shown)")
            && s.contains("rack-07-blade-07")
            && !s.contains("rack-00-blade-00")
    });
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_screen("the detail", |s| {
        s.contains("rack-01-blade-07.example.org · ok · cpu 17% · mem 63%")
            && s.contains("CPU % (last 5m)")
            && s.contains("memory % (last 5m)")
    });
    tmux.keys(&["Escape"]);
    tmux.keys(&["/", "C-u", "Enter"]);
    tmux.wait_screen("the filter cleared", |s| {
        s.contains("rack-00-blade-00") && !s.contains("filter blade-07")
    });

    // Help lists every key, Esc closes it.
    tmux.keys(&["?"]);
    tmux.wait_screen("the help", |s| {
        s.contains("keys (Esc closes)") && s.contains("pause agents")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the help closed", |s| {
        !s.contains("keys (Esc closes)") && s.contains("80 nodes")
    });

    // Pause the whole fleet for an hour and a half.
    tmux.keys(&["p"]);
    tmux.wait_screen("the pause prompt", |s| {
        s.contains("▸ this node: rack-00-blade-00.example.org")
            && s.contains("the whole fleet: * (80 nodes)")
    });
    tmux.keys(&["Tab", "1h30m", "Enter"]);
    let pause = node.command();
    assert_eq!(
        pause.body,
        Body::Pause {
            target: Some("*".into()),
            duration_secs: 5400
        }
    );
    let names: Vec<String> = (0..80u8)
        .map(|i| format!("rack-{:02}-blade-{:02}.example.org", i / 10, i % 10))
        .collect();
    let results: Vec<(&str, u16, &str)> = names
        .iter()
        .map(|n| (n.as_str(), 200, "paused for 5400 s"))
        .collect();
    node.answer(&pause, &results, 200, "paused 80 of 80 nodes");
    tmux.wait_screen("the fleet's result", |s| {
        s.contains("done: 80 of 80 nodes answered 200")
    });
    tmux.keys(&["Escape", "q"]);
    tmux.wait_screen("the shell after quitting", |s| !s.contains("nodes · "));
}

#[test]
fn every_key_is_documented() {
    let docs = include_str!("../docs/OPERATIONS.md");
    let start = docs
        .find("## Using the terminal")
        .expect("the terminal's section");
    let section = &docs[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    for (keys, what) in avpd_term::screen::KEYS {
        for key in keys.split_whitespace() {
            assert!(
                section.contains(&format!("`{key}`")),
                "{key} ({what}) is not documented"
            );
        }
    }
}
