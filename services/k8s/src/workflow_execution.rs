//! The `WorkflowExecution` custom resource (`kubernaut.ai/v1alpha1`, short name `wfe`).
//!
//! The resource is the source of truth: workflow-api persists every accepted
//! request as one, writes its status from agent reports, and rebuilds its state
//! from them after a restart. The spec is immutable after creation (a CEL rule
//! added in [`crate::crd`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to run, where and on what. Immutable once created.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubernaut.ai",
    version = "v1alpha1",
    kind = "WorkflowExecution",
    plural = "workflowexecutions",
    shortname = "wfe",
    category = "kubernaut",
    namespaced,
    status = "WorkflowExecutionStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.executionEngine"}"#,
    printcolumn = r#"{"name":"Workflow","type":"string","jsonPath":".spec.workflowRef.workflowName"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetResource"}"#,
    printcolumn = r#"{"name":"Duration","type":"string","jsonPath":".status.duration"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowExecutionSpec {
    /// The RemediationRequest this execution belongs to; its name is the audit correlation id.
    pub remediation_request_ref: RemediationRequestRef,
    /// The workflow to run (an immutable catalog snapshot).
    pub workflow_ref: WorkflowRef,
    /// `job` or `tekton`.
    #[serde(default = "default_engine")]
    #[schemars(schema_with = "engine_schema")]
    pub execution_engine: String,
    /// `namespace/Kind/name`, or `Kind/name` for cluster-scoped targets.
    pub target_resource: String,
    /// Which cluster's agents run the workflow; empty for the local cluster.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_id: String,
    /// Workflow parameters (UPPER_SNAKE_CASE keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// How to run it.
    #[serde(default)]
    pub execution_config: ExecutionConfig,
    /// The analysis' confidence, 0 to 1 (audit only).
    #[serde(default)]
    pub confidence: f64,
    /// Why this remediation was chosen (audit only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rationale: String,
}

fn default_engine() -> String {
    "tekton".to_string()
}

fn engine_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["job", "tekton"],
        "default": "tekton",
        "description": "`job` or `tekton`."
    })
}

/// Reference to the parent RemediationRequest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediationRequestRef {
    /// Name of the RemediationRequest.
    pub name: String,
    /// Namespace of the RemediationRequest.
    pub namespace: String,
    /// UID of the RemediationRequest, if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The workflow snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRef {
    /// Catalog id of the workflow.
    pub workflow_id: String,
    /// Human-readable workflow name.
    pub workflow_name: String,
    /// Remediation action type, e.g. `RestartPod`.
    pub action_type: String,
    /// Workflow version.
    pub version: String,
    /// OCI reference pinned by digest: the image (job) or the Tekton bundle (tekton).
    pub container_image: String,
}

/// How to run the workflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionConfig {
    /// A pre-existing service account in the execution namespace; empty means `default`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// The relative timeout the caller asked for (Go duration, e.g. `30m0s`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The absolute deadline, computed at acceptance when a timeout was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times_out_at: Option<Time>,
    /// Secrets and config maps the workflow mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
    /// Container resources (job engine only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The parameter allow-list; absent means no filtering, empty strips all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_parameter_names: Option<Vec<String>>,
}

/// Secrets and config maps the workflow needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    /// Secrets, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<NamedDependency>,
    /// ConfigMaps, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_maps: Vec<NamedDependency>,
}

/// A dependency by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NamedDependency {
    /// Object name in the execution namespace.
    pub name: String,
}

/// Container requests and limits, as quantities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    /// Requests, e.g. `cpu: 100m`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits, e.g. `memory: 256Mi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// The observed state of an execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowExecutionStatus {
    /// `Pending`, `Running`, `Completed`, `Failed` or `Skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "phase_schema")]
    pub phase: Option<wfe_core::Phase>,
    /// When the workflow started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the execution reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// completionTime - startTime, as a Go duration (`1m30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// A human-readable summary of the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the execution is Failed or Skipped, in one CamelCase word (as a Pod's
    /// `status.reason`): the failure reason (TaskFailed, OOMKilled, …) or the first
    /// blocker's reason (ResourceBusy, RecentlyRemediated, …). `kubectl get wfe` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The engine primitive, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_ref: Option<ExecutionRef>,
    /// Task progress and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ExecutionSummary>,
    /// Mirror of failureDetails.reason, which RemediationOrchestrator reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub failure_reason: Option<wfe_core::FailureReason>,
    /// Set when the phase is Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_details: Option<FailureDetails>,
    /// Set when the phase is Skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_details: Option<SkipDetails>,
    /// Set when a person cleared the block this execution raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_clearance: Option<BlockClearance>,
    /// Set when cancellation was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_request: Option<CancelRequest>,
    /// Conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Assignment attempt, starting at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The current assignment to an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<Assignment>,
}

fn phase_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Pending", "Running", "Completed", "Failed", "Skipped"]
    })
}

/// The engine primitive an execution runs as.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRef {
    /// Cluster of the primitive; empty for the local cluster.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster_id: String,
    /// `batch/v1` or `tekton.dev/v1`.
    pub api_version: String,
    /// `Job` or `PipelineRun`.
    pub kind: String,
    /// Namespace of the primitive.
    pub namespace: String,
    /// Name of the primitive.
    pub name: String,
    /// UID of the primitive, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// Task progress and retries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionSummary {
    /// Tasks completed successfully.
    pub completed_tasks: u32,
    /// Tasks in the workflow.
    pub total_tasks: u32,
    /// Engine retries.
    pub retry_count: u32,
}

/// Why and where an execution failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureDetails {
    /// The failure class (OOMKilled, DeadlineExceeded, Forbidden, ResourceExhausted,
    /// ConfigurationError, ImagePullBackOff, TaskFailed, UnsupportedEngine, Cancelled,
    /// AgentLost, Unknown).
    #[schemars(schema_with = "failure_reason_schema")]
    pub reason: wfe_core::FailureReason,
    /// What happened.
    pub message: String,
    /// Index of the failed task (Tekton).
    #[serde(default)]
    pub failed_task_index: u32,
    /// Name of the failed task.
    #[serde(default)]
    pub failed_task_name: String,
    /// Name of the failed step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step_name: Option<String>,
    /// Exit code of the failed container or step; none for DeadlineExceeded (the code of a
    /// step stopped at the deadline is the engine's kill, not the workflow's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the failure was observed.
    pub failed_at: Time,
    /// How long the workflow ran before failing (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time_before_failure: Option<String>,
    /// Sentences a person can read in an alert.
    pub natural_language_summary: String,
    /// True when the workflow started and may have changed the target.
    #[serde(default)]
    pub was_execution_failure: bool,
}

fn failure_reason_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let reasons: Vec<&str> = wfe_core::failure::FailureReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    schemars::json_schema!({ "type": "string", "enum": reasons })
}

/// Why an execution was skipped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkipDetails {
    /// The first blocker's reason.
    pub reason: String,
    /// What blocked it.
    pub message: String,
    /// The execution holding or blocking the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting_execution: Option<ExecutionReference>,
    /// The earliest time a new execution may be admitted, if it clears by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_allowed_execution: Option<Time>,
    /// Every blocker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<Blocker>,
}

/// One safety rule that blocked an execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// ResourceBusy, RecentlyRemediated, PreviousExecutionFailed, ExponentialBackoff or ExhaustedRetries.
    pub reason: String,
    /// What blocks.
    pub message: String,
    /// The execution that causes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<ExecutionReference>,
    /// When it clears by itself; absent means a person must clear it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clears_at: Option<Time>,
}

/// A reference to a WorkflowExecution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// Who lifted the block this execution raised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockClearance {
    /// The authenticated identity.
    pub cleared_by: String,
    /// Why (at least 10 words).
    pub clear_reason: String,
    /// When.
    pub cleared_at: Time,
    /// How: `APIEndpoint` (ClearBlock) or `StatusField`.
    pub clear_method: String,
}

/// A request to cancel the execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    /// Who asked.
    pub requested_by: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// When.
    pub requested_at: Time,
}

/// The agent an execution is assigned to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// Agent replica id.
    pub agent_id: String,
    /// Session id the assignment was sent on.
    pub session_id: String,
    /// Fencing token; reports with an older one are refused.
    pub fencing_token: u64,
    /// When it was assigned.
    pub assigned_at: Time,
    /// Whether the agent acknowledged it.
    #[serde(default)]
    pub acknowledged: bool,
}
