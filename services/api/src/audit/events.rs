//! Which audit events an execution's status implies, and the AuditRecorded condition that
//! lists those recorded. Pure: the status writer uses it to list a transition's events in
//! the transition's own write, the recorder to find what a crash left unrecorded.
//!
//! The AuditRecorded condition lists the event types recorded so far (its message names
//! them), so the check needs no other status field.

use wfe_core::conditions::{self, ConditionStatus};
use wfe_core::{FailureReason, Phase};
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use super::{AuditKind, EVENT_TYPES};
use crate::status::transitions;
use crate::store::phase_of;

/// The events of a transition from `from` to `to` ending in `status`, in order.
pub fn kinds_between(
    status: Option<&WorkflowExecutionStatus>,
    from: Phase,
    to: Phase,
) -> Vec<AuditKind> {
    let Some(status) = status else {
        return Vec::new();
    };
    if from == to {
        return Vec::new();
    }
    let mut kinds = Vec::new();
    let started = status.start_time.is_some();
    if from == Phase::Pending
        && started
        && matches!(to, Phase::Running | Phase::Completed | Phase::Failed)
    {
        kinds.push(AuditKind::Started);
    }
    kinds.extend(terminal_kind(status, to));
    kinds
}

/// The terminal event of a phase, if it has one.
pub fn terminal_kind(status: &WorkflowExecutionStatus, phase: Phase) -> Option<AuditKind> {
    match phase {
        Phase::Completed => Some(AuditKind::Completed),
        Phase::Skipped => Some(AuditKind::Skipped),
        Phase::Failed => {
            let cancelled = status
                .failure_details
                .as_ref()
                .is_some_and(|f| f.reason == FailureReason::Cancelled);
            Some(match (cancelled, status.cancel_request.clone()) {
                (true, Some(r)) => AuditKind::Cancelled {
                    by: r.requested_by,
                    reason: r.reason,
                },
                (true, None) => AuditKind::Cancelled {
                    by: "unknown".into(),
                    reason: String::new(),
                },
                (false, _) => AuditKind::Failed,
            })
        }
        Phase::Pending | Phase::Running => None,
    }
}

/// Every event the execution's status implies, in the order they happened.
pub fn expected_kinds(obj: &WorkflowExecution) -> Vec<AuditKind> {
    let Some(st) = &obj.status else {
        return Vec::new();
    };
    let phase = phase_of(obj);
    let mut kinds = Vec::new();
    if st.start_time.is_some() && matches!(phase, Phase::Running | Phase::Completed | Phase::Failed)
    {
        kinds.push(AuditKind::Started);
    }
    kinds.extend(terminal_kind(st, phase));
    if let Some(b) = st
        .block_clearance
        .as_ref()
        .filter(|b| !b.cleared_by.is_empty())
    {
        kinds.push(AuditKind::BlockCleared {
            by: b.cleared_by.clone(),
            reason: b.clear_reason.clone(),
        });
    }
    kinds
}

/// The event types the AuditRecorded condition lists as recorded.
pub fn recorded_types(status: &WorkflowExecutionStatus) -> Vec<&'static str> {
    let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::types::AUDIT_RECORDED)
    else {
        return Vec::new();
    };
    EVENT_TYPES
        .into_iter()
        .filter(|t| c.message.contains(t))
        .collect()
}

/// The implied events the condition does not list yet.
pub fn missing_kinds(obj: &WorkflowExecution) -> Vec<AuditKind> {
    let recorded = obj.status.as_ref().map(recorded_types).unwrap_or_default();
    expected_kinds(obj)
        .into_iter()
        .filter(|k| !recorded.contains(&k.event_type()))
        .collect()
}

/// Sets AuditRecorded in `status` to the union of what it lists and `done`, or to False
/// with the error; returns whether it changed.
pub fn list_recorded(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    done: &[&'static str],
    error: Option<&str>,
    now: jiff::Timestamp,
) -> bool {
    let mut types = recorded_types(status);
    types.extend(
        done.iter()
            .filter(|t| !types.contains(t))
            .collect::<Vec<_>>(),
    );
    let listed: Vec<&str> = EVENT_TYPES
        .into_iter()
        .filter(|t| types.contains(t))
        .collect();
    let listed = listed.join(", ");
    let update = match error {
        None => conditions::audit_recorded(&listed),
        Some(e) => conditions::audit_failed(&format!("{e} (recorded: {listed})")),
    };
    transitions::set_condition(obj, status, update, now)
}

/// Whether every event the execution implies is recorded (and AuditRecorded is True).
pub fn audit_complete(obj: &WorkflowExecution) -> bool {
    let ok = obj.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == conditions::types::AUDIT_RECORDED
                && c.status == ConditionStatus::True.as_str()
        })
    });
    ok && missing_kinds(obj).is_empty()
}
