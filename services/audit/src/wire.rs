//! What DataStorage receives for one of our events: its contract's form
//! ([`crate::contract`]), with upstream's event types.
//!
//! The JSON-lines file and the outbox keep the richer events of [`crate::event`]; this
//! projection is applied when a batch is sent. The mapping:
//!
//! | our event (file, outbox, AuditRecorded) | DataStorage `event_type` | what the contract cannot hold, and where it goes |
//! |---|---|---|
//! | `workflow.started` | `selection.completed` then `execution.started` | (upstream emits both when it starts a run; the selection event's id is derived from the started event's id) |
//! | `workflow.completed` | `workflow.completed` | `execution_engine`: not sent |
//! | `workflow.failed` | `workflow.failed` | a reason outside the contract's enum (`Cancelled`, `AgentLost`) becomes `Unknown`, and `failure_message` starts with `<Reason>: `; `exit_code` is appended to `error_details.message` |
//! | `workflow.skipped` | `workflow.failed`, `event_action: skipped` | phase `Failed` (no `Skipped` in the enum), `failure_reason: Unknown`, every blocker in `failure_message` (`Skipped: <reason>: <message>; …`), `error_details.code: ERR_WORKFLOW_SKIPPED` |
//! | `workflow.cancelled` | `workflow.failed`, `event_action: cancelled` | phase `Failed`, `failure_reason: Unknown`, `failure_message: Cancelled by <who>: <reason>` (`actor_id` is who), `error_details.code: ERR_WORKFLOW_CANCELLED` |
//! | `block.cleared` | `block.cleared` | `execution_engine`, `target_resource`, `cleared_by` (it is `actor_id`): not sent |
//!
//! (every type is prefixed `workflowexecution.`). A skipped or cancelled event is sent with
//! outcome `failure`, as every `workflow.failed` is: the outcome describes the workflow.

use serde_json::{Map, Value, json};

use crate::contract::{self, FAILURE_REASONS, PHASES};
use crate::event::{
    BLOCK_CLEARED, WORKFLOW_CANCELLED, WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_SKIPPED,
    WORKFLOW_STARTED,
};
use crate::{AuditEvent, event_id};

/// `workflowexecution.selection.completed`
pub const SELECTION_COMPLETED: &str = "workflowexecution.selection.completed";
/// `workflowexecution.execution.started`
pub const EXECUTION_STARTED: &str = "workflowexecution.execution.started";

/// `error_details.code` of a skipped execution.
pub const ERR_SKIPPED: &str = "ERR_WORKFLOW_SKIPPED";
/// `error_details.code` of a cancelled execution.
pub const ERR_CANCELLED: &str = "ERR_WORKFLOW_CANCELLED";

/// The `AuditEventRequest`s DataStorage receives for `event`, in order. An event type this
/// module does not know is passed through unchanged (the contract check then refuses it).
pub fn requests(event: &AuditEvent) -> Vec<Value> {
    match event.event_type.as_str() {
        WORKFLOW_STARTED => vec![selection(event), execution_started(event)],
        WORKFLOW_COMPLETED => vec![request(event, WORKFLOW_COMPLETED, workflow_payload(event))],
        WORKFLOW_FAILED => vec![failed(event)],
        WORKFLOW_SKIPPED => vec![skipped(event)],
        WORKFLOW_CANCELLED => vec![cancelled(event)],
        BLOCK_CLEARED => vec![block_cleared(event)],
        _ => vec![serde_json::to_value(event).unwrap_or(Value::Null)],
    }
}

/// The envelope of `event` with `event_type` and `event_data` replaced.
fn request(event: &AuditEvent, event_type: &str, mut data: Map<String, Value>) -> Value {
    data.insert("event_type".into(), json!(event_type));
    let mut e = event.clone();
    e.event_type = event_type.to_owned();
    e.event_data = Value::Object(data);
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// `event_data` keeping only what `WorkflowExecutionAuditPayload` names.
fn workflow_payload(event: &AuditEvent) -> Map<String, Value> {
    let mut data: Map<String, Value> = event
        .event_data
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| contract::WORKFLOW_PAYLOAD.property(k).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let phase = data.get("phase").and_then(Value::as_str).unwrap_or("");
    if !PHASES.contains(&phase) {
        // Only Skipped is outside the enum, and it is sent as a failure.
        data.insert("phase".into(), json!("Failed"));
    }
    data
}

fn selection(event: &AuditEvent) -> Value {
    let keep = [
        "workflow_id",
        "workflow_version",
        "workflow_name",
        "action_type",
        "container_image",
        "execution_name",
        "target_resource",
    ];
    let mut data = workflow_payload(event);
    data.retain(|k, _| keep.contains(&k.as_str()));
    // Upstream reports the selection while the execution is still Pending.
    data.insert("phase".into(), json!("Pending"));
    let mut e = event.clone();
    e.event_id = event_id(&event.event_id, SELECTION_COMPLETED);
    e.event_action = "completed".into();
    request(&e, SELECTION_COMPLETED, data)
}

fn execution_started(event: &AuditEvent) -> Value {
    request(event, EXECUTION_STARTED, workflow_payload(event))
}

fn failed(event: &AuditEvent) -> Value {
    let mut data = workflow_payload(event);
    let reason = str_of(&event.event_data, "failure_reason");
    if !reason.is_empty() && !FAILURE_REASONS.contains(&reason.as_str()) {
        let message = str_of(&event.event_data, "failure_message");
        data.insert("failure_reason".into(), json!("Unknown"));
        data.insert("failure_message".into(), json!(prefixed(&reason, &message)));
    }
    if let (Some(code), Some(Value::Object(details))) = (
        event.event_data.get("exit_code"),
        data.get_mut("error_details"),
    ) {
        let message = details.get("message").and_then(Value::as_str).unwrap_or("");
        let message = format!("{message} (exit code {code})");
        details.insert("message".into(), json!(message));
    }
    request(event, WORKFLOW_FAILED, data)
}

fn skipped(event: &AuditEvent) -> Value {
    let blockers: Vec<String> = event
        .event_data
        .get("blockers")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|b| prefixed(&str_of(b, "reason"), &str_of(b, "message")))
                .collect()
        })
        .unwrap_or_default();
    let message = if blockers.is_empty() {
        "Skipped".to_owned()
    } else {
        format!("Skipped: {}", blockers.join("; "))
    };
    not_run(event, &message, ERR_SKIPPED)
}

fn cancelled(event: &AuditEvent) -> Value {
    let by = str_of(&event.event_data, "cancelled_by");
    let reason = str_of(&event.event_data, "cancel_reason");
    let who = if by.is_empty() {
        "unknown"
    } else {
        by.as_str()
    };
    not_run(
        event,
        &prefixed(&format!("Cancelled by {who}"), &reason),
        ERR_CANCELLED,
    )
}

/// A skipped or cancelled execution as upstream's `workflow.failed`, keeping our action.
fn not_run(event: &AuditEvent, message: &str, code: &str) -> Value {
    let mut data = workflow_payload(event);
    data.insert("phase".into(), json!("Failed"));
    data.insert("failure_reason".into(), json!("Unknown"));
    data.insert("failure_message".into(), json!(message));
    data.insert(
        "error_details".into(),
        json!({
            "code": code,
            "message": message,
            "component": wfe_core::failure::AUDIT_COMPONENT,
            "retry_possible": true,
        }),
    );
    let mut e = event.clone();
    e.event_outcome = "failure".into();
    request(&e, WORKFLOW_FAILED, data)
}

fn block_cleared(event: &AuditEvent) -> Value {
    let mut data = event.event_data.as_object().cloned().unwrap_or_default();
    data.retain(|k, _| contract::WEBHOOK_PAYLOAD.property(k).is_some());
    request(event, BLOCK_CLEARED, data)
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `<head>: <tail>`, or whichever of the two is not empty.
fn prefixed(head: &str, tail: &str) -> String {
    match (head.is_empty(), tail.is_empty()) {
        (_, true) => head.to_owned(),
        (true, false) => tail.to_owned(),
        (false, false) => format!("{head}: {tail}"),
    }
}

#[cfg(test)]
mod tests;
