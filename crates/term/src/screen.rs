//! The full-screen terminal (ratatui): the fleet table with its statuses, scrolling, filter and
//! sorts, a node's detail with charts, the pause and resume prompts and their results, and
//! the frozen view.
//!
//! `View` is the state and what each key does, `draw` draws it (both free of IO, tested
//! with ratatui's `TestBackend`); [`run`] is the loop that feeds the view updates and keys
//! and sends what it asks.

mod columns;
mod draw;
mod keys;
mod view;

pub use keys::{KEYS, PROMPT_KEYS};
use view::{Action, View};

use super::clock::{LocalTime, Now};
use super::links::LinkSet;
use crossterm::event::{self, Event, KeyEventKind};
use std::time::{Duration, Instant};

/// Longest wait for a key before the screen is redrawn with fresh updates.
const REDRAW: Duration = Duration::from_millis(250);
/// Most updates taken in between two draws, so that a flood of rows cannot stop the screen.
const UPDATES_PER_DRAW: usize = 200_000;

/// Runs the full-screen terminal until the operator quits.
pub fn run(links: &LinkSet) -> std::io::Result<()> {
    let local = LocalTime::system();
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> std::io::Result<()> {
        let mut view = View::new(links.endpoints(), Instant::now());
        loop {
            let now = Now::read();
            for update in links.updates.try_iter().take(UPDATES_PER_DRAW) {
                view.apply(update, now);
            }
            terminal.draw(|f| draw::render(&mut view, f, now, &local))?;
            if !event::poll(REDRAW)? {
                continue;
            }
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            match view.handle_key(key, Now::read()) {
                Action::None => {}
                Action::Send(command) => {
                    let id = links.commander().broadcast(&command);
                    view.sent(id, command);
                }
                Action::Quit => return Ok(()),
            }
        }
    })();
    ratatui::restore();
    result
}
