//! Slots and fencing tokens: which executions this agent holds, and whether a command
//! may be obeyed. Pure bookkeeping, so every rule has a table test.

use std::collections::HashMap;

/// What the agent knows about one execution it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Highest fencing token seen for it.
    pub fencing_token: u64,
    /// Attempt of that assignment.
    pub attempt: u32,
    /// Its primitive reached a terminal phase (the slot is free).
    pub terminal: bool,
}

/// The answer to an Assign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignDecision {
    /// Take it; `redelivery` when this exact assignment was already taken.
    Accept {
        /// The same fencing token was already accepted: answer from what exists.
        redelivery: bool,
    },
    /// Refuse: a newer assignment exists.
    Stale,
    /// Refuse: every slot is busy.
    Full,
    /// Refuse: the agent is shutting down.
    Draining,
}

impl AssignDecision {
    /// The Ack reason for a refusal (empty when accepted).
    pub fn refusal_reason(self) -> &'static str {
        match self {
            Self::Accept { .. } => "",
            Self::Stale => "stale fencing token",
            Self::Full => "no free slot",
            Self::Draining => "agent is draining",
        }
    }
}

/// Executions held, by execution UID, against a fixed capacity.
#[derive(Debug, Clone)]
pub struct Ledger {
    capacity: u32,
    draining: bool,
    held: HashMap<String, Held>,
    /// Entries of `held` that are not terminal, kept on every change: terminal entries
    /// stay until released (minutes later), so counting them on every report and
    /// heartbeat would cost O(executions seen).
    running: u32,
}

impl Ledger {
    /// An empty ledger with `capacity` slots.
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            draining: false,
            held: HashMap::new(),
            running: 0,
        }
    }

    /// Slots advertised.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Executions whose primitive is not terminal.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// Stores what is known about `uid`, keeping the running count.
    fn put(&mut self, uid: &str, held: Held) {
        let old = self.held.insert(uid.to_owned(), held);
        self.count(old.as_ref(), Some(&held));
    }

    /// Adjusts the running count for an entry that went from `old` to `new`.
    fn count(&mut self, old: Option<&Held>, new: Option<&Held>) {
        let is_running = |h: Option<&Held>| h.is_some_and(|h| !h.terminal);
        match (is_running(old), is_running(new)) {
            (false, true) => self.running = self.running.saturating_add(1),
            (true, false) => self.running = self.running.saturating_sub(1),
            _ => {}
        }
    }

    /// Slots free for new work (0 while draining).
    pub fn free_slots(&self) -> u32 {
        if self.draining {
            return 0;
        }
        self.capacity.saturating_sub(self.running())
    }

    /// Stop taking work.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// What is known about an execution.
    pub fn get(&self, uid: &str) -> Option<&Held> {
        self.held.get(uid)
    }

    /// Decide on an Assign and record it when accepted.
    pub fn assign(&mut self, uid: &str, fencing_token: u64, attempt: u32) -> AssignDecision {
        let current = self.held.get(uid).copied();
        if let Some(h) = current {
            if fencing_token < h.fencing_token {
                return AssignDecision::Stale;
            }
            if fencing_token == h.fencing_token {
                return AssignDecision::Accept { redelivery: true };
            }
        }
        if self.draining {
            return AssignDecision::Draining;
        }
        // A newer assignment of an execution already held does not need a new slot.
        let holds_slot = current.is_some_and(|h| !h.terminal);
        if !holds_slot && self.running() >= self.capacity {
            return AssignDecision::Full;
        }
        let held = Held {
            fencing_token,
            attempt,
            terminal: current.is_some_and(|h| h.terminal),
        };
        self.put(uid, held);
        AssignDecision::Accept { redelivery: false }
    }

    /// May a Cancel/Release with this token be obeyed? Unknown executions may: the
    /// agent may have restarted and the primitive still exist.
    pub fn command_allowed(&self, uid: &str, fencing_token: u64) -> bool {
        self.held
            .get(uid)
            .is_none_or(|h| fencing_token >= h.fencing_token)
    }

    /// Record an execution found on the cluster (inventory), keeping the higher token.
    pub fn observe(&mut self, uid: &str, fencing_token: u64, attempt: u32, terminal: bool) {
        let mut held = self.held.get(uid).copied().unwrap_or(Held {
            fencing_token,
            attempt,
            terminal,
        });
        if fencing_token > held.fencing_token {
            held.fencing_token = fencing_token;
            held.attempt = attempt;
        }
        held.terminal = terminal;
        self.put(uid, held);
    }

    /// Forget an execution (released, or its primitive is gone and reported).
    pub fn forget(&mut self, uid: &str) {
        let old = self.held.remove(uid);
        self.count(old.as_ref(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AssignDecision::*;

    #[test]
    fn assign_table() {
        // (steps of (uid, token), expected decision of the last step), capacity 2.
        let cases: &[(&[(&str, u64)], AssignDecision)] = &[
            (&[("a", 1)], Accept { redelivery: false }),
            (&[("a", 1), ("a", 1)], Accept { redelivery: true }),
            (&[("a", 2), ("a", 1)], Stale),
            (&[("a", 1), ("a", 2)], Accept { redelivery: false }),
            (&[("a", 1), ("b", 1), ("c", 1)], Full),
            (
                &[("a", 1), ("b", 1), ("b", 2)],
                Accept { redelivery: false },
            ),
            (&[("a", 1), ("b", 1), ("a", 1)], Accept { redelivery: true }),
        ];
        for (steps, want) in cases {
            let mut l = Ledger::new(2);
            let mut last = None;
            for (uid, token) in *steps {
                last = Some(l.assign(uid, *token, 1));
            }
            assert_eq!(last, Some(*want), "{steps:?}");
        }
    }

    #[test]
    fn terminal_frees_the_slot() {
        let mut l = Ledger::new(1);
        assert_eq!(l.assign("a", 1, 1), Accept { redelivery: false });
        assert_eq!(l.assign("b", 1, 1), Full);
        l.observe("a", 1, 1, true);
        assert_eq!(l.free_slots(), 1);
        assert_eq!(l.assign("b", 1, 1), Accept { redelivery: false });
        assert_eq!(l.running(), 1);
    }

    #[test]
    fn draining_refuses_new_work_but_answers_redelivery() {
        let mut l = Ledger::new(4);
        l.assign("a", 3, 1);
        l.start_draining();
        assert_eq!(l.free_slots(), 0);
        assert_eq!(l.assign("b", 1, 1), Draining);
        assert_eq!(l.assign("a", 3, 1), Accept { redelivery: true });
        assert_eq!(l.assign("a", 2, 1), Stale);
        assert_eq!(Draining.refusal_reason(), "agent is draining");
    }

    #[test]
    fn running_count_follows_every_change() {
        enum Step {
            Assign(&'static str, u64),
            Observe(&'static str, u64, bool),
            Forget(&'static str),
        }
        use Step::*;
        let steps = [
            Assign("a", 1),
            Assign("a", 1),
            Assign("b", 1),
            Observe("a", 1, true),
            Observe("a", 1, true),
            Assign("a", 2),
            Observe("c", 4, false),
            Observe("c", 5, false),
            Forget("b"),
            Forget("b"),
            Forget("a"),
            Observe("c", 5, true),
        ];
        let mut l = Ledger::new(3);
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Assign(uid, token) => {
                    let _ = l.assign(uid, token, 1);
                }
                Observe(uid, token, terminal) => l.observe(uid, token, 1, terminal),
                Forget(uid) => l.forget(uid),
            }
            let recount = l.held.values().filter(|h| !h.terminal).count();
            assert_eq!(l.running() as usize, recount, "after step {i}");
        }
        assert_eq!(l.running(), 0);
        assert_eq!(l.free_slots(), 3);
    }

    #[test]
    fn commands_with_stale_tokens_are_refused() {
        let mut l = Ledger::new(4);
        l.observe("a", 5, 2, false);
        assert!(!l.command_allowed("a", 4));
        assert!(l.command_allowed("a", 5));
        assert!(l.command_allowed("a", 6));
        assert!(l.command_allowed("unknown", 1));
        l.observe("a", 3, 1, true);
        assert_eq!(l.get("a").map(|h| h.fencing_token), Some(5));
        l.forget("a");
        assert!(l.get("a").is_none());
    }
}
