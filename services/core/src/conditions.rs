//! Engine-neutral conditions (upstream §3.7 with `Execution*` instead of `TektonPipeline*`),
//! plus `Dispatched`, which says why a Pending execution has no agent yet.
//!
//! [`set_condition`] follows `metav1.Condition` semantics: `last_transition_time` moves only
//! when the status flips; reason, message and observed generation always follow the update.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::admission::BlockReason;
use crate::duration::format_go;
use crate::failure::FailureReason;

/// Condition types.
pub mod types {
    /// The primitive (Job or PipelineRun) was created, or creation failed.
    pub const EXECUTION_CREATED: &str = "ExecutionCreated";
    /// The primitive runs.
    pub const EXECUTION_RUNNING: &str = "ExecutionRunning";
    /// The primitive finished (success or failure after start).
    pub const EXECUTION_COMPLETE: &str = "ExecutionComplete";
    /// The last audit event was recorded (or failed to be).
    pub const AUDIT_RECORDED: &str = "AuditRecorded";
    /// Admission blocked the target (True) or found it free (False).
    pub const RESOURCE_LOCKED: &str = "ResourceLocked";
    /// Terminal summary: True when Completed, False when Failed.
    pub const READY: &str = "Ready";
    /// Whether an agent took the execution; explains a long Pending.
    pub const DISPATCHED: &str = "Dispatched";
}

/// Condition reasons.
pub mod reasons {
    /// ExecutionCreated True.
    pub const EXECUTION_CREATED: &str = "ExecutionCreated";
    /// ExecutionCreated False.
    pub const EXECUTION_CREATION_FAILED: &str = "ExecutionCreationFailed";
    /// ExecutionRunning True.
    pub const EXECUTION_STARTED: &str = "ExecutionStarted";
    /// ExecutionComplete True.
    pub const EXECUTION_SUCCEEDED: &str = "ExecutionSucceeded";
    /// ExecutionComplete False: a task failed.
    pub const TASK_FAILED: &str = "TaskFailed";
    /// ExecutionComplete False: timeout.
    pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
    /// ExecutionComplete False: out of memory.
    pub const OOM_KILLED: &str = "OOMKilled";
    /// ExecutionComplete False: any other failure.
    pub const EXECUTION_FAILED: &str = "ExecutionFailed";
    /// AuditRecorded True.
    pub const AUDIT_SUCCEEDED: &str = "AuditSucceeded";
    /// AuditRecorded False.
    pub const AUDIT_FAILED: &str = "AuditFailed";
    /// Ready True.
    pub const READY: &str = "Ready";
    /// Ready False.
    pub const NOT_READY: &str = "NotReady";
    /// ResourceLocked True: a non-terminal execution holds the target.
    pub const TARGET_RESOURCE_BUSY: &str = "TargetResourceBusy";
    /// ResourceLocked True: same workflow completed on the target within the cooldown.
    pub const RECENTLY_REMEDIATED: &str = "RecentlyRemediated";
    /// ResourceLocked True: the last execution failed after starting; needs ClearBlock.
    pub const PREVIOUS_EXECUTION_FAILED: &str = "PreviousExecutionFailed";
    /// ResourceLocked True: too many consecutive pre-execution failures.
    pub const EXHAUSTED_RETRIES: &str = "ExhaustedRetries";
    /// ResourceLocked True: waiting out the backoff after pre-execution failures.
    pub const EXPONENTIAL_BACKOFF: &str = "ExponentialBackoff";
    /// ResourceLocked False.
    pub const TARGET_AVAILABLE: &str = "TargetAvailable";
    /// Dispatched False: no connected agent serves this engine and cluster.
    pub const NO_AGENT_AVAILABLE: &str = "NoAgentAvailable";
    /// Dispatched False: agents exist but none has a free slot yet.
    pub const AWAITING_AGENT: &str = "AwaitingAgent";
    /// Dispatched True: an agent accepted the assignment.
    pub const ASSIGNED: &str = "Assigned";
    /// Dispatched False: the assigned agent's lease expired.
    pub const AGENT_LOST: &str = "AgentLost";
}

/// Condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl ConditionStatus {
    /// `True` / `False` / `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// True or False from a bool.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// A condition as stored on the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// One of [`types`].
    pub type_: String,
    /// Status.
    pub status: ConditionStatus,
    /// One of [`reasons`] (CamelCase).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the status last flipped.
    pub last_transition_time: Timestamp,
    /// Generation of the execution the condition was computed from.
    pub observed_generation: i64,
}

/// The desired state of one condition; [`set_condition`] stamps times and generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// Condition type.
    pub type_: &'static str,
    /// Status.
    pub status: ConditionStatus,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// Sets (adds or updates) a condition. Returns true when the list changed at all.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    now: Timestamp,
    generation: i64,
) -> bool {
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == update.type_) else {
        conditions.push(Condition {
            type_: update.type_.to_owned(),
            status: update.status,
            reason: update.reason.to_owned(),
            message: update.message,
            last_transition_time: now,
            observed_generation: generation,
        });
        return true;
    };
    let before = existing.clone();
    if existing.status != update.status {
        existing.status = update.status;
        existing.last_transition_time = now;
    }
    existing.reason = update.reason.to_owned();
    existing.message = update.message;
    existing.observed_generation = generation;
    *existing != before
}

/// The condition of that type, if present.
pub fn get_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition is present with status True.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    get_condition(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

fn update(type_: &'static str, ok: bool, reason: &'static str, message: String) -> ConditionUpdate {
    ConditionUpdate {
        type_,
        status: ConditionStatus::from_bool(ok),
        reason,
        message,
    }
}

/// ExecutionCreated True: `<engine> execution resource <name> created in <ns> namespace`.
pub fn execution_created(engine: &str, name: &str, namespace: &str) -> ConditionUpdate {
    let msg = format!("{engine} execution resource {name} created in {namespace} namespace");
    update(
        types::EXECUTION_CREATED,
        true,
        reasons::EXECUTION_CREATED,
        msg,
    )
}

/// ExecutionCreated False / ExecutionCreationFailed (pre-execution failure).
pub fn execution_creation_failed(message: &str) -> ConditionUpdate {
    let msg = format!("Failed to create execution resource: {message}");
    update(
        types::EXECUTION_CREATED,
        false,
        reasons::EXECUTION_CREATION_FAILED,
        msg,
    )
}

/// ExecutionRunning True: `Execution running (<engine>: <detail>)`.
pub fn execution_running(engine: &str, detail: &str) -> ConditionUpdate {
    let msg = format!("Execution running ({engine}: {detail})");
    update(
        types::EXECUTION_RUNNING,
        true,
        reasons::EXECUTION_STARTED,
        msg,
    )
}

/// ExecutionComplete True: `All tasks completed successfully in <duration>`.
pub fn execution_succeeded(duration: std::time::Duration) -> ConditionUpdate {
    let msg = format!(
        "All tasks completed successfully in {}",
        format_go(duration)
    );
    update(
        types::EXECUTION_COMPLETE,
        true,
        reasons::EXECUTION_SUCCEEDED,
        msg,
    )
}

/// ExecutionComplete False with upstream's reason and message per failure reason. Only for
/// failures after start: upstream sets no ExecutionComplete for pre-execution failures.
pub fn execution_failed(reason: FailureReason, message: &str) -> ConditionUpdate {
    let (r, msg) = match reason {
        FailureReason::TaskFailed => (reasons::TASK_FAILED, message.to_owned()),
        FailureReason::DeadlineExceeded => (
            reasons::DEADLINE_EXCEEDED,
            "Pipeline exceeded timeout deadline".to_owned(),
        ),
        FailureReason::OOMKilled => (
            reasons::OOM_KILLED,
            "Pipeline task killed due to out of memory".to_owned(),
        ),
        _ if message.is_empty() => (
            reasons::EXECUTION_FAILED,
            "Pipeline execution failed".to_owned(),
        ),
        _ => (reasons::EXECUTION_FAILED, message.to_owned()),
    };
    update(types::EXECUTION_COMPLETE, false, r, msg)
}

/// AuditRecorded True / AuditSucceeded.
pub fn audit_recorded(event_type: &str) -> ConditionUpdate {
    let msg = format!("Audit event {event_type} recorded");
    update(types::AUDIT_RECORDED, true, reasons::AUDIT_SUCCEEDED, msg)
}

/// AuditRecorded False / AuditFailed.
pub fn audit_failed(error: &str) -> ConditionUpdate {
    let msg = format!("Failed to record audit event: {error}");
    update(types::AUDIT_RECORDED, false, reasons::AUDIT_FAILED, msg)
}

/// Ready True on Completed, False on Failed (terminal transitions only).
pub fn ready(completed: bool) -> ConditionUpdate {
    if completed {
        update(
            types::READY,
            true,
            reasons::READY,
            "Workflow execution completed".to_owned(),
        )
    } else {
        update(
            types::READY,
            false,
            reasons::NOT_READY,
            "Workflow execution failed".to_owned(),
        )
    }
}

/// The ResourceLocked condition reason of a blocker: its name, but `TargetResourceBusy`
/// for ResourceBusy (upstream's reason).
pub fn locked_reason(reason: BlockReason) -> &'static str {
    match reason {
        BlockReason::ResourceBusy => reasons::TARGET_RESOURCE_BUSY,
        other => other.as_str(),
    }
}

/// ResourceLocked True with the reason of the (first) blocker and its message.
pub fn resource_locked(reason: BlockReason, message: &str) -> ConditionUpdate {
    update(
        types::RESOURCE_LOCKED,
        true,
        locked_reason(reason),
        message.to_owned(),
    )
}

/// ResourceLocked False: nothing blocks the target.
pub fn resource_available(target: &str) -> ConditionUpdate {
    let msg = format!("Target resource {target} is available");
    update(
        types::RESOURCE_LOCKED,
        false,
        reasons::TARGET_AVAILABLE,
        msg,
    )
}

/// Why a Pending execution does or does not have an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchState {
    /// No connected agent serves this engine and cluster.
    NoAgentAvailable,
    /// Agents exist but none has a free slot yet.
    AwaitingAgent,
    /// An agent accepted the assignment.
    Assigned,
    /// The assigned agent's lease expired.
    AgentLost,
}

/// Dispatched condition for a dispatch state; True only when assigned.
pub fn dispatched(state: DispatchState, message: &str) -> ConditionUpdate {
    let reason = match state {
        DispatchState::NoAgentAvailable => reasons::NO_AGENT_AVAILABLE,
        DispatchState::AwaitingAgent => reasons::AWAITING_AGENT,
        DispatchState::Assigned => reasons::ASSIGNED,
        DispatchState::AgentLost => reasons::AGENT_LOST,
    };
    update(
        types::DISPATCHED,
        state == DispatchState::Assigned,
        reason,
        message.to_owned(),
    )
}

#[cfg(test)]
mod tests;
