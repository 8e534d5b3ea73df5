//! The live view: a full-screen picture of the run while it goes (ratatui), when stdout is a
//! terminal. It shows the current and overall rate, answered/sent, errors, p50/p99/p99.9 of
//! the last second and of the run so far, the latency distribution and a throughput sparkline.
//! `q` (or Esc, or Ctrl-C) stops the run early; every report is still written.
//!
//! [`LiveView`] is an [`Observer`]: the runner draws a frame at each second (and at each sweep
//! step). Keys are read on a thread of its own, which only sets the run's [`Stop`] flag.
//! [`State`] holds what is shown and [`draw`] draws it, so both are testable without a
//! terminal.

use crate::observe::Observer;
use crate::report::{fmt_latency, group};
use crate::run::Stop;
use crate::stats::{new_histogram, ErrorCounts};
use crate::sweep::{Step, StepPlan};
use crate::timeline::{Second, Tail};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use hdrhistogram::Histogram;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph, Sparkline};
use ratatui::{DefaultTerminal, Frame};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Seconds of throughput the sparkline keeps.
const HISTORY: usize = 600;
/// Upper bounds of the latency histogram's bars, nanoseconds (the last bar takes the rest).
const BUCKETS: [(u64, &str); 12] = [
    (10_000, "10us"),
    (20_000, "20us"),
    (50_000, "50us"),
    (100_000, "100us"),
    (200_000, "200us"),
    (500_000, "500us"),
    (1_000_000, "1ms"),
    (5_000_000, "5ms"),
    (20_000_000, "20ms"),
    (100_000_000, "100ms"),
    (1_000_000_000, "1s"),
    (u64::MAX, ">1s"),
];

/// What the live view shows.
#[derive(Debug)]
pub struct State {
    /// The heading: what is being tested.
    pub title: String,
    /// The sweep step under way, if any.
    pub step: Option<StepPlan>,
    /// The last second.
    pub last: Option<Second>,
    /// Correct answers per second, oldest first.
    pub rates: Vec<u64>,
    /// Totals over the run's seconds after the warmup: sent, answered, correct.
    pub totals: (u64, u64, u64),
    /// Seconds after the warmup counted in `totals`.
    pub measured_s: f64,
    /// Errors over the run so far, warmup included.
    pub errors: ErrorCounts,
    /// Corrected latencies of the answers after the warmup.
    pub overall: Histogram<u64>,
    /// True once `q` was pressed.
    pub stopping: bool,
}

impl State {
    /// A view of nothing yet, headed `title`.
    pub fn new(title: String) -> Self {
        State {
            title,
            step: None,
            last: None,
            rates: Vec::new(),
            totals: (0, 0, 0),
            measured_s: 0.0,
            errors: ErrorCounts::default(),
            overall: new_histogram(),
            stopping: false,
        }
    }

    /// Takes in one second of the run.
    pub fn add(&mut self, s: &Second, latency: &Histogram<u64>) {
        self.rates.push(s.ok_rate() as u64);
        if self.rates.len() > HISTORY {
            self.rates.remove(0);
        }
        self.errors.add(&s.counts.errors);
        if !s.warmup {
            let c = &s.counts;
            self.totals.0 += c.sent;
            self.totals.1 += c.answered;
            self.totals.2 += c.ok;
            self.measured_s += s.span_s;
            // Same bounds: both are the loadgen's histograms.
            let _ = self.overall.add(latency);
        }
        self.last = Some(s.clone());
    }

    /// A new sweep step: the run so far starts again.
    pub fn start_step(&mut self, plan: &StepPlan) {
        let title = std::mem::take(&mut self.title);
        *self = State::new(title);
        self.step = Some(*plan);
    }
}

/// Draws `state` into `frame`.
pub fn draw(frame: &mut Frame<'_>, state: &State) {
    let [head, figures, hist, spark] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(7),
        Constraint::Min(7),
        Constraint::Length(7),
    ])
    .areas(frame.area());
    draw_head(frame, head, state);
    draw_figures(frame, figures, state);
    draw_histogram(frame, hist, state);
    let rates = &state.rates[state.rates.len().saturating_sub(usize::from(spark.width))..];
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(" correct answers per second "))
            .style(Style::default().fg(Color::Green))
            .data(rates),
        spark,
    );
}

fn draw_head(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let t = state.last.as_ref().map_or(0.0, |s| s.t_s);
    let mut spans = vec![
        Span::styled(
            state.title.clone(),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  ·  {t:.0}s")),
    ];
    if let Some(p) = &state.step {
        spans.push(Span::raw(format!(
            "  ·  {}",
            crate::progress::step_label(p)
        )));
    }
    if state.last.as_ref().is_some_and(|s| s.warmup) {
        spans.push(Span::styled(
            "  ·  warmup",
            Style::default().fg(Color::Yellow),
        ));
    }
    let keys = if state.stopping {
        "stopping: waiting for the outstanding answers, then writing every report"
    } else {
        "q: stop now and write every report"
    };
    let text = vec![Line::from(spans), Line::from(keys)];
    frame.render_widget(Paragraph::new(text).block(Block::bordered()), area);
}

fn draw_figures(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let now = state.last.as_ref();
    let (sent, answered, ok) = state.totals;
    let per_s = |n: u64| n as f64 / state.measured_s.max(1e-9);
    let q = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |us| fmt_latency((us * 1e3) as u64));
    let overall = Tail::of(&state.overall);
    let errors: Vec<String> = state
        .errors
        .rows()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {}", group(*n as f64)))
        .collect();
    let lines = vec![
        Line::from(format!(
            "rate now     {:>12} msg/s   overall {:>12} msg/s   connections {}",
            group(now.map_or(0.0, Second::ok_rate)),
            group(per_s(ok)),
            group(now.map_or(0.0, |s| s.counts.connections as f64)),
        )),
        Line::from(format!(
            "answered     {:>12} of {} sent ({:.3}%), {} correct",
            group(answered as f64),
            group(sent as f64),
            100.0 * answered as f64 / sent.max(1) as f64,
            group(ok as f64),
        )),
        Line::from(format!(
            "latency now  p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}",
            q(now.and_then(|s| s.tail.p50_us)),
            q(now.and_then(|s| s.tail.p99_us)),
            q(now.and_then(|s| s.tail.p99_9_us)),
            q(now.and_then(|s| s.tail.max_us)),
        )),
        Line::from(format!(
            "overall      p50 {:>9}  p99 {:>9}  p99.9 {:>9}  max {:>9}   (corrected)",
            q(overall.p50_us),
            q(overall.p99_us),
            q(overall.p99_9_us),
            q(overall.max_us),
        )),
        Line::from(if errors.is_empty() {
            "errors       none".to_string()
        } else {
            format!("errors       {}", errors.join(", "))
        }),
    ];
    frame.render_widget(Paragraph::new(lines).block(Block::bordered()), area);
}

fn draw_histogram(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let mut below = 0;
    let bars: Vec<Bar<'_>> = BUCKETS
        .iter()
        .map(|(upper, label)| {
            let upto = if *upper == u64::MAX {
                state.overall.len()
            } else {
                state.overall.count_between(0, *upper)
            };
            let n = upto.saturating_sub(below);
            below = upto;
            Bar::default()
                .value(n)
                .label(Line::from(*label))
                .text_value(String::new())
        })
        .collect();
    frame.render_widget(
        BarChart::default()
            .block(Block::bordered().title(" corrected latency, answers so far "))
            .bar_width(5)
            .bar_gap(1)
            .data(BarGroup::default().bars(&bars)),
        area,
    );
}

/// The live view on the terminal.
pub struct LiveView {
    terminal: DefaultTerminal,
    state: State,
    stop: Stop,
    done: Arc<AtomicBool>,
    keys: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView")
            .field("state", &self.state)
            .finish()
    }
}

impl LiveView {
    /// Takes over the terminal (alternate screen, raw mode) and starts reading keys; `q`
    /// sets `stop`.
    pub fn start(stop: Stop, title: String) -> io::Result<Self> {
        let mut terminal = ratatui::try_init()?;
        let state = State::new(title);
        terminal.draw(|f| draw(f, &state))?;
        let done = Arc::new(AtomicBool::new(false));
        let keys = {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::Builder::new()
                .name("loadgen-keys".into())
                .spawn(move || read_keys(&stop, &done))?
        };
        Ok(LiveView {
            terminal,
            state,
            stop,
            done,
            keys: Some(keys),
        })
    }

    fn redraw(&mut self) {
        self.state.stopping = self.stop.is_stopped();
        let state = &self.state;
        // A frame that cannot be drawn is skipped; the next second draws again.
        let _ = self.terminal.draw(|f| draw(f, state));
    }

    /// Gives the terminal back as it was.
    pub fn finish(mut self) -> io::Result<()> {
        self.close()
    }

    fn close(&mut self) -> io::Result<()> {
        self.done.store(true, Ordering::Relaxed);
        if let Some(keys) = self.keys.take() {
            let _ = keys.join();
            ratatui::try_restore()?;
        }
        Ok(())
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Observer for LiveView {
    fn on_step_start(&mut self, plan: &StepPlan) {
        self.state.start_step(plan);
        self.redraw();
    }

    fn on_second(&mut self, second: &Second, latency: &Histogram<u64>) {
        self.state.add(second, latency);
        self.redraw();
    }

    fn on_step_end(&mut self, _step: &Step) {
        self.redraw();
    }
}

/// Reads keys until `done`: `q`, Esc or Ctrl-C stop the run.
fn read_keys(stop: &Stop, done: &AtomicBool) {
    while !done.load(Ordering::Relaxed) {
        // Polling with a timeout lets the thread see `done`.
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let Ok(Event::Key(key)) = event::read() else {
            continue;
        };
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        let quit = matches!(key.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) || ctrl_c;
        if key.kind == KeyEventKind::Press && quit {
            stop.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Counts;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn second(t: f64, ok: u64, warmup: bool, latency_ns: u64) -> (Second, Histogram<u64>) {
        let mut h = new_histogram();
        h.record_n(latency_ns, ok).unwrap();
        let counts = Counts {
            sent: ok,
            answered: ok,
            ok,
            connections: 10,
            ..Counts::default()
        };
        (Second::new(t, 1.0, warmup, counts, &h), h)
    }

    fn screen(state: &State) -> String {
        let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
        term.draw(|f| draw(f, state)).unwrap();
        let buf = term.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_view_shows_the_rates_the_answers_and_both_sets_of_percentiles() {
        let mut state = State::new("avp-loadgen → tcp://127.0.0.1:7700".into());
        let (w, wh) = second(1.0, 5, true, 900_000);
        state.add(&w, &wh);
        let (a, ah) = second(2.0, 3_000, false, 40_000);
        state.add(&a, &ah);
        let (b, bh) = second(3.0, 1_000, false, 2_000_000);
        state.add(&b, &bh);
        let text = screen(&state);
        assert!(
            text.contains("avp-loadgen → tcp://127.0.0.1:7700"),
            "{text}"
        );
        assert!(
            text.contains("rate now            1,000 msg/s   overall        2,000 msg/s"),
            "{text}"
        );
        assert!(
            text.contains("answered            4,000 of 4,000 sent (100.000%)"),
            "{text}"
        );
        // Now: the last second only (2 ms); overall: both measured seconds, not the warmup.
        assert!(text.contains("latency now  p50   2.001ms"), "{text}");
        assert!(text.contains("overall      p50    40.0us"), "{text}");
        assert!(text.contains("q: stop now"), "{text}");
        assert!(
            text.contains("50us") && text.contains(">1s"),
            "histogram labels: {text}"
        );
        state.stopping = true;
        assert!(screen(&state).contains("stopping: waiting"));
        state.start_step(&StepPlan {
            number: 2,
            of: 30,
            rate: 1_500.0,
            agents: None,
        });
        let text = screen(&state);
        assert!(text.contains("step 2/30 at 1,500 msg/s"), "{text}");
        assert!(
            text.contains("answered                0 of 0 sent"),
            "{text}"
        );
    }
}
