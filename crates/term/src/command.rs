//! The operator's commands, how they are written (a plain terminal's stdin and the one-shot
//! command line read the same words, [`parse_words`]) and what each one sends.
//!
//! `pause` and `resume` are for agents: they carry TARGET, a glob over NODE_IDs, and the node
//! relays them. `freeze` and `unfreeze` are for the pushes to this terminal itself: PAUSE and
//! RESUME without TARGET.

use avp_proto::peer::Request;
use avp_proto::MAX_PAUSE_SECS;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Every form of a command, for error messages and `--help`.
pub const USAGE: &str = "\
pause NODE DURATION | pause --match GLOB DURATION | pause --all DURATION
resume NODE | resume --match GLOB | resume --all
freeze DURATION | unfreeze   (the pushes to this terminal; not one-shot)
DURATION: 90, 90s, 5m, 1h30m (whole seconds, 1s to 7d); GLOB: * any run, ? any one character";

/// Longest TARGET the protocol carries, in bytes.
const MAX_TARGET_LEN: usize = 255;

/// Why a command could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// A pause length that is not a duration of whole seconds in range (the text says why).
    Duration(String),
    /// A NODE_ID holding `*` or `?`, which a TARGET cannot name exactly.
    Metacharacter(String),
    /// A node name or glob outside 1..=255 bytes.
    TargetLength(usize),
    /// Words that are no command.
    Syntax(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Duration(e) => f.write_str(e),
            CommandError::Metacharacter(node) => write!(
                f,
                "{:?} holds * or ?, which a target cannot name exactly (a target is a glob \
                 without escapes): pause it with --match or a filter",
                avp_units::printable(node)
            ),
            CommandError::TargetLength(len) => {
                write!(f, "a target is 1 to {MAX_TARGET_LEN} bytes, not {len}")
            }
            CommandError::Syntax(words) => {
                write!(f, "{words:?} is no command; the commands are:\n{USAGE}")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// The nodes a `pause` or `resume` is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One node, by its exact NODE_ID (which holds no `*` or `?`).
    Node(String),
    /// The nodes whose NODE_ID matches a glob.
    Match(String),
    /// The whole fleet.
    All,
}

impl Target {
    /// One node; refused when its id holds `*` or `?` or is not 1..=255 bytes.
    pub fn node(id: &str) -> Result<Target, CommandError> {
        check_length(id)?;
        if id.contains(['*', '?']) {
            return Err(CommandError::Metacharacter(id.to_string()));
        }
        Ok(Target::Node(id.to_string()))
    }

    /// The nodes matching `glob`; refused when it is not 1..=255 bytes.
    pub fn matching(glob: &str) -> Result<Target, CommandError> {
        check_length(glob)?;
        Ok(Target::Match(glob.to_string()))
    }

    /// The TARGET sent: the node's id, the glob, or `*`.
    pub fn glob(&self) -> &str {
        match self {
            Target::Node(id) => id,
            Target::Match(glob) => glob,
            Target::All => "*",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(id) => f.write_str(&avp_units::printable(id)),
            Target::Match(glob) => write!(f, "--match {}", avp_units::printable(glob)),
            Target::All => f.write_str("--all"),
        }
    }
}

fn check_length(text: &str) -> Result<(), CommandError> {
    if (1..=MAX_TARGET_LEN).contains(&text.len()) {
        Ok(())
    } else {
        Err(CommandError::TargetLength(text.len()))
    }
}

/// An operator command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Stop the agents of `target` sampling and reporting for `secs` seconds.
    Pause {
        /// Which agents.
        target: Target,
        /// For how long, 1..=[`MAX_PAUSE_SECS`].
        secs: u64,
    },
    /// Let the agents of `target` report again.
    Resume {
        /// Which agents.
        target: Target,
    },
    /// Stop the pushes to this terminal for `secs` seconds (PAUSE without TARGET).
    Freeze {
        /// For how long, 1..=[`MAX_PAUSE_SECS`].
        secs: u64,
    },
    /// Let the pushes to this terminal go on (RESUME without TARGET).
    Unfreeze,
}

impl Command {
    /// The nodes it is for; `None` for the terminal's own pushes.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Command::Pause { target, .. } | Command::Resume { target } => Some(target),
            Command::Freeze { .. } | Command::Unfreeze => None,
        }
    }

    /// The request that carries it.
    pub fn request(&self) -> Request<'static> {
        let target = self.target().map(|t| Cow::Owned(t.glob().to_string()));
        match *self {
            Command::Pause { secs, .. } | Command::Freeze { secs } => Request::Pause {
                duration_secs: secs,
                target,
            },
            Command::Resume { .. } | Command::Unfreeze => Request::Resume { target },
        }
    }
}

/// Written as it is typed (and read back by [`parse_words`]): `pause ws-17 1m30s`,
/// `resume --match lab-3-*`, `freeze 30s`.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let length = |secs: u64| avp_units::format_duration(Duration::from_secs(secs));
        match self {
            Command::Pause { target, secs } => write!(f, "pause {target} {}", length(*secs)),
            Command::Resume { target } => write!(f, "resume {target}"),
            Command::Freeze { secs } => write!(f, "freeze {}", length(*secs)),
            Command::Unfreeze => f.write_str("unfreeze"),
        }
    }
}

/// Reads a pause length in the duration syntax of every option (`200`, `90s`, `5m`,
/// `1h30m`), and returns it in seconds: whole seconds, 1 s to [`MAX_PAUSE_SECS`].
pub fn parse_pause(text: &str) -> Result<u64, CommandError> {
    let d = avp_units::parse_duration(text).map_err(|e| CommandError::Duration(e.to_string()))?;
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && (1..=MAX_PAUSE_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(CommandError::Duration(format!(
            "{:?}: a pause lasts whole seconds, 1s to {}",
            text.trim(),
            avp_units::format_duration(Duration::from_secs(MAX_PAUSE_SECS))
        )))
    }
}

/// Reads a command from its words (see [`USAGE`]).
pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Command, CommandError> {
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    let syntax = || CommandError::Syntax(words.join(" "));
    let target = |scope: &[&str]| match scope {
        ["--all"] => Ok(Target::All),
        ["--match", glob] => Target::matching(glob),
        [node] if !node.starts_with("--") => Target::node(node),
        _ => Err(syntax()),
    };
    match words.as_slice() {
        ["pause", scope @ .., length] if !scope.is_empty() => Ok(Command::Pause {
            target: target(scope)?,
            secs: parse_pause(length)?,
        }),
        ["resume", scope @ ..] => Ok(Command::Resume {
            target: target(scope)?,
        }),
        ["freeze", length] => Ok(Command::Freeze {
            secs: parse_pause(length)?,
        }),
        ["unfreeze"] => Ok(Command::Unfreeze),
        _ => Err(syntax()),
    }
}

/// Reads a command line (a plain terminal's stdin); `None` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Command>, CommandError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return Ok(None);
    }
    parse_words(&words).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Target {
        Target::node(id).unwrap()
    }

    #[test]
    fn every_form_reads_and_writes_back() {
        let cases = [
            (
                "pause ws-17 200",
                Command::Pause {
                    target: node("ws-17"),
                    secs: 200,
                },
            ),
            (
                "pause --match lab-3-* 10m",
                Command::Pause {
                    target: Target::matching("lab-3-*").unwrap(),
                    secs: 600,
                },
            ),
            (
                " pause --all 60 ",
                Command::Pause {
                    target: Target::All,
                    secs: 60,
                },
            ),
            (
                "resume ws-17",
                Command::Resume {
                    target: node("ws-17"),
                },
            ),
            (
                "resume --match lab-?",
                Command::Resume {
                    target: Target::matching("lab-?").unwrap(),
                },
            ),
            (
                "resume --all",
                Command::Resume {
                    target: Target::All,
                },
            ),
            ("freeze 1h30m", Command::Freeze { secs: 5_400 }),
            ("unfreeze", Command::Unfreeze),
        ];
        for (line, want) in cases {
            let got = parse_line(line).unwrap().unwrap();
            assert_eq!(got, want, "{line}");
            assert_eq!(
                parse_line(&got.to_string()).unwrap(),
                Some(want),
                "{got} reads back"
            );
        }
        assert_eq!(parse_line("   "), Ok(None));
    }

    #[test]
    fn what_each_command_sends() {
        let sent = |line: &str| parse_line(line).unwrap().unwrap().request();
        assert_eq!(
            sent("pause ws-17 90s"),
            Request::Pause {
                duration_secs: 90,
                target: Some("ws-17".into())
            }
        );
        assert_eq!(
            sent("resume --all"),
            Request::Resume {
                target: Some("*".into())
            }
        );
        assert_eq!(
            sent("freeze 5"),
            Request::Pause {
                duration_secs: 5,
                target: None
            }
        );
        assert_eq!(sent("unfreeze"), Request::Resume { target: None });
    }

    #[test]
    fn bad_commands_say_why() {
        for bad in [
            "pause",
            "pause 60",
            "pause ws-17",
            "pause --all",
            "pause --match 60",
            "pause --bogus 60",
            "pause a b 60",
            "resume",
            "resume --match",
            "freeze",
            "unfreeze now",
            "stop",
        ] {
            let e = parse_line(bad).unwrap_err();
            assert!(matches!(e, CommandError::Syntax(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("pause --match GLOB DURATION"), "{e}");
        }
        let e = parse_line("pause ws*1 60").unwrap_err();
        assert_eq!(e, CommandError::Metacharacter("ws*1".into()));
        assert!(e.to_string().contains("holds * or ?"), "{e}");
        assert!(matches!(
            parse_line("resume w?").unwrap_err(),
            CommandError::Metacharacter(_)
        ));
        let long = "x".repeat(256);
        assert_eq!(
            parse_line(&format!("resume {long}")).unwrap_err(),
            CommandError::TargetLength(256)
        );
        assert!(matches!(
            parse_line("pause ws-17 5x").unwrap_err(),
            CommandError::Duration(_)
        ));
    }

    #[test]
    fn pause_lengths_are_durations_in_whole_seconds() {
        assert_eq!(parse_pause("200"), Ok(200));
        assert_eq!(parse_pause("5m"), Ok(300));
        assert_eq!(parse_pause("7d"), Ok(MAX_PAUSE_SECS));
        let syntax = parse_pause("5x").unwrap_err();
        assert_eq!(
            syntax.to_string(),
            avp_units::parse_duration("5x").unwrap_err().to_string()
        );
        for bad in ["0", "1500ms", "7d1s"] {
            let e = parse_pause(bad).unwrap_err().to_string();
            assert!(e.contains("whole seconds, 1s to 7d"), "{bad}: {e}");
        }
    }
}
