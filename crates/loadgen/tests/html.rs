//! The HTML pages (run, sweep, compare, merge) load in headless Chromium with no console
//! message and no request for anything outside the page, and their plots are there and drawn.
//! Needs Debian's `chromium` (and `fonts-dejavu-core` for the plots); skipped without it.

mod common;

use common::{correct_answer, spawn_server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_avp-loadgen");

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn loadgen(args: &[&str], files: &[&Path]) {
    let out = Command::new(BIN).args(args).args(files).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The page's DOM after loading and the browser's log of it.
fn load(browser: &str, page: &Path, shot: &Path) -> (String, String) {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&dom.stderr);
    (String::from_utf8_lossy(&dom.stdout).into_owned(), log)
}

/// The inside of `<figure id="ID">`.
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<figure id=\"{id}\""))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let end = dom[start..].find("</figure>").unwrap() + start;
    &dom[start..end]
}

/// True when the figure holds an SVG with at least one line through two points or more.
fn drawn(fig: &str) -> bool {
    fig.contains("<svg")
        && fig.split("points=\"").skip(1).any(|p| {
            let pts = p.split('"').next().unwrap_or("");
            pts.split_whitespace().count() >= 2
        })
}

#[test]
fn pages_load_cleanly_in_chromium_with_their_plots_drawn() {
    let Some(browser) = chromium() else {
        avp_testkit::skip_without("chromium (apt-get install -y chromium)");
        return;
    };
    let addr = spawn_server(Arc::new(|_, m: &avp_proto::Message<'_>| {
        vec![correct_answer(m)]
    }));
    let target = format!("tcp://{addr}");
    let dir: PathBuf =
        std::env::temp_dir().join(format!("avp-loadgen-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = |name: &str| dir.join(name);
    let run = [
        "--target",
        &target,
        "--duration",
        "2s",
        "--warmup",
        "1s",
        "-q",
        "--json",
    ];
    loadgen(&run, &[&f("a.json"), Path::new("--html"), &f("run.html")]);
    loadgen(
        &[&run[..], &[]].concat(),
        &[&f("b.json"), Path::new("--pipeline"), Path::new("4")],
    );
    loadgen(
        &["compare"],
        &[
            &f("a.json"),
            &f("b.json"),
            Path::new("--html"),
            &f("compare.html"),
        ],
    );
    loadgen(
        &["merge"],
        &[
            &f("a.json"),
            &f("b.json"),
            Path::new("--html"),
            &f("merge.html"),
        ],
    );
    loadgen(
        &[
            "--target",
            &target,
            "--sweep",
            "--sweep-start",
            "200",
            "--sweep-steps",
            "2",
            "--slo",
            "p99=1s",
            "--duration",
            "1s",
            "-q",
            "--html",
        ],
        &[&f("sweep.html")],
    );
    let pages: [(&str, &[&str]); 4] = [
        ("run.html", &["percentiles", "timeline", "timeline-latency"]),
        (
            "compare.html",
            &["percentiles", "timeline", "timeline-latency"],
        ),
        (
            "merge.html",
            &["percentiles", "timeline", "timeline-latency"],
        ),
        (
            "sweep.html",
            &["sweep", "percentiles", "timeline", "timeline-latency"],
        ),
    ];
    for (page, figures) in pages {
        let html = std::fs::read_to_string(f(page)).unwrap();
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "{page} loads nothing"
        );
        assert!(
            !html.contains("https://"),
            "{page} names no network address"
        );
        let shot = f(&format!("{page}.png"));
        let (dom, log) = load(browser, &f(page), &shot);
        let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
        assert!(console.is_empty(), "{page}: {console:?}");
        assert!(dom.contains("<table id=\""), "{page}: {dom}");
        for id in figures {
            assert!(drawn(figure(&dom, id)), "{page}: figure {id} is empty");
        }
        let png = std::fs::read(&shot).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{page}: screenshot");
        assert!(
            png.len() > 20_000,
            "{page}: screenshot of {} bytes",
            png.len()
        );
    }
    let run_page = std::fs::read_to_string(f("run.html")).unwrap();
    assert!(run_page.contains("corrected (from the scheduled send)"));
    assert!(run_page.contains("uncorrected (from the actual send)"));
    let compare = std::fs::read_to_string(f("compare.html")).unwrap();
    assert!(
        compare.contains("<table id=\"differing\">")
            && compare.contains("<th class=\"k\">pipeline</th>"),
        "the differing parameter is listed"
    );
    let merge = std::fs::read_to_string(f("merge.html")).unwrap();
    assert!(merge.contains("<table id=\"inputs\">"));
    let sweep = std::fs::read_to_string(f("sweep.html")).unwrap();
    assert!(
        sweep.contains("SLO p99 &lt;= 1.000s") && sweep.contains("highest passing"),
        "SLO line and best step marked"
    );
    assert!(
        sweep.contains("seconds since the sweep started") && sweep.contains("a step starts"),
        "the steps' timeline, one after the other"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
