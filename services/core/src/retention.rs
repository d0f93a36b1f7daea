//! Execution retention: when may a terminal WorkflowExecution be deleted?
//!
//! The audit trail is the long-term record; the execution resource is the working copy.
//! It goes once all of these hold:
//! - it is terminal and ended at least `retention` ago (a zero retention keeps it for ever);
//! - deleting it changes no admission answer for its target: it holds no ResourceBusy, its
//!   cooldown is over, and it is not the failure behind PreviousExecutionFailed or part of a
//!   failure streak (ExponentialBackoff, ExhaustedRetries) a person has not cleared.
//!
//! The second rule is checked by deciding admission for the target twice, with and without
//! the execution, for its own workflow (the only one whose cooldown it can hold): if the
//! blockers differ, it still counts. Whether its audit events are delivered is the caller's
//! to add (the API reads it from the AuditRecorded condition).

use std::time::Duration;

use jiff::Timestamp;

use crate::admission::{self, AdmissionPolicy, BlockReason, FixedJitter};
use crate::model::ExecutionRecord;

/// Why an execution is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Retention is off (zero).
    Forever,
    /// Not terminal yet.
    NotTerminal,
    /// Its retention ends at this time.
    Retained {
        /// When it may go.
        until: Timestamp,
    },
    /// Deleting it would change the admission answer for its target.
    StillBlocks(BlockReason),
}

/// The retention verdict for `execution`, one of `history` (the records of its target,
/// itself included), at `now`.
pub fn verdict(
    policy: &AdmissionPolicy,
    retention: Duration,
    execution: &ExecutionRecord,
    history: &[ExecutionRecord],
    now: Timestamp,
) -> Result<(), Keep> {
    if retention.is_zero() {
        return Err(Keep::Forever);
    }
    if !execution.phase.is_terminal() {
        return Err(Keep::NotTerminal);
    }
    let until = execution
        .ended_at()
        .checked_add(retention)
        .unwrap_or(Timestamp::MAX);
    if now < until {
        return Err(Keep::Retained { until });
    }
    match blocks(policy, execution, history, now) {
        Some(reason) => Err(Keep::StillBlocks(reason)),
        None => Ok(()),
    }
}

/// The first blocker of the target that the execution's deletion would lift or change.
fn blocks(
    policy: &AdmissionPolicy,
    execution: &ExecutionRecord,
    history: &[ExecutionRecord],
    now: Timestamp,
) -> Option<BlockReason> {
    let is_it =
        |r: &ExecutionRecord| r.name == execution.name && r.namespace == execution.namespace;
    let without: Vec<ExecutionRecord> = history.iter().filter(|r| !is_it(r)).cloned().collect();
    let decide = |h: &[ExecutionRecord]| {
        let mut jitter = FixedJitter(0.0);
        admission::decide(
            policy,
            &execution.target,
            &execution.workflow_id,
            h,
            now,
            &mut jitter,
        )
        .blockers
        .into_iter()
        .map(|b| (b.reason, b.execution, b.clears_at))
        .collect::<Vec<_>>()
    };
    let (with, after) = (decide(history), decide(&without));
    with.iter()
        .find(|b| !after.contains(b))
        .or_else(|| after.iter().find(|b| !with.contains(b)))
        .map(|b| b.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::failure::FailureReason;
    use crate::model::Phase;

    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs as i64).unwrap()
    }

    fn record(name: &str, phase: Phase, ended: u64) -> ExecutionRecord {
        ExecutionRecord {
            name: name.into(),
            namespace: "ns".into(),
            target: "c/ns/Deployment/web".into(),
            workflow_id: "restart".into(),
            phase,
            created_at: at(ended.saturating_sub(60)),
            completed_at: phase.is_terminal().then(|| at(ended)),
            failure_reason: (phase == Phase::Failed).then_some(FailureReason::TaskFailed),
            was_execution_failure: false,
            block_cleared: false,
            sequence: ended,
        }
    }

    fn execution_failure(name: &str, ended: u64) -> ExecutionRecord {
        ExecutionRecord {
            was_execution_failure: true,
            ..record(name, Phase::Failed, ended)
        }
    }

    fn pre_start_failure(name: &str, ended: u64) -> ExecutionRecord {
        ExecutionRecord {
            failure_reason: Some(FailureReason::ImagePullBackOff),
            ..record(name, Phase::Failed, ended)
        }
    }

    fn cleared(r: ExecutionRecord) -> ExecutionRecord {
        ExecutionRecord {
            block_cleared: true,
            ..r
        }
    }

    /// What, retention, the execution, its target's history, now, the verdict.
    type Case = (
        &'static str,
        Duration,
        ExecutionRecord,
        Vec<ExecutionRecord>,
        u64,
        Result<(), Keep>,
    );

    #[test]
    fn verdicts() {
        let week = Duration::from_secs(7 * DAY);
        let policy = AdmissionPolicy::default();
        let done = record("done", Phase::Completed, 0);
        let failed = execution_failure("failed", 0);
        let cases: Vec<Case> = vec![
            (
                "a completed run goes after its retention",
                week,
                done.clone(),
                vec![done.clone()],
                7 * DAY,
                Ok(()),
            ),
            (
                "not a second before",
                week,
                done.clone(),
                vec![done.clone()],
                7 * DAY - 1,
                Err(Keep::Retained { until: at(7 * DAY) }),
            ),
            (
                "zero keeps for ever",
                Duration::ZERO,
                done.clone(),
                vec![done.clone()],
                400 * DAY,
                Err(Keep::Forever),
            ),
            (
                "a running one stays",
                week,
                record("run", Phase::Running, 0),
                vec![record("run", Phase::Running, 0)],
                30 * DAY,
                Err(Keep::NotTerminal),
            ),
            (
                "a short retention waits out the cooldown",
                Duration::from_secs(1),
                done.clone(),
                vec![done.clone()],
                60,
                Err(Keep::StillBlocks(BlockReason::RecentlyRemediated)),
            ),
            (
                "an uncleared execution failure stays while it blocks",
                week,
                failed.clone(),
                vec![failed.clone()],
                30 * DAY,
                Err(Keep::StillBlocks(BlockReason::PreviousExecutionFailed)),
            ),
            (
                "once cleared it goes",
                week,
                cleared(failed.clone()),
                vec![cleared(failed.clone())],
                30 * DAY,
                Ok(()),
            ),
            (
                "a success after it lifts its block: it goes",
                week,
                failed.clone(),
                vec![failed.clone(), record("later", Phase::Completed, HOUR)],
                30 * DAY,
                Ok(()),
            ),
            (
                "a failure streak member stays while the streak exhausts retries",
                Duration::from_secs(60),
                pre_start_failure("f1", 0),
                vec![
                    pre_start_failure("f1", 0),
                    pre_start_failure("f2", 10),
                    pre_start_failure("f3", 20),
                ],
                120,
                Err(Keep::StillBlocks(BlockReason::ExhaustedRetries)),
            ),
            (
                "after the exhausted-retries block ends, the streak goes",
                Duration::from_secs(60),
                pre_start_failure("f1", 0),
                vec![
                    pre_start_failure("f1", 0),
                    pre_start_failure("f2", 10),
                    pre_start_failure("f3", 20),
                ],
                2 * HOUR,
                Ok(()),
            ),
            (
                "a skipped one goes",
                week,
                record("skip", Phase::Skipped, 0),
                vec![record("skip", Phase::Skipped, 0)],
                7 * DAY,
                Ok(()),
            ),
        ];
        for (what, retention, exec, history, now, want) in cases {
            assert_eq!(
                verdict(&policy, retention, &exec, &history, at(now)),
                want,
                "{what}"
            );
        }
    }
}
