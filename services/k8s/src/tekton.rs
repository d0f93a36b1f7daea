//! The parts of Tekton's `tekton.dev/v1` PipelineRun and TaskRun that the
//! tekton-agent builds and reads. Unknown fields are ignored on read, so these
//! types work against a real Tekton whose objects carry much more.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `tekton.dev/v1` PipelineRun spec (the fields we use).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tekton.dev",
    version = "v1",
    kind = "PipelineRun",
    plural = "pipelineruns",
    namespaced,
    status = "PipelineRunStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    /// The pipeline to run, resolved remotely (bundles resolver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_ref: Option<PipelineRef>,
    /// String parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Workspace bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceBinding>,
    /// Service account and pod template for the TaskRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_run_template: Option<TaskRunTemplate>,
    /// Timeouts (Go durations such as `1h0m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// `Cancelled` (or `CancelledRunFinally`, `StoppedRunFinally`) to stop the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A remote pipeline reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PipelineRef {
    /// Resolver name, e.g. `bundles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Resolver parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
}

/// A string parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Param {
    /// Name.
    pub name: String,
    /// Value (we only use strings).
    pub value: String,
}

/// A workspace bound to a secret or config map.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceBinding {
    /// Workspace name (`secret-<n>` or `configmap-<n>`).
    pub name: String,
    /// Secret source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretSource>,
    /// ConfigMap source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
}

/// Secret workspace source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    /// Secret name.
    pub secret_name: String,
}

/// ConfigMap workspace source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigMapSource {
    /// ConfigMap name.
    pub name: String,
}

/// TaskRun template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunTemplate {
    /// Service account of the TaskRun pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Pod template (security context); kept as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<serde_json::Value>,
}

/// PipelineRun timeouts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Timeouts {
    /// Whole-pipeline timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

/// A knative-style condition as Tekton writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TektonCondition {
    /// Condition type, `Succeeded` for runs.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
    /// Last transition.
    #[serde(default)]
    pub last_transition_time: Option<Time>,
}

/// PipelineRun status (the fields we read).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    /// Conditions; `Succeeded` drives the phase.
    #[serde(default)]
    pub conditions: Vec<TektonCondition>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<Time>,
    /// Completion time.
    #[serde(default)]
    pub completion_time: Option<Time>,
    /// The TaskRuns (and other children) of the run, in pipeline order.
    #[serde(default)]
    pub child_references: Vec<ChildReference>,
}

/// A child of a PipelineRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildReference {
    /// API version of the child.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Kind of the child (`TaskRun`).
    #[serde(default)]
    pub kind: Option<String>,
    /// Child name.
    pub name: String,
    /// The pipeline task it runs.
    #[serde(default)]
    pub pipeline_task_name: Option<String>,
}

/// `tekton.dev/v1` TaskRun spec (we only read TaskRuns).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "tekton.dev",
    version = "v1",
    kind = "TaskRun",
    plural = "taskruns",
    namespaced,
    status = "TaskRunStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunSpec {
    /// Parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Anything else Tekton keeps in the spec.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// TaskRun status (the fields we read).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRunStatus {
    /// Conditions; `Succeeded` says how it ended.
    #[serde(default)]
    pub conditions: Vec<TektonCondition>,
    /// Pod that ran the steps.
    #[serde(default)]
    pub pod_name: Option<String>,
    /// Step states, in order.
    #[serde(default)]
    pub steps: Vec<StepState>,
    /// Start time.
    #[serde(default)]
    pub start_time: Option<Time>,
    /// Completion time.
    #[serde(default)]
    pub completion_time: Option<Time>,
}

/// One step's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepState {
    /// Step name.
    #[serde(default)]
    pub name: String,
    /// Container name (`step-<name>`).
    #[serde(default)]
    pub container: Option<String>,
    /// Set when the step's container terminated.
    #[serde(default)]
    pub terminated: Option<StepTerminated>,
}

/// A terminated step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepTerminated {
    /// Exit code.
    pub exit_code: i32,
    /// Reason (`Completed`, `Error`, `OOMKilled`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Message.
    #[serde(default)]
    pub message: Option<String>,
}
