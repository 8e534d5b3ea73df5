//! What a configuration reload changes: the settings that differ between what runs and what
//! was just read, which of them apply live, and what runs afterwards.

use crate::config::Setting;
use std::fmt;

/// One setting that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<'a> {
    /// The option's key.
    pub key: &'a str,
    /// Its value now.
    pub from: Shown<'a>,
    /// Its value as read.
    pub to: Shown<'a>,
    /// True when it applies without a restart.
    pub live: bool,
}

/// A setting's value as a log line shows it: secrets are not shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown<'a>(&'a Setting);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.value, self.0.secret) {
            (None, _) => f.write_str("(not set)"),
            (Some(_), true) => f.write_str("(secret)"),
            (Some(v), false) => write!(f, "{v}"),
        }
    }
}

impl fmt::Display for Change<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.from, self.to)?;
        if !self.live {
            f.write_str(" (takes effect at the next restart)")?;
        }
        Ok(())
    }
}

/// The settings of `read` that differ from `running`; those whose key is in `live` apply
/// without a restart.
pub fn changes<'a>(running: &'a [Setting], read: &'a [Setting], live: &[&str]) -> Vec<Change<'a>> {
    read.iter()
        .filter_map(|new| {
            let old = running.iter().find(|s| s.key == new.key)?;
            (old.value != new.value).then(|| Change {
                key: &new.key,
                from: Shown(old),
                to: Shown(new),
                live: live.contains(&new.key.as_str()),
            })
        })
        .collect()
}

/// What runs once the live settings of `read` are applied: those from `read`, every other
/// one from `running` (it still needs a restart, and the next reload says so again).
pub fn applied(running: &[Setting], read: &[Setting], live: &[&str]) -> Vec<Setting> {
    read.iter()
        .map(|new| match running.iter().find(|s| s.key == new.key) {
            Some(old) if !live.contains(&new.key.as_str()) => old.clone(),
            _ => new.clone(),
        })
        .collect()
}

/// Logs a reload's changes, one line each, or that nothing changed.
pub fn log(changes: &[Change<'_>], path: &std::path::Path) {
    if changes.is_empty() {
        tracing::info!("reloaded {}: nothing changed", path.display());
    }
    for change in changes {
        if change.live {
            tracing::info!("reloaded {}: {change}", path.display());
        } else {
            tracing::warn!("reloaded {}: {change}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: i64) -> Setting {
        Setting {
            key: key.into(),
            value: Some(toml::Value::Integer(value)),
            secret: false,
            default: false,
        }
    }

    #[test]
    fn live_changes_apply_and_the_others_wait_for_a_restart() {
        let running = [setting("a", 1), setting("b", 2), setting("c", 3)];
        let read = [setting("a", 10), setting("b", 20), setting("c", 3)];
        let found = changes(&running, &read, &["a"]);
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "a: 1 -> 10",
                "b: 2 -> 20 (takes effect at the next restart)"
            ]
        );
        let after = applied(&running, &read, &["a"]);
        assert_eq!(after, [setting("a", 10), setting("b", 2), setting("c", 3)]);
        assert_eq!(
            changes(&after, &read, &["a"]).len(),
            1,
            "b is still pending"
        );
    }

    #[test]
    fn secrets_are_not_shown() {
        let secret = |v: &str| Setting {
            key: "store-password".into(),
            value: Some(toml::Value::String(v.into())),
            secret: true,
            default: false,
        };
        let (old, new) = ([secret("old")], [secret("new")]);
        let shown = changes(&old, &new, &[])[0].to_string();
        assert!(!shown.contains("old") && !shown.contains("new"), "{shown}");
    }
}
