//! Audit glue: what the API records, turned into `wfe-audit` events and handed to its
//! [`Auditor`] (a JSON-lines file, or DataStorage behind a durable on-disk outbox).
//!
//! Events are recorded after the status write that made the transition has committed, once
//! per transition; the event id is stable (hash of execution UID and event type), so a
//! regenerated event (see [`recorder`]) is dropped by the sink or receiver.
//! Which events were recorded is kept in the AuditRecorded condition of the execution; it
//! names this service's own event types, which DataStorage receives in its contract's form
//! and types (`wfe_audit::wire`, docs/audit-events.md).

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wfe_audit::event as ev;
use wfe_audit::{AuditConfig, AuditEvent, AuditStats, Auditor, ExecutionFacts, SinkConfig};
use wfe_core::FailureDetails;
use wfe_k8s::WorkflowExecution;

use crate::config::{AuditSinkKind, Config};
use intents::{Intent, IntentJournal};

pub mod events;
pub mod intents;
pub mod recorder;

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
            Self::Started => ev::WORKFLOW_STARTED,
            Self::Completed => ev::WORKFLOW_COMPLETED,
            Self::Failed => ev::WORKFLOW_FAILED,
            Self::Skipped => ev::WORKFLOW_SKIPPED,
            Self::Cancelled { .. } => ev::WORKFLOW_CANCELLED,
            Self::BlockCleared { .. } => ev::BLOCK_CLEARED,
        }
    }
}

/// Every event type, to read the AuditRecorded condition back.
pub const EVENT_TYPES: [&str; 6] = [
    ev::WORKFLOW_STARTED,
    ev::WORKFLOW_COMPLETED,
    ev::WORKFLOW_FAILED,
    ev::WORKFLOW_SKIPPED,
    ev::WORKFLOW_CANCELLED,
    ev::BLOCK_CLEARED,
];

/// The API's audit trail: builds events and records them through the `wfe-audit` auditor.
#[derive(Debug, Clone)]
pub struct Audit {
    auditor: Auditor,
    intents: Arc<IntentJournal>,
    leftover: Arc<parking_lot::Mutex<Vec<Intent>>>,
}

impl Audit {
    /// Opens the sink the configuration names; for DataStorage, spawns the outbox delivery
    /// worker, which stops with `shutdown` (its tasks are returned, to abort on a hard stop).
    pub async fn open(
        config: &Config,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<(Self, Vec<JoinHandle<()>>)> {
        let sink = match config.audit_sink {
            AuditSinkKind::File => SinkConfig::JsonlFile(config.audit_file.clone()),
            AuditSinkKind::Datastorage => SinkConfig::DataStorage {
                url: config.datastorage_url.clone().ok_or_else(|| {
                    anyhow::anyhow!("--audit-sink datastorage needs --datastorage-url")
                })?,
                outbox_dir: config.audit_outbox_dir.clone(),
            },
        };
        let mut audit_config = AuditConfig::new(sink);
        // Short first retry: a DataStorage that is back should not wait long.
        audit_config.initial_backoff = config.audit_retry_base;
        audit_config.max_backoff = audit_config.max_backoff.max(config.audit_retry_base);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (auditor, worker) = Auditor::open(audit_config, stop_rx).await?;
        let mut tasks = Vec::new();
        if let Some(worker) = worker {
            let stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                stop.cancelled().await;
                let _ = stop_tx.send(true);
            }));
            tasks.push(tokio::spawn(worker.run()));
        }
        let path = config.audit_intents_path();
        let (intents, leftover) = IntentJournal::open(&path).map_err(|e| {
            anyhow::anyhow!("opening the audit intent journal {}: {e}", path.display())
        })?;
        let me = Self {
            auditor,
            intents,
            leftover: Arc::new(parking_lot::Mutex::new(leftover)),
        };
        Ok((me, tasks))
    }

    /// The write-ahead journal of transitions whose events are being recorded.
    pub fn intents(&self) -> &Arc<IntentJournal> {
        &self.intents
    }

    /// The intents an earlier process left, once (for the replay).
    pub fn take_leftover_intents(&self) -> Vec<Intent> {
        std::mem::take(&mut *self.leftover.lock())
    }

    /// Records one event about `exec` (its state after the transition); returns once it is
    /// durable. A duplicate of an event already recorded is dropped, and that is success.
    pub async fn record(&self, exec: &WorkflowExecution, kind: &AuditKind) -> anyhow::Result<()> {
        self.auditor.record(&event(exec, kind)).await?;
        Ok(())
    }

    /// Counters (outbox depth, delivery failures) for the metrics.
    pub fn stats(&self) -> Arc<AuditStats> {
        self.auditor.stats()
    }
}

/// What the events say about an execution.
pub fn facts(exec: &WorkflowExecution) -> ExecutionFacts {
    let spec = &exec.spec;
    let status = exec.status.clone().unwrap_or_default();
    ExecutionFacts {
        name: exec.name_any(),
        namespace: exec.namespace().unwrap_or_default(),
        uid: exec.uid().unwrap_or_default(),
        remediation_request: spec.remediation_request_ref.name.clone(),
        cluster_id: spec.cluster_id.clone(),
        execution_engine: spec.execution_engine.clone(),
        workflow_id: spec.workflow_ref.workflow_id.clone(),
        workflow_name: spec.workflow_ref.workflow_name.clone(),
        workflow_version: spec.workflow_ref.version.clone(),
        action_type: spec.workflow_ref.action_type.clone(),
        container_image: spec.workflow_ref.container_image.clone(),
        target_resource: spec.target_resource.clone(),
        parameters: spec.parameters.clone().into_iter().collect(),
        phase: status
            .phase
            .unwrap_or(wfe_core::Phase::Pending)
            .as_str()
            .to_owned(),
        started_at: status.start_time.as_ref().map(|t| t.0),
        completed_at: status.completion_time.as_ref().map(|t| t.0),
        primitive_name: status.execution_ref.as_ref().map(|r| r.name.clone()),
        retry_count: status.summary.as_ref().map_or(0, |s| s.retry_count),
    }
}

/// When the transition of `kind` happened, from the status; a regenerated event keeps the
/// original time. Falls back to now.
fn occurred_at(exec: &WorkflowExecution, kind: &AuditKind) -> Timestamp {
    let Some(st) = exec.status.as_ref() else {
        return Timestamp::now();
    };
    let t = match kind {
        AuditKind::Started => st.start_time.as_ref(),
        AuditKind::BlockCleared { .. } => st.block_clearance.as_ref().map(|b| &b.cleared_at),
        _ => st.completion_time.as_ref(),
    };
    t.map_or_else(Timestamp::now, |t| t.0)
}

/// The event of `kind` about `exec`.
pub fn event(exec: &WorkflowExecution, kind: &AuditKind) -> AuditEvent {
    let f = facts(exec);
    let at = occurred_at(exec, kind);
    match kind {
        AuditKind::Started => f.started(at),
        AuditKind::Completed => f.completed(at),
        AuditKind::Failed => f.failed(failure(exec).as_ref(), at),
        AuditKind::Skipped => f.skipped(&blockers(exec), at),
        AuditKind::Cancelled { by, reason } => f.cancelled(by, reason, at),
        AuditKind::BlockCleared { by, reason } => f.block_cleared(by, reason, at),
    }
}

fn failure(exec: &WorkflowExecution) -> Option<FailureDetails> {
    let f = exec.status.as_ref()?.failure_details.as_ref()?;
    let reason = f.reason;
    let mut d = FailureDetails::new(
        reason,
        f.message.clone(),
        f.was_execution_failure,
        f.failed_at.0,
    );
    d.failed_task_name = Some(f.failed_task_name.clone()).filter(|s| !s.is_empty());
    d.exit_code = f.exit_code;
    Some(d)
}

fn blockers(exec: &WorkflowExecution) -> Vec<(String, String)> {
    let Some(s) = exec.status.as_ref().and_then(|s| s.skip_details.as_ref()) else {
        return Vec::new();
    };
    let mut all: Vec<(String, String)> = s
        .blockers
        .iter()
        .map(|b| (b.reason.clone(), b.message.clone()))
        .collect();
    if all.is_empty() {
        all.push((s.reason.clone(), s.message.clone()));
    }
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_engine_correlation_and_stable_ids() {
        let mut w = WorkflowExecution::new("we-1", Default::default());
        w.metadata.namespace = Some("ns".into());
        w.metadata.uid = Some("u-1".into());
        w.spec.execution_engine = "job".into();
        w.spec.remediation_request_ref.name = "rr-1".into();
        let e = event(&w, &AuditKind::Completed);
        assert_eq!(e.event_data["execution_engine"], "job");
        assert_eq!(e.correlation_id, "rr-1");
        assert_eq!(e.event_type, "workflowexecution.workflow.completed");
        assert_eq!(e.event_id, event(&w, &AuditKind::Completed).event_id);
        assert_ne!(e.event_id, event(&w, &AuditKind::Started).event_id);
        assert_eq!(
            e.event_id,
            wfe_audit::event_id("u-1", e.event_type.as_str())
        );
    }
}
