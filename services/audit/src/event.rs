//! The audit event envelope (DataStorage `AuditEventRequest`, reference §3.5)
//! and one builder per event type.
//!
//! These are this service's own event kinds, as the JSON-lines file and the outbox hold
//! them: `workflow.skipped` and `workflow.cancelled` and some payload fields have no place
//! in DataStorage's contract. What DataStorage receives is their projection, [`crate::wire`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use wfe_core::FailureDetails;
use wfe_core::duration::{format_go, round_to_seconds};
use wfe_core::failure::error_details;

/// Category of every event of this service.
pub const CATEGORY: &str = "workflowexecution";
/// Actor id of events the service emits by itself.
pub const SERVICE_ACTOR: &str = "workflowexecution-controller";

/// `workflowexecution.workflow.started`
pub const WORKFLOW_STARTED: &str = "workflowexecution.workflow.started";
/// `workflowexecution.workflow.completed`
pub const WORKFLOW_COMPLETED: &str = "workflowexecution.workflow.completed";
/// `workflowexecution.workflow.failed`
pub const WORKFLOW_FAILED: &str = "workflowexecution.workflow.failed";
/// `workflowexecution.workflow.skipped`
pub const WORKFLOW_SKIPPED: &str = "workflowexecution.workflow.skipped";
/// `workflowexecution.workflow.cancelled`
pub const WORKFLOW_CANCELLED: &str = "workflowexecution.workflow.cancelled";
/// `workflowexecution.block.cleared`
pub const BLOCK_CLEARED: &str = "workflowexecution.block.cleared";

/// One audit event, as recorded (DataStorage receives [`crate::wire::requests`] of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Stable id: the same execution and event type always give the same id.
    pub event_id: String,
    /// Envelope version, `1.0`.
    pub version: String,
    /// e.g. `workflowexecution.workflow.completed`.
    pub event_type: String,
    /// When the transition happened.
    pub event_timestamp: Timestamp,
    /// Always `workflowexecution`.
    pub event_category: String,
    /// `started`, `completed`, `failed`, `skipped`, `cancelled`, `block_cleared`.
    pub event_action: String,
    /// `success` or `failure`.
    pub event_outcome: String,
    /// `service` or `user`.
    pub actor_type: String,
    /// The service, or the person who cleared a block.
    pub actor_id: String,
    /// Always `WorkflowExecution`.
    pub resource_type: String,
    /// The execution's name (its UID for block.cleared, as upstream).
    pub resource_id: String,
    /// The RemediationRequest name.
    pub correlation_id: String,
    /// The execution's namespace.
    pub namespace: String,
    /// The execution's cluster, when not local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The payload, discriminated by `event_type`.
    pub event_data: Value,
}

/// What the events say about an execution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionFacts {
    /// WorkflowExecution name.
    pub name: String,
    /// WorkflowExecution namespace.
    pub namespace: String,
    /// WorkflowExecution UID (the event id is derived from it).
    pub uid: String,
    /// RemediationRequest name: the correlation id.
    pub remediation_request: String,
    /// Cluster id; empty for the local cluster.
    pub cluster_id: String,
    /// `job` or `tekton`.
    pub execution_engine: String,
    /// Catalog workflow id.
    pub workflow_id: String,
    /// Workflow name.
    pub workflow_name: String,
    /// Workflow version.
    pub workflow_version: String,
    /// Action type.
    pub action_type: String,
    /// Image or bundle.
    pub container_image: String,
    /// The target.
    pub target_resource: String,
    /// Parameters as passed to the workflow.
    pub parameters: BTreeMap<String, String>,
    /// Phase after the transition.
    pub phase: String,
    /// When the workflow started.
    pub started_at: Option<Timestamp>,
    /// When the execution ended.
    pub completed_at: Option<Timestamp>,
    /// The engine primitive's name.
    pub primitive_name: Option<String>,
    /// Engine retries.
    pub retry_count: u32,
}

/// The stable id of an execution's event of a type: 32 hex characters of
/// sha256(`<uid>/<event type>`).
pub fn event_id(uid: &str, event_type: &str) -> String {
    let digest = Sha256::digest(format!("{uid}/{event_type}").as_bytes());
    hex::encode(&digest[..16])
}

impl ExecutionFacts {
    fn envelope(
        &self,
        event_type: &str,
        action: &str,
        outcome: &str,
        at: Timestamp,
        data: Map<String, Value>,
    ) -> AuditEvent {
        AuditEvent {
            event_id: event_id(&self.uid, event_type),
            version: "1.0".into(),
            event_type: event_type.into(),
            event_timestamp: at,
            event_category: CATEGORY.into(),
            event_action: action.into(),
            event_outcome: outcome.into(),
            actor_type: "service".into(),
            actor_id: SERVICE_ACTOR.into(),
            resource_type: "WorkflowExecution".into(),
            resource_id: self.name.clone(),
            correlation_id: self.remediation_request.clone(),
            namespace: self.namespace.clone(),
            cluster_id: (!self.cluster_id.is_empty()).then(|| self.cluster_id.clone()),
            event_data: Value::Object(data),
        }
    }

    /// The identity fields every payload carries.
    fn identity(&self, event_type: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("event_type".into(), json!(event_type));
        m.insert("execution_name".into(), json!(self.name));
        m.insert("execution_engine".into(), json!(self.execution_engine));
        m.insert("workflow_id".into(), json!(self.workflow_id));
        m.insert("workflow_version".into(), json!(self.workflow_version));
        if !self.workflow_name.is_empty() {
            m.insert("workflow_name".into(), json!(self.workflow_name));
        }
        m.insert("action_type".into(), json!(self.action_type));
        m.insert("container_image".into(), json!(self.container_image));
        m.insert("target_resource".into(), json!(self.target_resource));
        m.insert("phase".into(), json!(self.phase));
        if !self.parameters.is_empty() {
            m.insert("parameters".into(), json!(self.parameters));
        }
        if let Some(p) = &self.primitive_name {
            // Upstream's name for the primitive, kept for every engine.
            m.insert("pipelinerun_name".into(), json!(p));
        }
        m
    }

    /// Adds started_at, completed_at, duration and retry_count.
    fn timing(&self, m: &mut Map<String, Value>) {
        if let Some(s) = self.started_at {
            m.insert("started_at".into(), json!(s));
        }
        if let Some(c) = self.completed_at {
            m.insert("completed_at".into(), json!(c));
        }
        if let (Some(s), Some(c)) = (self.started_at, self.completed_at) {
            // Rounded as status.duration is, so the event and the resource agree.
            let d: Duration = c.duration_since(s).try_into().unwrap_or_default();
            m.insert("duration".into(), json!(format_go(round_to_seconds(d))));
        }
        if self.retry_count > 0 {
            m.insert("retry_count".into(), json!(self.retry_count));
        }
    }

    /// The workflow started running.
    pub fn started(&self, at: Timestamp) -> AuditEvent {
        let mut data = self.identity(WORKFLOW_STARTED);
        self.timing(&mut data);
        self.envelope(WORKFLOW_STARTED, "started", "success", at, data)
    }

    /// The workflow completed.
    pub fn completed(&self, at: Timestamp) -> AuditEvent {
        let mut data = self.identity(WORKFLOW_COMPLETED);
        self.timing(&mut data);
        self.envelope(WORKFLOW_COMPLETED, "completed", "success", at, data)
    }

    /// The workflow failed (before or after it started).
    pub fn failed(&self, details: Option<&FailureDetails>, at: Timestamp) -> AuditEvent {
        let mut data = self.identity(WORKFLOW_FAILED);
        self.timing(&mut data);
        if let Some(d) = details {
            data.insert("failure_reason".into(), json!(d.reason.as_str()));
            data.insert("failure_message".into(), json!(d.message));
            data.insert(
                "was_execution_failure".into(),
                json!(d.was_execution_failure),
            );
            if let Some(task) = d.failed_task_name.as_deref().filter(|t| !t.is_empty()) {
                data.insert("failed_task_name".into(), json!(task));
            }
            if let Some(code) = d.exit_code {
                data.insert("exit_code".into(), json!(code));
            }
        }
        data.insert("error_details".into(), json!(error_details(details)));
        self.envelope(WORKFLOW_FAILED, "failed", "failure", at, data)
    }

    /// A safety rule refused the execution. `blockers` are (reason, message) pairs.
    pub fn skipped(&self, blockers: &[(String, String)], at: Timestamp) -> AuditEvent {
        let mut data = self.identity(WORKFLOW_SKIPPED);
        if let Some((reason, message)) = blockers.first() {
            data.insert("skip_reason".into(), json!(reason));
            data.insert("skip_message".into(), json!(message));
        }
        let all: Vec<Value> = blockers
            .iter()
            .map(|(r, m)| json!({"reason": r, "message": m}))
            .collect();
        data.insert("blockers".into(), Value::Array(all));
        self.envelope(WORKFLOW_SKIPPED, "skipped", "success", at, data)
    }

    /// The execution was cancelled by `by`.
    pub fn cancelled(&self, by: &str, reason: &str, at: Timestamp) -> AuditEvent {
        let mut data = self.identity(WORKFLOW_CANCELLED);
        self.timing(&mut data);
        data.insert("cancelled_by".into(), json!(by));
        data.insert("cancel_reason".into(), json!(reason));
        let mut event = self.envelope(WORKFLOW_CANCELLED, "cancelled", "success", at, data);
        if !by.is_empty() {
            event.actor_type = "user".into();
            event.actor_id = by.into();
        }
        event
    }

    /// A person cleared the block this execution raised (upstream's webhook payload).
    pub fn block_cleared(&self, cleared_by: &str, reason: &str, at: Timestamp) -> AuditEvent {
        let data = json!({
            "event_type": BLOCK_CLEARED,
            "workflow_name": self.name,
            "execution_engine": self.execution_engine,
            "target_resource": self.target_resource,
            "clear_reason": reason,
            "cleared_at": at,
            "cleared_by": cleared_by,
            "previous_state": "Blocked",
            "new_state": "Running",
        });
        let Value::Object(data) = data else {
            unreachable!("json! of an object literal is an object")
        };
        let mut event = self.envelope(BLOCK_CLEARED, "block_cleared", "success", at, data);
        event.actor_type = "user".into();
        event.actor_id = cleared_by.into();
        event.resource_id = self.uid.clone();
        event
    }
}

#[cfg(test)]
mod tests;
