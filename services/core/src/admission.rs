//! Admission: may a new execution of `workflow_id` start on `target` now, given the history
//! of executions on that target? The decision names every blocker, so Preflight can explain.
//!
//! Rules (all thresholds in [`AdmissionPolicy`]):
//! - **ResourceBusy**: a Pending or Running execution holds the target (one blocker per holder).
//! - **RecentlyRemediated**: the same workflow completed on the target less than `cooldown` ago.
//! - **PreviousExecutionFailed**: the most recent execution failure after start (it may have
//!   changed the target) is not followed by a success or a cleared block. Until cleared.
//! - **ExponentialBackoff**: `n` (1 ≤ n < max) consecutive pre-execution failures: wait
//!   `backoff_delay(n)` from the last one.
//! - **ExhaustedRetries**: `n ≥ max` consecutive pre-execution failures: blocked until cleared
//!   or `exhausted_retries_block` after the last one.
//!
//! History semantics (newest terminal execution first, by end time):
//! - Skipped executions never ran and are ignored.
//! - A Completed execution ends the failure streak and lifts PreviousExecutionFailed.
//! - A record with `block_cleared` (ClearBlock) ends the walk: it and everything older no
//!   longer count, which lifts PreviousExecutionFailed and ExhaustedRetries and resets the streak.
//! - An execution failure ends the pre-execution streak (it blocks through
//!   PreviousExecutionFailed instead).
//! - **Cancelled** is a decision of a person or the orchestrator, not a verdict on the workflow:
//!   cancelled before start, it counts neither as a success nor as a failure and is skipped
//!   over; cancelled after start (`was_execution_failure`), it is an execution failure like
//!   any other, because a half-run workflow may have left the target half-changed.
//!
//! Pass the history without the execution being decided, and records of any target (others
//! are ignored).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::duration::format_go;
use crate::failure::FailureReason;
use crate::model::{ExecutionRecord, Phase};

mod jitter;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_combinations;

pub use jitter::{FixedJitter, Jitter, SeededJitter};

/// Admission thresholds. `Default` gives the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionPolicy {
    /// RecentlyRemediated window for the same target and workflow (5 min).
    pub cooldown: Duration,
    /// First backoff delay (60 s).
    pub backoff_base: Duration,
    /// Backoff cap before jitter (10 min).
    pub backoff_max: Duration,
    /// ± jitter in percent of the delay (10); values above 100 count as 100.
    pub jitter_percent: u32,
    /// Consecutive pre-execution failures that exhaust retries (3). 0 means the first
    /// failure already does.
    pub max_consecutive_failures: u32,
    /// How long ExhaustedRetries blocks after the last failure unless cleared (1 h).
    pub exhausted_retries_block: Duration,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(5 * 60),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(10 * 60),
            jitter_percent: 10,
            max_consecutive_failures: 3,
            exhausted_retries_block: Duration::from_secs(60 * 60),
        }
    }
}

/// Why admission refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockReason {
    /// A non-terminal execution holds the target.
    ResourceBusy,
    /// The same workflow completed on the target within the cooldown.
    RecentlyRemediated,
    /// The last execution failed after starting; a person must clear the block.
    PreviousExecutionFailed,
    /// Waiting out the backoff after pre-execution failures.
    ExponentialBackoff,
    /// Too many consecutive pre-execution failures.
    ExhaustedRetries,
}

impl BlockReason {
    /// The wire value (the variant name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResourceBusy => "ResourceBusy",
            Self::RecentlyRemediated => "RecentlyRemediated",
            Self::PreviousExecutionFailed => "PreviousExecutionFailed",
            Self::ExponentialBackoff => "ExponentialBackoff",
            Self::ExhaustedRetries => "ExhaustedRetries",
        }
    }

    /// Whether ClearBlock may lift it.
    pub fn clearable(self) -> bool {
        matches!(self, Self::PreviousExecutionFailed | Self::ExhaustedRetries)
    }
}

/// One reason the target cannot run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    /// The rule.
    pub reason: BlockReason,
    /// A sentence for people.
    pub message: String,
    /// Name of the execution that holds the target or caused the block.
    pub execution: String,
    /// Namespace of that execution.
    pub execution_namespace: String,
    /// When it clears by itself; `None`: not by time (the holder must finish, or a person must
    /// clear it; see [`Blocker::clearable`]).
    pub clears_at: Option<Timestamp>,
    /// ClearBlock may lift it.
    pub clearable: bool,
}

/// The admission verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionDecision {
    /// True when there are no blockers.
    pub allowed: bool,
    /// Every blocker, in rule order: ResourceBusy, RecentlyRemediated,
    /// PreviousExecutionFailed, ExhaustedRetries or ExponentialBackoff.
    pub blockers: Vec<Blocker>,
}

impl AdmissionDecision {
    /// A decision from its blockers.
    pub fn from_blockers(blockers: Vec<Blocker>) -> Self {
        Self {
            allowed: blockers.is_empty(),
            blockers,
        }
    }

    /// When every blocker will have cleared by time alone; `None` when allowed now or when a
    /// blocker does not clear by time.
    pub fn retry_at(&self) -> Option<Timestamp> {
        if self.allowed {
            return None;
        }
        self.blockers
            .iter()
            .map(|b| b.clears_at)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }
}

/// The backoff after `n` consecutive pre-execution failures:
/// `min(base × 2^(n−1), max) × (1 + jitter_percent/100 × factor)`, in whole milliseconds;
/// zero for `n = 0`. Draws one factor from `jitter` when `n > 0`.
pub fn backoff_delay(policy: &AdmissionPolicy, n: u32, jitter: &mut dyn Jitter) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let doubled = policy
        .backoff_base
        .saturating_mul(2u32.saturating_pow(n - 1));
    let capped = doubled.min(policy.backoff_max);
    let spread = f64::from(policy.jitter_percent.min(100)) / 100.0;
    let scale = 1.0 + spread * jitter::sanitize(jitter.factor());
    // f64 has ample precision for millisecond delays; `as` saturates on overflow.
    let millis = (capped.as_millis() as f64 * scale).round() as u64;
    Duration::from_millis(millis)
}

/// Decides whether `workflow_id` may start on `target` at `now`.
pub fn decide(
    policy: &AdmissionPolicy,
    target: &str,
    workflow_id: &str,
    history: &[ExecutionRecord],
    now: Timestamp,
    jitter: &mut dyn Jitter,
) -> AdmissionDecision {
    let on_target: Vec<&ExecutionRecord> = history.iter().filter(|r| r.target == target).collect();
    let terminal = terminal_newest_first(&on_target);
    let mut blockers = resource_busy(&on_target, target);
    blockers.extend(recently_remediated(policy, &on_target, workflow_id, now));
    blockers.extend(previous_execution_failed(&terminal, target));
    blockers.extend(failure_streak(policy, &terminal, target, now, jitter));
    AdmissionDecision::from_blockers(blockers)
}

/// How one terminal record affects the failure rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    ExecutionFailure,
    PreExecutionFailure,
    /// Cancelled before start: neither success nor failure.
    Neutral,
}

fn outcome(r: &ExecutionRecord) -> Outcome {
    match (r.phase, r.was_execution_failure, r.failure_reason) {
        (Phase::Completed, _, _) => Outcome::Success,
        (_, true, _) => Outcome::ExecutionFailure,
        (_, false, Some(FailureReason::Cancelled)) => Outcome::Neutral,
        _ => Outcome::PreExecutionFailure,
    }
}

/// Completed and Failed records (Skipped never ran), newest end first; ties broken by
/// write order, creation time and name so the order never depends on the input order.
fn terminal_newest_first<'a>(records: &[&'a ExecutionRecord]) -> Vec<&'a ExecutionRecord> {
    let mut out: Vec<_> = records
        .iter()
        .copied()
        .filter(|r| matches!(r.phase, Phase::Completed | Phase::Failed))
        .collect();
    out.sort_by(|a, b| {
        (b.ended_at(), b.sequence, b.created_at, &b.name).cmp(&(
            a.ended_at(),
            a.sequence,
            a.created_at,
            &a.name,
        ))
    });
    out
}

/// `ts + d`, saturating at the end of representable time.
fn after(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn resource_busy(records: &[&ExecutionRecord], target: &str) -> Vec<Blocker> {
    let mut holders: Vec<_> = records.iter().filter(|r| !r.phase.is_terminal()).collect();
    holders.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    holders
        .into_iter()
        .map(|r| Blocker {
            reason: BlockReason::ResourceBusy,
            message: format!(
                "target {target} is held by {} execution {}",
                r.phase, r.name
            ),
            execution: r.name.clone(),
            execution_namespace: r.namespace.clone(),
            clears_at: None,
            clearable: false,
        })
        .collect()
}

fn recently_remediated(
    policy: &AdmissionPolicy,
    records: &[&ExecutionRecord],
    workflow_id: &str,
    now: Timestamp,
) -> Option<Blocker> {
    let last = records
        .iter()
        .filter(|r| r.phase == Phase::Completed && r.workflow_id == workflow_id)
        .max_by(|a, b| {
            (a.ended_at(), a.sequence, &a.name).cmp(&(b.ended_at(), b.sequence, &b.name))
        })?;
    let clears_at = after(last.ended_at(), policy.cooldown);
    (now < clears_at).then(|| Blocker {
        reason: BlockReason::RecentlyRemediated,
        message: format!(
            "workflow {workflow_id} completed on target {} at {} (execution {}); the {} cooldown ends at {clears_at}",
            last.target,
            last.ended_at(),
            last.name,
            format_go(policy.cooldown),
        ),
        execution: last.name.clone(),
        execution_namespace: last.namespace.clone(),
        clears_at: Some(clears_at),
        clearable: false,
    })
}

fn previous_execution_failed(terminal: &[&ExecutionRecord], target: &str) -> Option<Blocker> {
    for r in terminal {
        if r.block_cleared {
            return None;
        }
        match outcome(r) {
            Outcome::Success => return None,
            Outcome::ExecutionFailure => return Some(execution_failure_blocker(r, target)),
            Outcome::PreExecutionFailure | Outcome::Neutral => {}
        }
    }
    None
}

fn execution_failure_blocker(r: &ExecutionRecord, target: &str) -> Blocker {
    let reason = r.failure_reason.unwrap_or(FailureReason::Unknown);
    Blocker {
        reason: BlockReason::PreviousExecutionFailed,
        message: format!(
            "execution {} failed ({reason}) after its workflow started and may have changed target {target}; \
             check the target, then clear the block",
            r.name
        ),
        execution: r.name.clone(),
        execution_namespace: r.namespace.clone(),
        clears_at: None,
        clearable: true,
    }
}

/// The newest pre-execution failure and the streak length, stopping at a success, an
/// execution failure or a cleared block.
fn pre_execution_streak<'a>(
    terminal: &[&'a ExecutionRecord],
) -> Option<(&'a ExecutionRecord, u32)> {
    let mut newest = None;
    let mut n = 0u32;
    for r in terminal {
        if r.block_cleared {
            break;
        }
        match outcome(r) {
            Outcome::Success | Outcome::ExecutionFailure => break,
            Outcome::Neutral => {}
            Outcome::PreExecutionFailure => {
                newest.get_or_insert(*r);
                n += 1;
            }
        }
    }
    newest.map(|r| (r, n))
}

fn failure_streak(
    policy: &AdmissionPolicy,
    terminal: &[&ExecutionRecord],
    target: &str,
    now: Timestamp,
    jitter: &mut dyn Jitter,
) -> Option<Blocker> {
    let (last, n) = pre_execution_streak(terminal)?;
    let exhausted = n >= policy.max_consecutive_failures;
    let (reason, wait) = if exhausted {
        (
            BlockReason::ExhaustedRetries,
            policy.exhausted_retries_block,
        )
    } else {
        (
            BlockReason::ExponentialBackoff,
            backoff_delay(policy, n, jitter),
        )
    };
    let clears_at = after(last.ended_at(), wait);
    if now >= clears_at {
        return None;
    }
    let message = if exhausted {
        format!(
            "{n} consecutive pre-execution failures on target {target} (limit {}), the last in execution {}; \
             blocked until {clears_at} unless cleared",
            policy.max_consecutive_failures, last.name
        )
    } else {
        format!(
            "{n} consecutive pre-execution failure(s) on target {target}, the last in execution {}; \
             backoff of {} ends at {clears_at}",
            last.name,
            format_go(wait)
        )
    };
    let clearable = reason.clearable();
    Some(Blocker {
        reason,
        message,
        execution: last.name.clone(),
        execution_namespace: last.namespace.clone(),
        clears_at: Some(clears_at),
        clearable,
    })
}
