//! The operator's commands (PAUSE with a duration, RESUME) and how they are typed.

use avp_proto::MAX_PAUSE_SECS;
use std::fmt;

/// An operator command, sent on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// PAUSE with DURATION in seconds.
    Pause(u64),
    /// RESUME.
    Resume,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Pause(s) => write!(f, "pause {s}"),
            Command::Resume => f.write_str("resume"),
        }
    }
}

/// Reads a pause length in seconds, 1..=[`MAX_PAUSE_SECS`].
pub fn parse_pause_secs(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(s) if (1..=MAX_PAUSE_SECS).contains(&s) => Ok(s),
        _ => Err(format!(
            "{:?}: a pause lasts 1 to {MAX_PAUSE_SECS} seconds",
            text.trim()
        )),
    }
}

/// Reads a command line: `pause SECONDS` or `resume`; `None` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let mut words = line.split_whitespace();
    let command = match (words.next(), words.next(), words.next()) {
        (None, _, _) => return Ok(None),
        (Some("pause"), Some(secs), None) => Command::Pause(parse_pause_secs(secs)?),
        (Some("resume"), None, _) => Command::Resume,
        _ => {
            return Err(format!(
                "{:?}: type `pause SECONDS` or `resume`",
                line.trim()
            ))
        }
    };
    Ok(Some(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(parse_line(" pause 12 "), Ok(Some(Command::Pause(12))));
        assert_eq!(parse_line("resume"), Ok(Some(Command::Resume)));
        assert_eq!(parse_line("   "), Ok(None));
        for bad in [
            "pause",
            "pause 0",
            "pause x",
            "pause 1 2",
            "resume now",
            "stop",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        assert!(parse_pause_secs(&(MAX_PAUSE_SECS + 1).to_string()).is_err());
    }
}
