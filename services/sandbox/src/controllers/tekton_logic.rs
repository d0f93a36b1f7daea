//! The simulated Tekton controller's decisions, pure: given a PipelineRun, its
//! TaskRuns and the behaviour, which TaskRuns to create or update, the PipelineRun
//! status, events, and when to look again. Tasks run one after another.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::behaviour::{Behaviour, Outcome};
use super::duration::{format_go_duration, parse_go_duration};
use super::events::EventDraft;
use super::kubelet_logic::{signed, until};
use super::tekton_status::{
    PipelineRunView, STEP, TaskEnd, TaskRunView, child_references, condition, new_taskrun,
    succeeded, tally, taskrun_finished, taskrun_name, taskrun_running, time_field,
};

/// Tekton's default pipeline timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// A change the Tekton controller makes.
#[derive(Clone, Debug, PartialEq)]
pub enum TektonAction {
    /// Create this TaskRun.
    CreateTaskRun(Value),
    /// Replace a TaskRun's status.
    TaskRunStatus { name: String, status: Value },
    /// Replace the PipelineRun's status.
    Status(Value),
}

/// What the Tekton controller does next with one PipelineRun.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PipelineRunStep {
    /// Changes, in order.
    pub actions: Vec<TektonAction>,
    /// Events about the PipelineRun.
    pub events: Vec<EventDraft>,
    /// Look again after this long.
    pub requeue: Option<Duration>,
    /// TaskRuns started now, for the caller's precise-start memory.
    pub started: Vec<(String, Timestamp)>,
}

/// Inputs beyond the PipelineRun and its TaskRuns.
#[derive(Clone, Copy, Debug)]
pub struct TektonInputs<'a> {
    /// The behaviour from the PipelineRun's params.
    pub behaviour: &'a Behaviour,
    /// Precise TaskRun start times remembered by the caller (status keeps seconds).
    pub starts: &'a HashMap<String, Timestamp>,
    /// A workspace Secret/ConfigMap that does not exist: `(kind word, name)`.
    pub missing: Option<(&'a str, &'a str)>,
    /// Current time.
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
enum TaskState<'a> {
    NotCreated,
    NoStatus,
    Running(Timestamp),
    Done { ok: bool },
    Other(&'a str),
}

/// Decides the next step for a PipelineRun.
pub fn next_pipelinerun_step(
    pr: &PipelineRunView,
    taskruns: &[TaskRunView],
    input: TektonInputs<'_>,
) -> PipelineRunStep {
    let mut step = PipelineRunStep::default();
    if matches!(succeeded(&pr.status), Some(("True" | "False", _))) {
        return step;
    }
    let now = input.now;
    if pr.spec.status.as_deref() == Some("PipelineRunPending") {
        let message = format!("PipelineRun \"{}\" is pending", pr.name);
        let status =
            json!({"conditions": condition("Unknown", "PipelineRunPending", &message, now)});
        push_status_if_changed(&mut step, pr, status);
        return step;
    }
    let start = time_field(&pr.status, "startTime").unwrap_or(now);
    if pr.status.get("startTime").is_none() {
        step.events.push(EventDraft::normal("Started", ""));
    }
    if let Some(message) = resolution_error(pr, input.behaviour) {
        finish(
            &mut step,
            start,
            ("CouldntGetPipeline", message),
            Value::Array(vec![]),
            now,
        );
        return step;
    }
    let tasks: Vec<&str> = input.behaviour.tasks.iter().map(String::as_str).collect();
    let states: Vec<TaskState<'_>> = tasks
        .iter()
        .map(|t| state_of(pr, t, taskruns, input.starts))
        .collect();
    let created: Vec<&str> = tasks
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s != TaskState::NotCreated)
        .map(|(t, _)| *t)
        .collect();
    let children = child_references(&pr.name, &created);
    if let Some((reason, message, why)) = stop_reason(pr, start, now) {
        cancel_running(&mut step, pr, (&tasks, &states), taskruns, why, now);
        finish(&mut step, start, (reason, message), children, now);
        return step;
    }
    progress(&mut step, pr, &tasks, &states, start, children, input);
    step
}

/// Cancellation or timeout: `(reason, message, why for TaskRuns)`.
fn stop_reason(
    pr: &PipelineRunView,
    start: Timestamp,
    now: Timestamp,
) -> Option<(&'static str, String, &'static str)> {
    if matches!(
        pr.spec.status.as_deref(),
        Some("Cancelled" | "CancelledRunFinally" | "StoppedRunFinally")
    ) {
        return Some((
            "Cancelled",
            format!("PipelineRun \"{}\" was cancelled", pr.name),
            "has been cancelled",
        ));
    }
    let timeout = timeout(pr)?;
    let due = start.checked_add(signed(timeout)).unwrap_or(start);
    (now >= due).then(|| {
        let message = format!(
            "PipelineRun \"{}\" failed to finish within \"{}\"",
            pr.name,
            format_go_duration(timeout)
        );
        ("PipelineRunTimeout", message, "has timed out")
    })
}

/// The pipeline timeout; `None` when disabled (`0s`).
fn timeout(pr: &PipelineRunView) -> Option<Duration> {
    let text = pr
        .spec
        .timeouts
        .as_ref()
        .and_then(|t| t.pipeline.as_deref());
    let timeout = match text {
        Some(t) => parse_go_duration(t).unwrap_or_else(|| {
            tracing::warn!(pipelinerun = %pr.name, timeout = %t, "unparsable pipeline timeout, using the default");
            DEFAULT_TIMEOUT
        }),
        None => DEFAULT_TIMEOUT,
    };
    (!timeout.is_zero()).then_some(timeout)
}

fn resolution_error(pr: &PipelineRunView, behaviour: &Behaviour) -> Option<String> {
    let prefix = format!(
        "Error retrieving pipeline for pipelinerun {}/{}",
        pr.namespace, pr.name
    );
    let spec = &pr.spec;
    let Some(r) = &spec.pipeline_ref else {
        if spec.pipeline_spec.is_some() && behaviour.outcome != Outcome::BundleNotFound {
            return None;
        }
        return Some(format!(
            "{prefix}: expected exactly one, got neither: spec.pipelineRef, spec.pipelineSpec"
        ));
    };
    let bundles = r.resolver.as_deref() == Some("bundles");
    let bundle = spec.bundle().unwrap_or_default();
    if bundles && bundle.is_empty() {
        return Some(format!(
            "{prefix}: resolver failed to get Pipeline : error requesting remote resource: missing required bundle param"
        ));
    }
    (behaviour.outcome == Outcome::BundleNotFound).then(|| {
        format!(
            "{prefix}: resolver failed to get Pipeline : error requesting remote resource: error getting \"bundleresolver\" \"{}/{}\": cannot retrieve the oci image: GET {bundle}: MANIFEST_UNKNOWN: manifest unknown",
            pr.namespace, pr.name
        )
    })
}

fn state_of<'a>(
    pr: &PipelineRunView,
    task: &str,
    taskruns: &'a [TaskRunView],
    starts: &HashMap<String, Timestamp>,
) -> TaskState<'a> {
    let name = taskrun_name(&pr.name, task);
    let Some(tr) = taskruns.iter().find(|t| t.name == name) else {
        return TaskState::NotCreated;
    };
    match succeeded(&tr.status) {
        None => TaskState::NoStatus,
        Some(("True", _)) => TaskState::Done { ok: true },
        Some(("False", _)) => TaskState::Done { ok: false },
        Some((_, "Running")) => {
            let started = starts
                .get(&name)
                .copied()
                .or_else(|| time_field(&tr.status, "startTime"));
            started.map_or(TaskState::NoStatus, TaskState::Running)
        }
        Some((_, reason)) => TaskState::Other(reason),
    }
}

fn progress(
    step: &mut PipelineRunStep,
    pr: &PipelineRunView,
    tasks: &[&str],
    states: &[TaskState<'_>],
    start: Timestamp,
    mut children: Value,
    input: TektonInputs<'_>,
) {
    let now = input.now;
    for (index, (task, state)) in tasks.iter().zip(states).enumerate() {
        let name = taskrun_name(&pr.name, task);
        match state {
            TaskState::Done { ok: true } => continue,
            TaskState::Done { ok: false } => {
                let done = states
                    .iter()
                    .filter(|s| matches!(s, TaskState::Done { .. }))
                    .count();
                let message = tally(done, 1, 0, None, tasks.len() - done);
                finish(step, start, ("Failed", message), children, now);
                return;
            }
            TaskState::NotCreated => {
                step.actions
                    .push(TektonAction::CreateTaskRun(new_taskrun(pr, task)));
                let mut created: Vec<&str> = tasks[..index].to_vec();
                created.push(task);
                children = child_references(&pr.name, &created);
            }
            TaskState::NoStatus => start_task(step, pr, &name, input),
            TaskState::Running(started) => {
                run_task(step, pr, &name, index, tasks.len(), *started, input)
            }
            TaskState::Other(_) => {}
        }
        break;
    }
    if states.iter().all(|s| *s == TaskState::Done { ok: true }) {
        let message = tally(tasks.len(), 0, 0, None, 0);
        finish(step, start, ("Succeeded", message), children, now);
        return;
    }
    let done = states
        .iter()
        .filter(|s| matches!(s, TaskState::Done { .. }))
        .count();
    let message = tally(done, 0, 0, Some(tasks.len() - done), 0);
    let status = json!({
        "conditions": condition("Unknown", "Running", &message, now),
        "startTime": Time(start),
        "childReferences": children,
    });
    push_status_if_changed(step, pr, status);
    if let Some(t) = timeout(pr) {
        let due = start.checked_add(signed(t)).unwrap_or(start);
        let wait = until(now, due);
        step.requeue = Some(step.requeue.map_or(wait, |r| r.min(wait)));
    }
}

fn start_task(
    step: &mut PipelineRunStep,
    pr: &PipelineRunView,
    name: &str,
    input: TektonInputs<'_>,
) {
    let image = pr
        .spec
        .bundle()
        .unwrap_or("sandbox.local/tekton/step:latest");
    let mut status = taskrun_running(name, image, input.now);
    if let Some((kind, missing)) = pending_mount(input) {
        let message = format!(
            "pod status \"PodReadyToStartContainers\":\"False\"; message: \"MountVolume.SetUp failed for volume \\\"ws-{missing}\\\" : {kind} \\\"{missing}\\\" not found\""
        );
        status["conditions"] = condition("Unknown", "Pending", &message, input.now);
        status["steps"][0] = json!({"name": STEP, "container": format!("step-{STEP}"), "waiting": {"reason": "ContainerCreating"}});
    }
    step.actions.push(TektonAction::TaskRunStatus {
        name: name.to_string(),
        status,
    });
    step.started.push((name.to_string(), input.now));
}

/// A workspace Secret/ConfigMap that keeps the task's pod from starting.
fn pending_mount<'a>(input: TektonInputs<'a>) -> Option<(&'a str, &'a str)> {
    input
        .missing
        .or((input.behaviour.outcome == Outcome::MissingSecret)
            .then_some(("secret", "sandbox-missing")))
}

fn run_task(
    step: &mut PipelineRunStep,
    pr: &PipelineRunView,
    name: &str,
    index: usize,
    count: usize,
    started: Timestamp,
    input: TektonInputs<'_>,
) {
    let outcome = &input.behaviour.outcome;
    let first = index == 0;
    if first && matches!(outcome, Outcome::Hang) {
        return;
    }
    let due = started
        .checked_add(signed(input.behaviour.duration))
        .unwrap_or(started);
    let image_pull = first && *outcome == Outcome::ImagePullError;
    if input.now < due && !image_pull {
        step.requeue = Some(until(input.now, due));
        return;
    }
    let end = task_end(name, pr, index, count, outcome);
    let current = Value::Null;
    let mut status = taskrun_finished(name, &current, &end, input.now);
    status["startTime"] = json!(Time(started));
    status["steps"][0]["terminated"]["startedAt"] = json!(Time(started));
    step.actions.push(TektonAction::TaskRunStatus {
        name: name.to_string(),
        status,
    });
}

fn task_end(
    name: &str,
    pr: &PipelineRunView,
    index: usize,
    count: usize,
    outcome: &Outcome,
) -> TaskEnd {
    let last = count.saturating_sub(1);
    let failing = match outcome {
        Outcome::Fail(code) if index == last => Some((*code, "Error")),
        Outcome::Disrupt if index == last => Some((137, "Error")),
        Outcome::Oom if index == last => Some((137, "OOMKilled")),
        Outcome::FailTask { index: i, code } if (*i).min(last) == index => Some((*code, "Error")),
        _ => None,
    };
    if *outcome == Outcome::ImagePullError && index == 0 {
        let image = pr
            .spec
            .bundle()
            .unwrap_or("sandbox.local/tekton/step:latest");
        let message = format!(
            "the step \"{STEP}\" in TaskRun \"{name}\" failed to pull the image \"{image}\". The pod errored with the message: \"Back-off pulling image \\\"{image}\\\".\""
        );
        return TaskEnd {
            status: "False",
            reason: "TaskRunImagePullFailed",
            message,
            exit: None,
        };
    }
    match failing {
        Some((code, reason)) => {
            // Tekton appends the container's terminated reason whenever it is set
            // (pipeline 32872165d): `"step-run" exited with code 3: Error`.
            let message = format!("\"step-{STEP}\" exited with code {code}: {reason}");
            TaskEnd {
                status: "False",
                reason: "Failed",
                message,
                exit: Some((code, reason)),
            }
        }
        None => TaskEnd {
            status: "True",
            reason: "Succeeded",
            message: "All Steps have completed executing".into(),
            exit: Some((0, "Completed")),
        },
    }
}

fn cancel_running(
    step: &mut PipelineRunStep,
    pr: &PipelineRunView,
    (tasks, states): (&[&str], &[TaskState<'_>]),
    taskruns: &[TaskRunView],
    why: &str,
    now: Timestamp,
) {
    for (task, state) in tasks.iter().zip(states) {
        if matches!(state, TaskState::NotCreated | TaskState::Done { .. }) {
            continue;
        }
        let name = taskrun_name(&pr.name, task);
        let message = format!(
            "TaskRun \"{name}\" was cancelled. TaskRun cancelled as the PipelineRun it belongs to {why}."
        );
        let end = TaskEnd {
            status: "False",
            reason: "TaskRunCancelled",
            message,
            exit: Some((1, "TaskRunCancelled")),
        };
        let current = taskruns
            .iter()
            .find(|t| t.name == name)
            .map_or(Value::Null, |t| t.status.clone());
        step.actions.push(TektonAction::TaskRunStatus {
            name: name.clone(),
            status: taskrun_finished(&name, &current, &end, now),
        });
    }
}

/// The final PipelineRun status and its event.
fn finish(
    step: &mut PipelineRunStep,
    start: Timestamp,
    (reason, message): (&str, String),
    children: Value,
    now: Timestamp,
) {
    let ok = reason == "Succeeded";
    let status = json!({
        "conditions": condition(if ok { "True" } else { "False" }, reason, &message, now),
        "startTime": Time(start),
        "completionTime": Time(now),
        "childReferences": children,
    });
    step.actions.push(TektonAction::Status(status));
    step.events.push(if ok {
        EventDraft::normal(reason, message)
    } else {
        EventDraft::warning(reason, message)
    });
    step.requeue = None;
}

/// Writes the status unless only `lastTransitionTime` would change.
fn push_status_if_changed(step: &mut PipelineRunStep, pr: &PipelineRunView, status: Value) {
    if !same_ignoring_times(&pr.status, &status) {
        step.actions.push(TektonAction::Status(status));
    }
}

fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(cs) = v.get_mut("conditions").and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastTransitionTime");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
#[path = "tekton_logic_tests.rs"]
mod tests;
