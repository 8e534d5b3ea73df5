//! The operator's commands (PAUSE with a duration, RESUME) and how they are typed.

use avp_proto::MAX_PAUSE_SECS;
use std::fmt;
use std::time::Duration;

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

/// Reads a pause length in the duration syntax of every option (`200`, `90s`, `5m`,
/// `1h30m`), and returns it in seconds: whole seconds, 1 s to [`MAX_PAUSE_SECS`].
pub fn parse_pause(text: &str) -> Result<u64, String> {
    let d = avp_units::parse_duration(text).map_err(|e| e.to_string())?;
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && (1..=MAX_PAUSE_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{:?}: a pause lasts whole seconds, 1s to {}",
            text.trim(),
            avp_units::format_duration(Duration::from_secs(MAX_PAUSE_SECS))
        ))
    }
}

/// Reads a command line: `pause DURATION` or `resume`; `None` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<Command>, String> {
    let mut words = line.split_whitespace();
    let command = match (words.next(), words.next(), words.next()) {
        (None, _, _) => return Ok(None),
        (Some("pause"), Some(length), None) => Command::Pause(parse_pause(length)?),
        (Some("resume"), None, _) => Command::Resume,
        _ => {
            return Err(format!(
                "{:?}: type `pause DURATION` (e.g. pause 90s) or `resume`",
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
        assert_eq!(parse_line("pause 1h30m"), Ok(Some(Command::Pause(5_400))));
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
    }

    #[test]
    fn pause_lengths_are_durations_in_whole_seconds() {
        assert_eq!(parse_pause("200"), Ok(200));
        assert_eq!(parse_pause("5m"), Ok(300));
        assert_eq!(parse_pause("7d"), Ok(MAX_PAUSE_SECS));
        let syntax = parse_pause("5x").unwrap_err();
        assert_eq!(
            syntax,
            avp_units::parse_duration("5x").unwrap_err().to_string()
        );
        for bad in ["0", "1500ms", "7d1s"] {
            let e = parse_pause(bad).unwrap_err();
            assert!(e.contains("whole seconds, 1s to 7d"), "{bad}: {e}");
        }
    }
}
