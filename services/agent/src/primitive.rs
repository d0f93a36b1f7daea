//! What both executors share about primitives: the labels and annotations that tie a
//! primitive to its execution, reading them back, and turning an engine-neutral
//! [`Observation`] into the protocol's `StatusReport`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wfe_core::failure::FailureDetails;
use wfe_core::naming::sanitize_label_value;
use wfe_k8s::labels;
use wfe_proto::agent::{Assign, Cancel, ExecutionKey, PrimitivePhase, StatusReport};
use wfe_proto::v1 as pb;

/// Label selector of every primitive an engine's agents own.
pub fn owned_selector(engine: &str) -> String {
    format!(
        "{}={},{}={engine}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::EXECUTION_ENGINE
    )
}

/// Label selector of the primitives of one execution (any attempt).
pub fn execution_selector(engine: &str, uid: &str) -> String {
    format!(
        "{},{}={}",
        owned_selector(engine),
        labels::WORKFLOW_EXECUTION_UID,
        sanitize_label_value(uid)
    )
}

/// Labels of a primitive (reference §3.13, plus managed-by, engine, execution UID and
/// attempt so an agent finds and adopts it after any restart).
pub fn primitive_labels(a: &Assign, engine: &str) -> BTreeMap<String, String> {
    let key = a.execution.clone().unwrap_or_default();
    let workflow_id = a
        .workflow_ref
        .as_ref()
        .map(|w| w.workflow_id.as_str())
        .unwrap_or_default();
    [
        (labels::WORKFLOW_EXECUTION, sanitize_label_value(&key.name)),
        (
            labels::SOURCE_NAMESPACE,
            sanitize_label_value(&key.namespace),
        ),
        (
            labels::WORKFLOW_EXECUTION_UID,
            sanitize_label_value(&key.uid),
        ),
        (labels::WORKFLOW_ID, sanitize_label_value(workflow_id)),
        (
            labels::TARGET_RESOURCE,
            sanitize_label_value(&a.target_resource),
        ),
        (labels::EXECUTION_ENGINE, engine.to_owned()),
        (labels::MANAGED_BY, labels::MANAGED_BY_VALUE.to_owned()),
        (labels::ATTEMPT, a.attempt.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Annotation with the workflow id, unsanitized (the label may be truncated).
pub const WORKFLOW_ID_ANNOTATION: &str = "kubernaut.ai/workflow-id";
/// Annotation with the WorkflowExecution name, unsanitized.
pub const EXECUTION_NAME_ANNOTATION: &str = "kubernaut.ai/workflow-execution";

/// Annotations of a primitive: the raw target, the fencing token, the remediation request.
pub fn primitive_annotations(a: &Assign) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        labels::TARGET_RESOURCE_ANNOTATION.to_owned(),
        a.target_resource.clone(),
    );
    out.insert(
        labels::FENCING_TOKEN_ANNOTATION.to_owned(),
        a.fencing_token.to_string(),
    );
    if let Some(w) = &a.workflow_ref {
        out.insert(WORKFLOW_ID_ANNOTATION.to_owned(), w.workflow_id.clone());
    }
    if let Some(k) = &a.execution {
        out.insert(EXECUTION_NAME_ANNOTATION.to_owned(), k.name.clone());
    }
    if let Some(rr) = a
        .remediation_request_ref
        .as_ref()
        .filter(|r| !r.name.is_empty())
    {
        out.insert(
            labels::REMEDIATION_REQUEST_ANNOTATION.to_owned(),
            rr.name.clone(),
        );
    }
    out
}

/// Who a primitive belongs to, read back from its labels and annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    /// The execution.
    pub key: ExecutionKey,
    /// Attempt that created (or last adopted) it.
    pub attempt: u32,
    /// Fencing token of that assignment.
    pub fencing_token: u64,
    /// Workflow id, for the summary.
    pub workflow_id: String,
    /// Raw target, for the summary.
    pub target: String,
}

/// Reads the owner of a primitive; `None` when it lacks the execution UID label.
pub fn owner_of(meta: &ObjectMeta) -> Option<Owner> {
    let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let ann = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let uid = label(labels::WORKFLOW_EXECUTION_UID).filter(|u| !u.is_empty())?;
    Some(Owner {
        key: ExecutionKey {
            name: ann(EXECUTION_NAME_ANNOTATION)
                .or_else(|| label(labels::WORKFLOW_EXECUTION))
                .unwrap_or_default(),
            namespace: label(labels::SOURCE_NAMESPACE).unwrap_or_default(),
            uid,
        },
        attempt: label(labels::ATTEMPT)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        fencing_token: ann(labels::FENCING_TOKEN_ANNOTATION)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        workflow_id: ann(WORKFLOW_ID_ANNOTATION)
            .or_else(|| label(labels::WORKFLOW_ID))
            .unwrap_or_default(),
        target: ann(labels::TARGET_RESOURCE_ANNOTATION).unwrap_or_default(),
    })
}

/// Task progress and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Tasks finished successfully.
    pub completed: u32,
    /// Tasks in the workflow.
    pub total: u32,
    /// Times the workload was retried.
    pub retries: u32,
}

/// What an executor's status mapper concludes about a primitive, engine-neutral.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Phase.
    pub phase: PrimitivePhase,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the workflow started running.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub completed_at: Option<Timestamp>,
    /// Progress and retries.
    pub progress: Progress,
    /// Set when phase is Failed.
    pub failure: Option<FailureDetails>,
}

impl Observation {
    /// A non-failed observation.
    pub fn new(phase: PrimitivePhase, reason: &str, message: impl Into<String>) -> Self {
        Self {
            phase,
            reason: reason.to_owned(),
            message: message.into(),
            started_at: None,
            completed_at: None,
            progress: Progress::default(),
            failure: None,
        }
    }

    /// A failure, with the summary filled from the owner.
    pub fn failed(details: FailureDetails, owner: &Owner) -> Self {
        let details = details.with_summary(&owner.workflow_id, &owner.target);
        Self {
            reason: details.reason.as_str().to_owned(),
            message: details.message.clone(),
            completed_at: Some(details.failed_at),
            failure: Some(details),
            ..Self::new(PrimitivePhase::Failed, "", "")
        }
    }
}

/// Converts a timestamp.
pub fn to_proto_time(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// Converts a duration (saturating).
pub fn to_proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Converts failure details to the wire type.
pub fn failure_to_proto(d: &FailureDetails) -> pb::FailureDetails {
    pb::FailureDetails {
        reason: pb::FailureReason::from(d.reason) as i32,
        message: d.message.clone(),
        failed_task_index: d.failed_task_index.unwrap_or(0),
        failed_task_name: d.failed_task_name.clone().unwrap_or_default(),
        failed_step_name: d.failed_step_name.clone().unwrap_or_default(),
        exit_code: d.exit_code,
        failed_at: Some(to_proto_time(d.failed_at)),
        execution_time_before_failure: d.execution_time_before_failure.map(to_proto_duration),
        natural_language_summary: d.natural_language_summary.clone(),
        was_execution_failure: d.was_execution_failure,
        retry_safe: d.retry_safe(),
    }
}

/// Builds the report for a primitive from its owner, reference and observation.
pub fn report(
    owner: &Owner,
    primitive: Option<pb::PrimitiveReference>,
    obs: &Observation,
    now: Timestamp,
) -> StatusReport {
    StatusReport {
        execution: Some(owner.key.clone()),
        attempt: owner.attempt,
        fencing_token: owner.fencing_token,
        phase: obs.phase as i32,
        reason: obs.reason.clone(),
        message: obs.message.clone(),
        primitive,
        progress: Some(pb::ExecutionSummary {
            completed_tasks: obs.progress.completed,
            total_tasks: obs.progress.total,
            retry_count: obs.progress.retries,
        }),
        failure: obs.failure.as_ref().map(failure_to_proto),
        started_at: obs.started_at.map(to_proto_time),
        completed_at: obs.completed_at.map(to_proto_time),
        observed_at: Some(to_proto_time(now)),
    }
}

/// What a Cancel asks for, for failure messages: its reason, or `cancelled`.
pub fn cancel_reason(c: &Cancel) -> String {
    if c.reason.is_empty() {
        "cancelled".to_owned()
    } else {
        c.reason.clone()
    }
}

/// The owner to report on when a Cancel names an execution whose primitive does not exist.
pub fn owner_from_cancel(c: &Cancel) -> Owner {
    Owner {
        key: c.execution.clone().unwrap_or_default(),
        fencing_token: c.fencing_token,
        ..Owner::default()
    }
}

/// The owner an Assign describes (before the primitive exists).
pub fn owner_from_assign(a: &Assign) -> Owner {
    Owner {
        key: a.execution.clone().unwrap_or_default(),
        attempt: a.attempt,
        fencing_token: a.fencing_token,
        workflow_id: a
            .workflow_ref
            .as_ref()
            .map(|w| w.workflow_id.clone())
            .unwrap_or_default(),
        target: a.target_resource.clone(),
    }
}

/// A reference to a primitive.
pub fn primitive_ref(
    cluster_id: &str,
    api_version: &str,
    kind: &str,
    meta: &ObjectMeta,
) -> pb::PrimitiveReference {
    pb::PrimitiveReference {
        cluster_id: cluster_id.to_owned(),
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
    }
}

/// Converts a Kubernetes time.
pub fn k8s_time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Timestamp {
    t.0
}

#[cfg(test)]
mod tests;
