//! The screen's name filter: a substring, or a glob when it holds `*` or `?`; and the TARGET
//! that names the same set of nodes, so that pausing "the filtered set" pauses what is shown.
//!
//! Matching is case-sensitive, as the node's matching of a TARGET is.

use super::command::{CommandError, Target};

/// A filter on NODE_IDs; the empty filter lets every node through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter(String);

impl Filter {
    /// The filter typed as `text`.
    pub fn new(text: &str) -> Filter {
        Filter(text.to_string())
    }

    /// What was typed.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// True for the empty filter.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the text is a glob (holds `*` or `?`).
    pub fn is_glob(&self) -> bool {
        self.0.contains(['*', '?'])
    }

    /// True when `node` passes.
    pub fn matches(&self, node: &str) -> bool {
        if self.is_glob() {
            avp_units::glob(&self.0, node)
        } else {
            node.contains(&self.0)
        }
    }

    /// The target naming exactly the nodes that pass: the glob itself, or `*TEXT*` for a
    /// substring, or the whole fleet for the empty filter.
    pub fn target(&self) -> Result<Target, CommandError> {
        if self.is_empty() {
            Ok(Target::All)
        } else if self.is_glob() {
            Target::matching(&self.0)
        } else {
            Target::matching(&format!("*{}*", self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substring_or_glob() {
        let names = ["lab-3-1", "lab-3-17", "lab-4-3", "ws-3"];
        let pass =
            |f: &Filter| -> Vec<&str> { names.iter().copied().filter(|n| f.matches(n)).collect() };
        assert_eq!(pass(&Filter::new("")), names);
        assert_eq!(
            pass(&Filter::new("-3")),
            ["lab-3-1", "lab-3-17", "lab-4-3", "ws-3"]
        );
        assert_eq!(pass(&Filter::new("lab-3-*")), ["lab-3-1", "lab-3-17"]);
        assert_eq!(pass(&Filter::new("lab-?-3")), ["lab-4-3"]);
        assert_eq!(pass(&Filter::new("LAB")), Vec::<&str>::new(), "case counts");
    }

    #[test]
    fn the_target_names_the_same_nodes() {
        let names = ["lab-3-1", "lab-3-17", "lab-4-3", "ws-3", "x"];
        for text in ["", "-3", "lab-3-*", "lab-?-3", "3"] {
            let f = Filter::new(text);
            let target = f.target().unwrap();
            for n in names {
                assert_eq!(
                    avp_units::glob(target.glob(), n),
                    f.matches(n),
                    "{text} {n}"
                );
            }
        }
        assert_eq!(Filter::new("").target(), Ok(Target::All));
        assert_eq!(
            Filter::new(&"x".repeat(254)).target(),
            Err(CommandError::TargetLength(256))
        );
    }
}
