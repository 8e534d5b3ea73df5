use super::*;
use crate::command::{Command, Target};
use crate::links::{CommandId, Update, UpdateKind};
use avp_endpoint::Endpoint;
use avp_proto::{FleetState, Report};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::Instant;

fn text(view: &mut View, width: u16, height: u16, now: Now) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
    t.draw(|f| render(view, f, now, &LocalTime::utc())).unwrap();
    let buf = t.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn view(links: usize) -> View {
    let eps: Vec<Endpoint> = (0..links)
        .map(|i| format!("tcp://127.0.0.1:{}", 7701 + i).parse().unwrap())
        .collect();
    View::new(&eps, Instant::now())
}

fn push(v: &mut View, node: &str, cpu: u8, state: NodeState, now: Now) {
    let report = Report {
        fleet: Some(FleetState {
            state,
            received_ms: Some(now.wall_ms - 400),
            paused_until_ms: (state == NodeState::Paused).then_some(90_000),
        }),
        cpu_percent: cpu,
        mem_percent: 50,
        timestamp_ms: None,
        node_id: Some(node.to_string().into()),
        instance: None,
    };
    v.apply(
        Update {
            link: 0,
            kind: UpdateKind::Row(report),
        },
        now,
    );
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall_ms: 10_000,
    }
}

fn key(v: &mut View, code: KeyCode) {
    v.handle_key(KeyEvent::new(code, KeyModifiers::NONE), now());
}

fn line_with<'a>(screen: &'a str, needle: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{screen}"))
}

#[test]
fn counts_statuses_and_the_link_at_80x24() {
    let mut v = view(1);
    let t = now();
    push(&mut v, "web-1", 42, NodeState::Ok, t);
    push(&mut v, "db-7", 87, NodeState::Stale, t);
    push(&mut v, "ws-17", 5, NodeState::Paused, t);
    push(&mut v, "far-future", 1, NodeState::ClockSkew, t);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("4 nodes · 1 stale · 1 paused · 1 clock skew · sort cpu"),
        "{screen}"
    );
    assert!(
        screen.contains("link tcp://127.0.0.1:7701 connecting"),
        "{screen}"
    );
    let row = line_with(&screen, "web-1");
    assert!(row.contains(" 42%") && row.contains(" 50%"), "{row}");
    assert!(
        row.contains("0.4s") && row.ends_with("ok") || row.contains(" ok "),
        "{row}"
    );
    assert!(line_with(&screen, "db-7").contains("stale"));
    assert!(line_with(&screen, "ws-17").contains("paused until 00:01:30"));
    assert!(line_with(&screen, "far-future").contains("clock skew"));
    assert!(screen.contains(HINTS), "{screen}");
    let order: Vec<usize> = ["db-7", "web-1", "ws-17", "far-future"]
        .iter()
        .map(|n| screen.find(n).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "busiest first");

    v.apply(
        Update {
            link: 0,
            kind: UpdateKind::Connected,
        },
        t,
    );
    push(&mut v, "web-1", 42, NodeState::Ok, t);
    push(&mut v, "web-1", 42, NodeState::Removed, t);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("link tcp://127.0.0.1:7701 connected"),
        "{screen}"
    );
    assert!(!screen.contains("web-1"), "a removed row goes:\n{screen}");
    assert!(screen.contains("0 nodes"), "{screen}");
}

#[test]
fn names_get_their_room_and_the_bars_shrink() {
    let name = "lab-3-workstation-0017.example.org";
    let mut v = view(1);
    let t = now();
    push(&mut v, name, 50, NodeState::Paused, t);
    let narrow = text(&mut v, 80, 24, t);
    let row = line_with(&narrow, name);
    assert!(row.contains("paused until"), "{row}");
    let wide = text(&mut v, 160, 40, t);
    let row = line_with(&wide, name);
    assert!(
        row.contains(&format!("{}{}", "█".repeat(10), "░".repeat(10))),
        "{row}"
    );
    let mut v = view(1);
    push(
        &mut v,
        &format!("{name}-and-a-long-tail-17"),
        50,
        NodeState::Ok,
        t,
    );
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("lab-3-workstation-00…-and-a-long-tail-17 "),
        "cut in the middle at the cap:\n{screen}"
    );
}

#[test]
fn several_links_are_numbered() {
    let mut v = view(2);
    let t = now();
    push(&mut v, "web-1", 42, NodeState::Ok, t);
    v.apply(
        Update {
            link: 1,
            kind: UpdateKind::Down {
                reason: "connection refused".into(),
                retry_at: t.mono + Duration::from_secs(4),
            },
        },
        t,
    );
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("link 1 tcp://127.0.0.1:7701 connecting"),
        "{screen}"
    );
    assert!(
        screen.contains("link 2 tcp://127.0.0.1:7702 reconnecting in 4 s (connection refused)"),
        "{screen}"
    );
    assert!(line_with(&screen, "NODE").contains("VIA"), "{screen}");
    assert!(
        line_with(&screen, "web-1").trim_end().ends_with('1'),
        "{screen}"
    );
}

#[test]
fn the_page_follows_the_cursor() {
    let mut v = view(1);
    let t = now();
    for i in 0..60 {
        push(&mut v, &format!("ws-{i:02}"), 1, NodeState::Ok, t);
    }
    key(&mut v, KeyCode::Char('n'));
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("ws-00") && screen.contains("ws-19"),
        "{screen}"
    );
    assert!(!screen.contains("ws-20"), "20 rows at 80x24:\n{screen}");
    key(&mut v, KeyCode::End);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("ws-59") && !screen.contains("ws-39"),
        "{screen}"
    );
    key(&mut v, KeyCode::PageUp);
    key(&mut v, KeyCode::PageUp);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("ws-19") && !screen.contains("ws-59"),
        "{screen}"
    );
    key(&mut v, KeyCode::Char('/'));
    for c in "ws-4?".chars() {
        key(&mut v, KeyCode::Char(c));
    }
    let screen = text(&mut v, 80, 24, t);
    assert!(screen.contains("filter ws-4? (10 shown)"), "{screen}");
    assert!(screen.contains("/ws-4?_"), "{screen}");
    assert!(!screen.contains("ws-39"), "{screen}");
}

#[test]
fn help_lists_every_key() {
    let mut v = view(1);
    key(&mut v, KeyCode::Char('?'));
    let screen = text(&mut v, 80, 24, now());
    for (keys, what) in KEYS {
        assert!(
            screen.contains(&format!("{keys:<11} {what}")),
            "{keys}:\n{screen}"
        );
    }
    assert!(screen.contains(PROMPT_KEYS), "{screen}");
}

#[test]
fn the_detail_shows_charts_of_the_pushes() {
    let mut v = view(1);
    let started = v.fleet.started();
    for i in 0..40u32 {
        let t = Now {
            mono: started + SLOT * i,
            wall_ms: 10_000 + u64::from(i) * 2_000,
        };
        push(&mut v, "ws-17", (i * 2) as u8, NodeState::Ok, t);
    }
    let t = Now {
        mono: started + SLOT * 40,
        wall_ms: 90_000,
    };
    key(&mut v, KeyCode::Enter);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("ws-17 · ok · cpu 78% · mem 50%"),
        "{screen}"
    );
    assert!(screen.contains("40 samples over the last 5m"), "{screen}");
    assert!(screen.contains("CPU % (last 5m)") && screen.contains("memory % (last 5m)"));
    assert!(screen.contains("-5m") && screen.contains("-2m30s") && screen.contains("now"));
    let braille = screen
        .chars()
        .filter(|c| ('\u{2801}'..='\u{28ff}').contains(c))
        .count();
    assert!(braille > 20, "the lines are drawn:\n{screen}");
    key(&mut v, KeyCode::Esc);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("NODE") && !screen.contains("CPU %"),
        "{screen}"
    );
}

#[test]
fn prompts_and_results() {
    let mut v = view(1);
    let t = now();
    push(&mut v, "ws-17", 1, NodeState::Ok, t);
    push(&mut v, "ws-9", 1, NodeState::Ok, t);
    key(&mut v, KeyCode::Char('p'));
    for c in "90".chars() {
        key(&mut v, KeyCode::Char(c));
    }
    let screen = text(&mut v, 80, 24, t);
    assert!(screen.contains("▸ this node: ws-17"), "{screen}");
    assert!(screen.contains("the whole fleet: * (2 nodes)"), "{screen}");
    assert!(
        screen.contains("For how long (90, 90s, 5m, 1h)? 90_"),
        "{screen}"
    );
    key(&mut v, KeyCode::Char('x'));
    key(&mut v, KeyCode::Enter);
    let screen = text(&mut v, 80, 24, t);
    assert!(screen.contains("expected a duration"), "{screen}");

    v.overlay = Overlay::None;
    v.sent(
        CommandId(1),
        Command::Pause {
            target: Target::All,
            secs: 90,
        },
    );
    let result = |node: &str, code, info: &str| Update {
        link: 0,
        kind: UpdateKind::NodeResult {
            command: CommandId(1),
            node: node.into(),
            code,
            info: info.into(),
        },
    };
    v.apply(result("ws-17", 200, "paused for 90 s"), t);
    v.apply(result("ws-9", 404, "not connected to any collector"), t);
    let screen = text(&mut v, 80, 24, t);
    assert!(
        screen.contains("pause --all 1m30s · Esc closes"),
        "{screen}"
    );
    assert!(screen.contains("1 of 2 nodes answered 200 so far; waiting for 1 link(s)"));
    let failure = screen
        .find("ws-9: 404 not connected to any collector")
        .unwrap();
    let success = screen.find("ws-17: 200 paused for 90 s").unwrap();
    assert!(failure < success, "failures first:\n{screen}");
    assert!(screen.contains("ws-9: 404 not connected to any collector"));
    v.apply(
        Update {
            link: 0,
            kind: UpdateKind::Answer {
                command: CommandId(1),
                code: 404,
                info: "paused 1 of 2 nodes".into(),
            },
        },
        t,
    );
    let screen = text(&mut v, 80, 24, t);
    assert!(screen.contains("done: pause --all 1m30s: 1 of 2 nodes did not answer 200"));
    assert!(screen.contains("answer of tcp://127.0.0.1:7701: 404 paused 1 of 2 nodes"));
}

#[test]
fn freeze_shows_in_the_header() {
    let mut v = view(1);
    let t = now();
    v.sent(CommandId(1), Command::Freeze { secs: 42 });
    v.apply(
        Update {
            link: 0,
            kind: UpdateKind::Answer {
                command: CommandId(1),
                code: 200,
                info: "paused for 42 s".into(),
            },
        },
        t,
    );
    let screen = text(&mut v, 80, 24, t);
    assert!(screen.contains("FROZEN 42s left"), "{screen}");
    assert!(screen.contains("freeze 42s: answered 200"), "{screen}");
}

#[test]
fn escaped_names_cannot_forge_the_screen() {
    let mut v = view(1);
    let t = now();
    push(&mut v, "evil\x1b[2J", 1, NodeState::Ok, t);
    let screen = text(&mut v, 80, 24, t);
    assert!(screen.contains("evil\\u{1b}[2J"), "{screen}");
}

#[test]
fn fitting_ages_and_bars() {
    assert_eq!(fit("short", 10), "short");
    assert_eq!(fit("abcdefghij", 5), "ab…ij");
    assert_eq!(fit("abcdefghij", 6), "abc…ij");
    assert_eq!(
        fit("日本語のノード", 7),
        "日…ド",
        "wide characters count twice"
    );
    assert_eq!(fit("x", 0), "");
    assert_eq!(format_age(Duration::from_millis(400)), "0.4s");
    assert_eq!(format_age(Duration::from_secs(12)), "12s");
    assert_eq!(format_age(Duration::from_secs(300)), "5m");
    assert_eq!(format_age(Duration::from_secs(3 * 3_600)), "3h");
    assert_eq!(format_age(Duration::from_secs(3 * 86_400)), "3d");
    assert_eq!(bar(0, 8), "░".repeat(8));
    assert_eq!(bar(100, 8), "█".repeat(8));
    assert_eq!(bar(50, 4), "██░░");
}
