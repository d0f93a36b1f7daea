//! The phase machine.
//!
//! ```text
//! Pending ──► Running ──► Completed
//!    │           └──────► Failed
//!    ├──────────────────► Completed (it ran and finished between two looks: the one
//!    │                               write records its start too)
//!    ├──────────────────► Failed   (pre-execution failure, or ran and failed as above)
//!    └──────────────────► Skipped  (admission blocked it)
//! ```
//!
//! The status writer of workflow-api applies [`transition`] to every status write.
//!
//! A "transition" to the current phase is a no-op, terminal phases included: agents report
//! at least once, so a repeated terminal report is normal and must not look like an error.
//! A terminal phase never changes to another phase.

use crate::model::Phase;

/// Outcome of a valid transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The phase changes; write it (and observedGeneration).
    Changed,
    /// Already in that phase; nothing to write.
    NoOp,
}

/// A transition the phase machine forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid phase transition from {from} to {to}")]
pub struct InvalidTransition {
    /// Current phase.
    pub from: Phase,
    /// Requested phase.
    pub to: Phase,
}

/// Checks a phase change.
pub fn transition(from: Phase, to: Phase) -> Result<Transition, InvalidTransition> {
    use Phase::*;
    if from == to {
        return Ok(Transition::NoOp);
    }
    match (from, to) {
        (Pending, Running | Completed | Failed | Skipped) | (Running, Completed | Failed) => {
            Ok(Transition::Changed)
        }
        _ => Err(InvalidTransition { from, to }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;

    /// Every one of the 25 pairs, with the expected outcome written out.
    #[test]
    fn all_pairs() {
        use Transition::{Changed as C, NoOp as N};
        let table: [(Phase, [Option<Transition>; 5]); 5] = [
            //            Pending   Running   Completed Failed    Skipped
            (Pending, [Some(N), Some(C), Some(C), Some(C), Some(C)]),
            (Running, [None, Some(N), Some(C), Some(C), None]),
            (Completed, [None, None, Some(N), None, None]),
            (Failed, [None, None, None, Some(N), None]),
            (Skipped, [None, None, None, None, Some(N)]),
        ];
        let mut checked = 0;
        for (from, row) in table {
            for (to, want) in Phase::ALL.into_iter().zip(row) {
                assert_eq!(transition(from, to).ok(), want, "{from} -> {to}");
                checked += 1;
            }
        }
        assert_eq!(checked, 25);
    }

    #[test]
    fn error_message() {
        let err = transition(Completed, Running).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid phase transition from Completed to Running")
        );
    }
}
