//! The keys of the full screen as the help overlay lists them (and docs/OPERATIONS.md
//! repeats them). What each key does is [`super::view::View::handle_key`]'s business.

/// The keys of the table and the detail view, and what they do.
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  k j", "move the cursor one row"),
    ("PgUp PgDn", "scroll one page"),
    ("Home End", "first or last row"),
    ("/", "filter by name: a substring, or a glob with * or ?"),
    ("n c m a", "sort by name, CPU, memory or age"),
    ("Enter", "the node's detail: CPU and memory charts"),
    (
        "p",
        "pause agents: this node, the filtered set or the fleet",
    ),
    ("r", "resume agents, chosen the same way"),
    ("l", "the last command's results"),
    (
        "f",
        "freeze the view (pause pushes to this terminal); again: unfreeze",
    ),
    ("?", "this help"),
    ("Esc", "close an overlay or a prompt; back from the detail"),
    ("q  Ctrl-C", "quit"),
];

/// The keys inside a prompt.
pub const PROMPT_KEYS: &str = "Tab ↑ ↓ choose · Ctrl-U clears · Enter sends · Esc cancels";
