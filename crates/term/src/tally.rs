//! One command's outcome across the links it went to: each link's answer, each node's result,
//! and whether the command did what it was asked. Free of IO; the one-shot form and the screen
//! feed it updates.
//!
//! A node's result is the best any link gave: with two nodes that do not share a store, one
//! answers 200 for an agent connected to it while the other answers 404, and the agent was
//! reached. A link's own answer counts against the command only when the link sent no node's
//! result (the node refused the command itself: 400, 501, 503); otherwise the nodes' results
//! say what happened. A final 404 with no node's result means no node matched there.

use super::command::Command;
use super::links::{CommandId, Update, UpdateKind};
use avp_proto::result_code;
use std::collections::HashMap;
use std::fmt;

/// Where a command stands on one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Not sent yet (the link is not up); the last connection error, if any.
    Pending(Option<String>),
    /// Sent; waiting for the answer.
    Sent,
    /// The command's answer.
    Answered {
        /// RESULT_CODE.
        code: u16,
        /// INFO.
        info: String,
    },
    /// Not sent, or no answer will come.
    Failed(String),
}

/// One node's result of a targeted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOutcome {
    /// NODE_ID.
    pub node: String,
    /// RESULT_CODE.
    pub code: u16,
    /// INFO.
    pub info: String,
}

/// Why a command did not do everything it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The command, as typed.
    pub command: String,
    /// Nodes whose result was not 200.
    pub nodes_failed: usize,
    /// Nodes with a result.
    pub nodes: usize,
    /// Links that gave no usable answer.
    pub links_failed: usize,
    /// Links the command went to.
    pub links: usize,
    /// True when a targeted command reached no node.
    pub no_match: bool,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.command)?;
        let mut sep = "";
        if self.no_match {
            f.write_str(" no node matched, or the node does not relay commands")?;
            sep = ";";
        }
        if self.nodes_failed > 0 {
            write!(
                f,
                "{sep} {} of {} nodes did not answer 200",
                self.nodes_failed, self.nodes
            )?;
            sep = ";";
        }
        if self.links_failed > 0 {
            write!(
                f,
                "{sep} {} of {} links gave no answer 200",
                self.links_failed, self.links
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Shortfall {}

/// The outcome of one command. See the module documentation.
#[derive(Debug, Clone)]
pub struct Tally {
    id: CommandId,
    command: Command,
    links: Vec<LinkOutcome>,
    /// Links that sent at least one node's result.
    relayed: Vec<bool>,
    /// In the order the nodes first answered.
    nodes: Vec<NodeOutcome>,
    /// INVARIANT: `index[nodes[i].node] == i`.
    index: HashMap<String, usize>,
}

impl Tally {
    /// Command `id` going to `links` links, none sent yet.
    pub fn new(id: CommandId, command: Command, links: usize) -> Tally {
        Tally {
            id,
            command,
            links: vec![LinkOutcome::Pending(None); links],
            relayed: vec![false; links],
            nodes: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The command's id.
    pub fn id(&self) -> CommandId {
        self.id
    }

    /// The command.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// Records that the command went out on `link`.
    pub fn sent(&mut self, link: usize) {
        if let Some(o) = self.links.get_mut(link) {
            *o = LinkOutcome::Sent;
        }
    }

    /// Records why `link`, where the command waits to be sent, is not up yet.
    pub fn waiting(&mut self, link: usize, reason: String) {
        if let Some(o @ LinkOutcome::Pending(_)) = self.links.get_mut(link) {
            *o = LinkOutcome::Pending(Some(reason));
        }
    }

    /// Takes in `update` when it belongs to this command; returns true when it did.
    pub fn apply(&mut self, update: &Update) -> bool {
        let Some(outcome) = self.links.get_mut(update.link) else {
            return false;
        };
        match &update.kind {
            UpdateKind::NodeResult {
                command,
                node,
                code,
                info,
            } if *command == self.id => {
                self.relayed[update.link] = true;
                let result = NodeOutcome {
                    node: node.clone(),
                    code: *code,
                    info: info.clone(),
                };
                match self.index.get(node) {
                    Some(&i) if self.nodes[i].code != result_code::OK => self.nodes[i] = result,
                    Some(_) => {}
                    None => {
                        self.index.insert(node.clone(), self.nodes.len());
                        self.nodes.push(result);
                    }
                }
            }
            UpdateKind::Answer {
                command,
                code,
                info,
            } if *command == self.id => {
                *outcome = LinkOutcome::Answered {
                    code: *code,
                    info: info.clone(),
                }
            }
            UpdateKind::Failed { command, reason } if *command == self.id => {
                *outcome = LinkOutcome::Failed(reason.clone())
            }
            _ => return false,
        }
        true
    }

    /// Each link's outcome, in `--connect` order.
    pub fn links(&self) -> &[LinkOutcome] {
        &self.links
    }

    /// Each node's result, in the order the nodes first answered.
    pub fn nodes(&self) -> &[NodeOutcome] {
        &self.nodes
    }

    /// Nodes whose result is 200.
    pub fn nodes_ok(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.code == result_code::OK)
            .count()
    }

    /// True once every link answered or failed.
    pub fn is_done(&self) -> bool {
        self.links
            .iter()
            .all(|o| matches!(o, LinkOutcome::Answered { .. } | LinkOutcome::Failed(_)))
    }

    /// `Ok` when the command did everything it was asked (see the module documentation).
    pub fn verdict(&self) -> Result<(), Shortfall> {
        let targeted = self.command.target().is_some();
        let links_failed = self
            .links
            .iter()
            .zip(&self.relayed)
            .filter(|(o, relayed)| match o {
                LinkOutcome::Answered { code, .. } => {
                    !(*code == result_code::OK
                        || (targeted && (**relayed || *code == result_code::NOT_FOUND)))
                }
                _ => true,
            })
            .count();
        let nodes_failed = self.nodes.len() - self.nodes_ok();
        let no_match = targeted && self.nodes.is_empty();
        if links_failed == 0 && nodes_failed == 0 && !no_match {
            return Ok(());
        }
        Err(Shortfall {
            command: self.command.to_string(),
            nodes_failed,
            nodes: self.nodes.len(),
            links_failed,
            links: self.links.len(),
            no_match,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_line;

    fn tally(line: &str, links: usize) -> Tally {
        let mut t = Tally::new(CommandId(7), parse_line(line).unwrap().unwrap(), links);
        for l in 0..links {
            t.sent(l);
        }
        t
    }

    fn result(t: &mut Tally, link: usize, node: &str, code: u16) -> bool {
        t.apply(&Update {
            link,
            kind: UpdateKind::NodeResult {
                command: CommandId(7),
                node: node.into(),
                code,
                info: format!("{code} for {node}"),
            },
        })
    }

    fn answer(t: &mut Tally, link: usize, code: u16) {
        assert!(t.apply(&Update {
            link,
            kind: UpdateKind::Answer {
                command: CommandId(7),
                code,
                info: String::new(),
            },
        }));
    }

    #[test]
    fn every_node_answering_200_is_a_success() {
        let mut t = tally("pause --match lab-* 1m", 1);
        assert!(result(&mut t, 0, "lab-1", 200));
        assert!(result(&mut t, 0, "lab-2", 200));
        assert!(!t.is_done());
        answer(&mut t, 0, 200);
        assert!(t.is_done());
        assert_eq!(t.verdict(), Ok(()));
        assert_eq!(t.nodes_ok(), 2);
    }

    #[test]
    fn a_node_not_answering_200_fails_the_command() {
        let mut t = tally("pause --match lab-* 1m", 1);
        result(&mut t, 0, "lab-1", 200);
        result(&mut t, 0, "lab-2", 404);
        answer(&mut t, 0, 404);
        let e = t.verdict().unwrap_err();
        assert_eq!((e.nodes_failed, e.nodes, e.links_failed), (1, 2, 0));
        assert_eq!(
            e.to_string(),
            "pause --match lab-* 1m: 1 of 2 nodes did not answer 200"
        );
    }

    #[test]
    fn no_node_matched_is_a_failure() {
        let mut t = tally("resume --match none-*", 1);
        answer(&mut t, 0, 404);
        let e = t.verdict().unwrap_err();
        assert!(e.no_match, "{e:?}");
        assert!(e.to_string().contains("no node matched"), "{e}");
        // A node that does not relay answers 200 for its own pushes: nothing was reached.
        let mut t = tally("resume ws-1", 1);
        answer(&mut t, 0, 200);
        assert!(t.verdict().unwrap_err().no_match);
    }

    #[test]
    fn the_best_result_of_any_link_counts() {
        let mut t = tally("pause ws-1 1m", 2);
        result(&mut t, 0, "ws-1", 404);
        answer(&mut t, 0, 404);
        result(&mut t, 1, "ws-1", 200);
        answer(&mut t, 1, 200);
        assert_eq!(t.nodes().len(), 1);
        assert_eq!(t.nodes()[0].code, 200);
        assert_eq!(t.verdict(), Ok(()));
        // ... and a later failure does not undo a success.
        result(&mut t, 0, "ws-1", 504);
        assert_eq!(t.nodes()[0].code, 200);
    }

    #[test]
    fn a_link_without_an_answer_or_refusing_fails_the_command() {
        let mut t = tally("pause --all 1m", 2);
        result(&mut t, 0, "ws-1", 200);
        answer(&mut t, 0, 200);
        assert!(t.apply(&Update {
            link: 1,
            kind: UpdateKind::Failed {
                command: CommandId(7),
                reason: "not sent: not connected".into(),
            },
        }));
        assert!(t.is_done());
        let e = t.verdict().unwrap_err();
        assert_eq!(e.links_failed, 1);
        assert!(
            e.to_string().ends_with("1 of 2 links gave no answer 200"),
            "{e}"
        );
        let mut t = tally("pause --all 1m", 1);
        answer(&mut t, 0, 503);
        assert_eq!(t.verdict().unwrap_err().links_failed, 1);
    }

    #[test]
    fn a_freeze_needs_200_from_every_link() {
        let mut t = tally("freeze 30", 2);
        answer(&mut t, 0, 200);
        answer(&mut t, 1, 200);
        assert_eq!(t.verdict(), Ok(()));
        let mut t = tally("unfreeze", 1);
        answer(&mut t, 0, 400);
        assert_eq!(t.verdict().unwrap_err().links_failed, 1);
    }

    #[test]
    fn updates_of_other_commands_are_not_taken() {
        let mut t = tally("pause --all 1m", 1);
        let other = Update {
            link: 0,
            kind: UpdateKind::Answer {
                command: CommandId(8),
                code: 200,
                info: String::new(),
            },
        };
        assert!(!t.apply(&other));
        assert!(!t.apply(&Update {
            link: 0,
            kind: UpdateKind::Connected
        }));
        assert_eq!(t.links()[0], LinkOutcome::Sent);
    }
}
