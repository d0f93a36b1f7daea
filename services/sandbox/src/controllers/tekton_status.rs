//! Tekton's objects and status shapes (`tekton.dev/v1`), as JSON, plus the message
//! formats Tekton uses, so clients parsing real Tekton output parse ours.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use serde_json::{Value, json};

/// API version of PipelineRun and TaskRun.
pub const API_VERSION: &str = "tekton.dev/v1";
/// The single step every simulated task runs.
pub const STEP: &str = "run";

/// A `{name, value}` param; the value may be a string, array or object.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Param {
    /// Param name.
    #[serde(default)]
    pub name: String,
    /// Param value as given.
    #[serde(default)]
    pub value: Value,
}

/// `spec.pipelineRef`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct PipelineRef {
    /// A Pipeline in the cluster (not resolved by the sandbox: treated as found).
    #[serde(default)]
    pub name: Option<String>,
    /// Remote resolver (`bundles`, `git`, ...).
    #[serde(default)]
    pub resolver: Option<String>,
    /// Resolver params (`bundle`, `name`, `kind`).
    #[serde(default)]
    pub params: Vec<Param>,
}

/// `spec.timeouts`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Timeouts {
    /// Whole-pipeline timeout, a Go duration.
    #[serde(default)]
    pub pipeline: Option<String>,
}

/// The parts of a PipelineRun spec the simulation reads (unknown fields ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    /// Pipeline params.
    #[serde(default)]
    pub params: Vec<Param>,
    /// Reference to the Pipeline.
    #[serde(default)]
    pub pipeline_ref: Option<PipelineRef>,
    /// Inline pipeline.
    #[serde(default)]
    pub pipeline_spec: Option<Value>,
    /// `Cancelled`, `CancelledRunFinally`, `StoppedRunFinally`, `PipelineRunPending`.
    #[serde(default)]
    pub status: Option<String>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// Workspaces, copied to TaskRuns.
    #[serde(default)]
    pub workspaces: Option<Value>,
    /// `taskRunTemplate` (service account, pod template), copied to TaskRuns.
    #[serde(default)]
    pub task_run_template: Option<Value>,
}

impl PipelineRunSpec {
    /// String-valued params as `(name, value)` pairs.
    pub fn string_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .filter_map(|p| Some((p.name.as_str(), p.value.as_str()?)))
    }

    /// The `bundle` param of a `bundles` resolver reference.
    pub fn bundle(&self) -> Option<&str> {
        let r = self.pipeline_ref.as_ref()?;
        r.params.iter().find(|p| p.name == "bundle")?.value.as_str()
    }
}

/// A PipelineRun as the decision function sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineRunView {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID, for owner references.
    pub uid: String,
    /// Labels, propagated to TaskRuns as Tekton does.
    pub labels: BTreeMap<String, String>,
    /// Parsed spec.
    pub spec: PipelineRunSpec,
    /// Current status (`Null` when none).
    pub status: Value,
}

/// A TaskRun as the decision function sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskRunView {
    /// Name.
    pub name: String,
    /// Current status (`Null` when none).
    pub status: Value,
}

/// The `Succeeded` condition's status and reason, if set.
pub fn succeeded(status: &Value) -> Option<(&str, &str)> {
    let conditions = status.get("conditions")?.as_array()?;
    let c = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Succeeded"))?;
    Some((
        c.get("status")?.as_str()?,
        c.get("reason").and_then(Value::as_str).unwrap_or_default(),
    ))
}

/// A timestamp field of a status, parsed.
pub fn time_field(status: &Value, field: &str) -> Option<Timestamp> {
    status.get(field)?.as_str()?.parse().ok()
}

/// The `Succeeded` condition as Tekton writes it.
pub fn condition(status: &str, reason: &str, message: &str, now: Timestamp) -> Value {
    json!([{
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": Time(now),
    }])
}

/// Tekton's task tally: `Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1`,
/// with `Incomplete: n` while running.
pub fn tally(
    completed: usize,
    failed: usize,
    cancelled: usize,
    incomplete: Option<usize>,
    skipped: usize,
) -> String {
    let head = format!("Tasks Completed: {completed} (Failed: {failed}, Cancelled {cancelled})");
    match incomplete {
        Some(n) => format!("{head}, Incomplete: {n}, Skipped: {skipped}"),
        None => format!("{head}, Skipped: {skipped}"),
    }
}

/// The TaskRun name Tekton derives for a pipeline task (`<pr>-<task>`, kept ≤ 63).
pub fn taskrun_name(pipeline_run: &str, task: &str) -> String {
    let name = format!("{pipeline_run}-{task}");
    if name.len() <= 63 {
        return name;
    }
    // Like knative's ChildName: cut and append a hash so names stay unique.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("{hash:016x}");
    let keep: String = name.chars().take(63 - 17).collect();
    format!("{keep}-{suffix}")
}

/// The TaskRun object for one pipeline task.
pub fn new_taskrun(pr: &PipelineRunView, task: &str) -> Value {
    let mut labels = pr.labels.clone();
    labels.insert("tekton.dev/pipelineRun".into(), pr.name.clone());
    labels.insert("tekton.dev/pipelineTask".into(), task.into());
    labels.insert("tekton.dev/pipeline".into(), pipeline_name(pr));
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "tekton-pipelines".into(),
    );
    let template = pr.spec.task_run_template.clone().unwrap_or(Value::Null);
    let mut spec = json!({
        "params": pr.spec.params.iter().map(|p| json!({"name": p.name, "value": p.value})).collect::<Vec<_>>(),
        "taskRef": {"name": task, "kind": "Task"},
        "serviceAccountName": template.get("serviceAccountName").cloned().unwrap_or(json!("default")),
    });
    if let Some(ws) = &pr.spec.workspaces {
        spec["workspaces"] = ws.clone();
    }
    if let Some(pt) = template.get("podTemplate") {
        spec["podTemplate"] = pt.clone();
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {
            "name": taskrun_name(&pr.name, task),
            "namespace": pr.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": API_VERSION, "kind": "PipelineRun", "name": pr.name, "uid": pr.uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

fn pipeline_name(pr: &PipelineRunView) -> String {
    let r = pr.spec.pipeline_ref.as_ref();
    let from_resolver = r.and_then(|r| {
        r.params
            .iter()
            .find(|p| p.name == "name")?
            .value
            .as_str()
            .map(str::to_string)
    });
    r.and_then(|r| r.name.clone())
        .or(from_resolver)
        .unwrap_or_else(|| pr.name.clone())
}

/// A TaskRun status while its step runs.
pub fn taskrun_running(name: &str, image: &str, started: Timestamp) -> Value {
    json!({
        "conditions": condition("Unknown", "Running", "Not all Steps in the Task have finished executing", started),
        "podName": format!("{name}-pod"),
        "startTime": Time(started),
        "steps": [{
            "name": STEP, "container": format!("step-{STEP}"), "imageID": image,
            "running": {"startedAt": Time(started)},
        }],
    })
}

/// How a TaskRun ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskEnd {
    /// `Succeeded` condition status: `True` or `False`.
    pub status: &'static str,
    /// Condition reason (`Succeeded`, `Failed`, `TaskRunCancelled`, ...).
    pub reason: &'static str,
    /// Condition message.
    pub message: String,
    /// The step's exit code and terminated reason, when the step ran.
    pub exit: Option<(i32, &'static str)>,
}

/// A finished TaskRun status, keeping the start of `current`.
pub fn taskrun_finished(name: &str, current: &Value, end: &TaskEnd, now: Timestamp) -> Value {
    let started = time_field(current, "startTime").unwrap_or(now);
    let (exit_code, reason) = end.exit.unwrap_or((137, "Error"));
    let image = current
        .pointer("/steps/0/imageID")
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "conditions": condition(end.status, end.reason, &end.message, now),
        "podName": format!("{name}-pod"),
        "startTime": Time(started),
        "completionTime": Time(now),
        "steps": [{
            "name": STEP, "container": format!("step-{STEP}"), "imageID": image,
            "terminated": {
                "exitCode": exit_code, "reason": reason,
                "startedAt": Time(started), "finishedAt": Time(now),
            },
        }],
    })
}

/// `childReferences` for the TaskRuns of these tasks.
pub fn child_references(pr: &str, tasks: &[&str]) -> Value {
    Value::Array(
        tasks
            .iter()
            .map(|t| json!({"apiVersion": API_VERSION, "kind": "TaskRun", "name": taskrun_name(pr, t), "pipelineTaskName": t}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_read_like_tekton() {
        assert_eq!(
            tally(0, 0, 0, Some(3), 0),
            "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 3, Skipped: 0"
        );
        assert_eq!(
            tally(2, 1, 0, None, 1),
            "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1"
        );
    }

    #[test]
    fn long_taskrun_names_are_cut_with_a_hash() {
        assert_eq!(taskrun_name("wfe-abc", "hello"), "wfe-abc-hello");
        let long = taskrun_name(&"p".repeat(60), "task");
        assert_eq!(long.len(), 63);
        assert_ne!(long, taskrun_name(&"p".repeat(60), "task2"));
    }
}
