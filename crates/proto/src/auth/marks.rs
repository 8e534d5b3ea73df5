//! The replay rule's memory: per node, the highest SEQUENCE accepted from each of its latest
//! INSTANCEs.

/// Instances remembered per node: an agent draws a new one on every start without a spool,
/// so the oldest are forgotten.
pub const INSTANCES_PER_NODE: usize = 4;

/// One node's replay marks: the highest SEQUENCE accepted per INSTANCE, for the replay rule,
/// for at most [`INSTANCES_PER_NODE`] instances. Only authenticated reports reach them.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    /// The node's instances, the most recently advanced first.
    seen: Vec<Mark>,
}

/// One instance's place in its node's [`Marks`].
#[derive(Debug, Clone, Copy)]
struct Mark {
    instance: Option<u64>,
    /// The highest SEQUENCE accepted.
    highest: u64,
    /// What [`Marks::withdraw`] of `highest` does.
    undo: Undo,
}

/// How an instance's highest SEQUENCE is taken back.
#[derive(Debug, Clone, Copy)]
enum Undo {
    /// It is the instance's first: the instance is forgotten.
    Forget,
    /// The highest goes back to this SEQUENCE, the one accepted before it.
    Back(u64),
    /// Not at all: the highest was withdrawn to already, and the SEQUENCE before it is not
    /// kept. It stays accepted, so that what came before it cannot be replayed.
    Keep,
}

impl Marks {
    /// Records `sequence` for `instance`; true when it is above every SEQUENCE recorded for
    /// it (or the first one), false for a replay, which changes nothing.
    pub fn advance(&mut self, instance: Option<u64>, sequence: u64) -> bool {
        let seen = &mut self.seen;
        match seen.iter().position(|m| m.instance == instance) {
            Some(p) if seen[p].highest >= sequence => false,
            Some(p) => {
                seen[p].undo = Undo::Back(seen[p].highest);
                seen[p].highest = sequence;
                seen[..=p].rotate_right(1);
                true
            }
            None => {
                seen.truncate(INSTANCES_PER_NODE - 1);
                let first = Mark {
                    instance,
                    highest: sequence,
                    undo: Undo::Forget,
                };
                seen.insert(0, first);
                true
            }
        }
    }

    /// Takes back `sequence`, the last SEQUENCE recorded for `instance`: the instance's
    /// highest goes back to the one before it (or the instance is forgotten when it was its
    /// first). Does nothing when a higher SEQUENCE was recorded since, nor when `sequence` is
    /// the one a withdrawal went back to (two reports of one instance refused on two
    /// connections), whose predecessor is not kept.
    pub fn withdraw(&mut self, instance: Option<u64>, sequence: u64) {
        let seen = &mut self.seen;
        let Some(p) = seen
            .iter()
            .position(|m| m.instance == instance && m.highest == sequence)
        else {
            return;
        };
        match seen[p].undo {
            Undo::Back(before) => {
                seen[p].highest = before;
                seen[p].undo = Undo::Keep;
            }
            Undo::Forget => {
                seen.remove(p);
            }
            Undo::Keep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_order_per_instance_and_forget_the_oldest() {
        let mut m = Marks::default();
        assert!(m.advance(Some(1), 5));
        assert!(!m.advance(Some(1), 5));
        assert!(!m.advance(Some(1), 4));
        assert!(m.advance(Some(2), 1), "another instance has its own order");
        assert!(m.advance(None, 0));
        for i in 3..3 + INSTANCES_PER_NODE as u64 {
            assert!(m.advance(Some(i), 1));
        }
        assert!(m.advance(Some(1), 5), "instance 1 was forgotten");
        assert_eq!(m.seen.len(), INSTANCES_PER_NODE);
    }

    #[test]
    fn a_withdrawn_sequence_is_new_again() {
        let mut m = Marks::default();
        assert!(m.advance(Some(1), 5));
        m.withdraw(Some(1), 5);
        assert!(
            m.seen.is_empty(),
            "the first SEQUENCE withdrawn forgets the instance"
        );
        assert!(m.advance(Some(1), 5));
        assert!(m.advance(Some(1), 6));
        m.withdraw(Some(1), 6);
        assert!(m.advance(Some(1), 6), "6 is new again");
        assert!(!m.advance(Some(1), 5), "5 stays accepted");
        assert!(m.advance(Some(1), 7));
        m.withdraw(Some(1), 6);
        assert!(
            !m.advance(Some(1), 7),
            "only the last one recorded is withdrawn"
        );
    }

    #[test]
    fn withdrawals_interleaved_on_two_connections_forget_nothing_accepted_before() {
        let mut m = Marks::default();
        assert!(m.advance(Some(1), 5));
        // Reports 6 and 7 of one instance are checked on two connections, then both refused.
        assert!(m.advance(Some(1), 6));
        assert!(m.advance(Some(1), 7));
        m.withdraw(Some(1), 7);
        m.withdraw(Some(1), 6);
        assert!(!m.advance(Some(1), 5), "5 stays accepted: no replay of it");
        assert!(
            !m.advance(Some(1), 6),
            "6 stays too: what was before it is not kept"
        );
        assert!(m.advance(Some(1), 7), "7 is new again");
    }
}
