//! Audit glue: what the API records, behind a small trait so the sink can be swapped
//! (the JSON-lines file here; the `wfe-audit` crate's outbox-backed DataStorage sink).
//!
//! Events are recorded after the status write that made the transition has committed, once
//! per transition; the event id is stable (hash of execution UID and event type), so a
//! receiver drops a redelivered event.

use std::path::Path;

use async_trait::async_trait;
use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use wfe_core::FailureReason;
use wfe_k8s::WorkflowExecution;

/// What happened to an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditKind {
    /// Pending → Running.
    Started,
    /// Running → Completed.
    Completed,
    /// → Failed (not cancelled).
    Failed,
    /// Created as Skipped.
    Skipped,
    /// → Failed with reason Cancelled.
    Cancelled {
        /// Who asked.
        by: String,
        /// Why.
        reason: String,
    },
    /// ClearBlock lifted the block this execution raised.
    BlockCleared {
        /// Authenticated identity.
        by: String,
        /// The reason given.
        reason: String,
    },
}

impl AuditKind {
    /// The event type, e.g. `workflowexecution.workflow.completed`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Started => "workflowexecution.workflow.started",
            Self::Completed => "workflowexecution.workflow.completed",
            Self::Failed => "workflowexecution.workflow.failed",
            Self::Skipped => "workflowexecution.workflow.skipped",
            Self::Cancelled { .. } => "workflowexecution.workflow.cancelled",
            Self::BlockCleared { .. } => "workflowexecution.block.cleared",
        }
    }
}

/// Where audit events go. `record` returns once the event is durable.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event about `exec` (its state after the transition).
    async fn record(
        &self,
        exec: &WorkflowExecution,
        kind: &AuditKind,
        at: Timestamp,
    ) -> anyhow::Result<()>;
    /// Events waiting for delivery (0 for sinks without an outbox).
    fn outbox_depth(&self) -> u64 {
        0
    }
    /// Deliveries that failed so far.
    fn delivery_failures(&self) -> u64 {
        0
    }
}

/// Stable event id: the first 32 hex characters of sha256(uid + event type).
pub fn event_id(uid: &str, event_type: &str) -> String {
    let d = hex::encode(Sha256::digest(format!("{uid}\n{event_type}").as_bytes()));
    d[..32].to_owned()
}

/// The upstream envelope (reference §3.5) with `execution_engine` in the payload.
pub fn envelope(exec: &WorkflowExecution, kind: &AuditKind, at: Timestamp) -> Value {
    let uid = exec.uid().unwrap_or_default();
    let spec = &exec.spec;
    let status = exec.status.clone().unwrap_or_default();
    let (action, outcome, actor_type, actor_id) = match kind {
        AuditKind::Started => ("started", "success", "service", "workflow-api".to_owned()),
        AuditKind::Completed => ("completed", "success", "service", "workflow-api".to_owned()),
        AuditKind::Failed => ("failed", "failure", "service", "workflow-api".to_owned()),
        AuditKind::Skipped => ("skipped", "success", "service", "workflow-api".to_owned()),
        AuditKind::Cancelled { by, .. } => ("cancelled", "failure", "user", by.clone()),
        AuditKind::BlockCleared { by, .. } => ("block_cleared", "success", "user", by.clone()),
    };
    let mut data = json!({
        "event_type": kind.event_type(),
        "execution_name": exec.name_any(),
        "execution_engine": spec.execution_engine,
        "workflow_id": spec.workflow_ref.workflow_id,
        "workflow_name": spec.workflow_ref.workflow_name,
        "workflow_version": spec.workflow_ref.version,
        "action_type": spec.workflow_ref.action_type,
        "container_image": spec.workflow_ref.container_image,
        "target_resource": spec.target_resource,
        "phase": status.phase.clone().unwrap_or_else(|| "Pending".into()),
    });
    let extra = payload_extra(exec, kind);
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let mut env = json!({
        "event_id": event_id(&uid, kind.event_type()),
        "version": "1.0",
        "event_type": kind.event_type(),
        "event_timestamp": at.to_string(),
        "event_category": "workflowexecution",
        "event_action": action,
        "event_outcome": outcome,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "resource_type": "WorkflowExecution",
        "resource_id": if matches!(kind, AuditKind::BlockCleared { .. }) { uid.clone() } else { exec.name_any() },
        "correlation_id": spec.remediation_request_ref.name,
        "namespace": exec.namespace().unwrap_or_default(),
        "event_data": data,
    });
    if !spec.cluster_id.is_empty() {
        env["cluster_id"] = json!(spec.cluster_id);
    }
    env
}

fn payload_extra(exec: &WorkflowExecution, kind: &AuditKind) -> Value {
    let status = exec.status.clone().unwrap_or_default();
    let mut v = json!({});
    if let Some(t) = &status.start_time {
        v["started_at"] = json!(t.0.to_string());
    }
    if let Some(t) = &status.completion_time {
        v["completed_at"] = json!(t.0.to_string());
    }
    if let Some(d) = &status.duration {
        v["duration"] = json!(d);
    }
    if let Some(r) = &status.execution_ref {
        v["pipelinerun_name"] = json!(r.name);
    }
    if !exec.spec.parameters.is_empty() {
        v["parameters"] = json!(exec.spec.parameters);
    }
    match kind {
        AuditKind::Failed | AuditKind::Cancelled { .. } => {
            if let Some(f) = &status.failure_details {
                let reason = FailureReason::parse(&f.reason).unwrap_or(FailureReason::Unknown);
                let (code, retry) = wfe_core::failure::error_code(reason, f.was_execution_failure);
                v["failure_reason"] = json!(f.reason);
                v["failure_message"] = json!(f.message);
                if !f.failed_task_name.is_empty() {
                    v["failed_task_name"] = json!(f.failed_task_name);
                }
                v["error_details"] = json!({
                    "code": code.as_str(),
                    "message": f.message,
                    "component": wfe_core::failure::AUDIT_COMPONENT,
                    "retry_possible": retry,
                });
            }
            if let AuditKind::Cancelled { reason, .. } = kind {
                v["cancel_reason"] = json!(reason);
            }
        }
        AuditKind::Skipped => {
            if let Some(s) = &status.skip_details {
                v["skip_reason"] = json!(s.reason);
                v["skip_message"] = json!(s.message);
            }
        }
        AuditKind::BlockCleared { reason, .. } => {
            v["clear_reason"] = json!(reason);
            v["previous_state"] = json!("Blocked");
            v["new_state"] = json!("Cleared");
        }
        AuditKind::Started | AuditKind::Completed => {}
    }
    v
}

/// Appends one JSON object per line to a file; durable when `record` returns (fsync).
#[derive(Debug)]
pub struct JsonlSink {
    file: tokio::sync::Mutex<tokio::fs::File>,
}

impl JsonlSink {
    /// Opens (creating) the file for appending.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .with_context(|| format!("opening audit file {}", path.display()))?;
        Ok(Self {
            file: tokio::sync::Mutex::new(file),
        })
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    async fn record(
        &self,
        exec: &WorkflowExecution,
        kind: &AuditKind,
        at: Timestamp,
    ) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&envelope(exec, kind, at))?;
        line.push(b'\n');
        let mut f = self.file.lock().await;
        f.write_all(&line).await?;
        // tokio buffers file writes: flush before the fsync so the line is on disk.
        f.flush().await?;
        f.sync_data().await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_per_uid_and_type() {
        assert_eq!(event_id("u1", "a"), event_id("u1", "a"));
        assert_ne!(event_id("u1", "a"), event_id("u1", "b"));
        assert_ne!(event_id("u1", "a"), event_id("u2", "a"));
    }

    #[test]
    fn envelope_carries_engine_and_correlation() {
        let mut w = WorkflowExecution::new("we-1", Default::default());
        w.metadata.namespace = Some("ns".into());
        w.spec.execution_engine = "job".into();
        w.spec.remediation_request_ref.name = "rr-1".into();
        let e = envelope(&w, &AuditKind::Completed, Timestamp::UNIX_EPOCH);
        assert_eq!(e["event_data"]["execution_engine"], "job");
        assert_eq!(e["correlation_id"], "rr-1");
        assert_eq!(e["event_type"], "workflowexecution.workflow.completed");
        assert!(e.get("cluster_id").is_none());
    }
}
