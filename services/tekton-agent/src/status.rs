//! PipelineRun + its TaskRuns → an [`Observation`]. Pure, with table tests.
//!
//! Tekton keeps a TaskRun whose pod cannot start (a workspace Secret or ConfigMap that
//! does not exist, an env reference to one) Pending until the pipeline's timeout, which
//! reports a configuration mistake as DeadlineExceeded much later. [`run_state`] gives up
//! after [`Policy::stuck_grace`] with ConfigurationError, as the job-agent does for Jobs.

use std::time::Duration;

use jiff::Timestamp;
use wfe_agent::primitive::{Observation, Owner, Progress};
use wfe_core::failure::{FailureDetails, FailureReason, classify_tekton_message};
use wfe_k8s::tekton::{PipelineRun, TaskRun, TektonCondition};
use wfe_proto::agent::PrimitivePhase;

fn succeeded(conds: &[TektonCondition]) -> Option<&TektonCondition> {
    conds.iter().find(|c| c.type_ == "Succeeded")
}

/// The failed task: TaskRun name, index among childReferences, failed step and exit code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedTask {
    /// TaskRun name.
    pub name: String,
    /// Index in childReferences.
    pub index: u32,
    /// The TaskRun's Succeeded reason.
    pub reason: String,
    /// First step that exited non-zero.
    pub step: Option<String>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// That step's terminated reason (e.g. OOMKilled).
    pub step_reason: Option<String>,
}

/// Upstream's FindFailedTaskRun: the first TaskRun child whose Succeeded is False.
pub fn failed_task(pr: &PipelineRun, task_runs: &[&TaskRun]) -> Option<FailedTask> {
    let children = &pr.status.as_ref()?.child_references;
    children.iter().enumerate().find_map(|(i, child)| {
        if child.kind.as_deref().is_some_and(|k| k != "TaskRun") {
            return None;
        }
        let tr = task_runs
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(&child.name))?;
        let status = tr.status.as_ref()?;
        let cond = succeeded(&status.conditions).filter(|c| c.status == "False")?;
        let step = status
            .steps
            .iter()
            .find(|s| s.terminated.as_ref().is_some_and(|t| t.exit_code != 0));
        Some(FailedTask {
            name: child.name.clone(),
            index: u32::try_from(i).unwrap_or(u32::MAX),
            reason: cond.reason.clone().unwrap_or_default(),
            step: step.map(|s| s.name.clone()),
            exit_code: step
                .and_then(|s| s.terminated.as_ref())
                .map(|t| t.exit_code),
            step_reason: step
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.reason.clone()),
        })
    })
}

/// Maps Tekton's reasons onto the taxonomy: the run's explicit reasons (timeout, cancel,
/// resolution/validation) first, then the failed task's step and reason (precise), then
/// upstream's keyword rules on the message.
pub fn classify(reason: &str, message: &str, task: Option<&FailedTask>) -> FailureReason {
    match reason {
        "PipelineRunTimeout" => return FailureReason::DeadlineExceeded,
        "Cancelled"
        | "PipelineRunCancelled"
        | "CancelledRunningFinally"
        | "StoppedRunningFinally" => return FailureReason::Cancelled,
        "CouldntGetPipeline"
        | "CouldntGetTask"
        | "InvalidWorkspaceBindings"
        | "ParameterMissing"
        | "ParameterTypeMismatch"
        | "PipelineValidationFailed"
        | "ResourceVerificationFailed"
        | "InvalidTaskResultReference" => {
            return FailureReason::ConfigurationError;
        }
        _ => {}
    }
    if let Some(t) = task {
        if t.step_reason.as_deref() == Some("OOMKilled") {
            return FailureReason::OOMKilled;
        }
        match t.reason.as_str() {
            "TaskRunImagePullFailed" => return FailureReason::ImagePullBackOff,
            "TaskRunTimeout" => return FailureReason::DeadlineExceeded,
            _ => {}
        }
    }
    match classify_tekton_message(reason, message) {
        FailureReason::Unknown if task.is_some_and(|t| t.exit_code.is_some()) => {
            FailureReason::TaskFailed
        }
        other => other,
    }
}

/// Progress: tasks succeeded / TaskRun children.
fn progress(pr: &PipelineRun, task_runs: &[&TaskRun]) -> Progress {
    let children = pr
        .status
        .as_ref()
        .map(|s| s.child_references.as_slice())
        .unwrap_or_default();
    let done = children
        .iter()
        .filter(|c| {
            task_runs.iter().any(|t| {
                t.metadata.name.as_deref() == Some(&c.name)
                    && t.status
                        .as_ref()
                        .and_then(|s| succeeded(&s.conditions))
                        .is_some_and(|c| c.status == "True")
            })
        })
        .count();
    let created = u32::try_from(children.len()).unwrap_or(u32::MAX);
    let message = pr
        .status
        .as_ref()
        .and_then(|s| succeeded(&s.conditions))
        .and_then(|c| c.message.as_deref())
        .unwrap_or("");
    Progress {
        completed: u32::try_from(done).unwrap_or(u32::MAX),
        // TaskRuns are created one stage at a time: the tally also counts what has not
        // started yet, so "1/3" is reported rather than "1/1".
        total: created.max(tally_total(message).unwrap_or(0)),
        retries: 0,
    }
}

/// The pipeline's task count from Tekton's tally in the Succeeded message:
/// `Tasks Completed: 1 (Failed: 0, Cancelled 0), Incomplete: 2, Skipped: 0` → 3
/// (completed includes failed and cancelled tasks).
pub fn tally_total(message: &str) -> Option<u32> {
    let completed = number_after(message, "Tasks Completed:")?;
    let incomplete = number_after(message, "Incomplete:").unwrap_or(0);
    let skipped = number_after(message, "Skipped:").unwrap_or(0);
    Some(completed.saturating_add(incomplete).saturating_add(skipped))
}

fn number_after(text: &str, label: &str) -> Option<u32> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Did any workflow code run? A TaskRun that started or a step that terminated. When
/// unsure (a TaskRun started but reports no steps) this says yes: the safe side.
fn started(task_runs: &[&TaskRun]) -> bool {
    task_runs.iter().any(|t| {
        t.status.as_ref().is_some_and(|s| {
            s.start_time.is_some() || s.steps.iter().any(|st| st.terminated.is_some())
        })
    })
}

/// Maps a PipelineRun and its TaskRuns to what the agent reports.
///
/// A timeout (DeadlineExceeded) carries no exit code: the code of a step Tekton stopped
/// at the deadline (1, 137, or none when no step was running) says how Tekton killed it,
/// not how the workflow ended, so the same hang would report different codes.
pub fn pipeline_run_state(
    pr: &PipelineRun,
    task_runs: &[&TaskRun],
    owner: &Owner,
    now: Timestamp,
) -> Observation {
    let status = pr.status.clone().unwrap_or_default();
    let cond = succeeded(&status.conditions);
    let reason = cond.and_then(|c| c.reason.clone()).unwrap_or_default();
    let message = cond.and_then(|c| c.message.clone()).unwrap_or_default();
    let progress = progress(pr, task_runs);
    let mut obs = match cond.map(|c| c.status.as_str()) {
        None => Observation::new(
            PrimitivePhase::Pending,
            "Pending",
            "Pipeline created, waiting for Tekton to start execution",
        ),
        Some("Unknown")
            if matches!(
                reason.as_str(),
                "ResolvingPipelineRef" | "Pending" | "PipelineRunPending" | "Started"
            ) && status.start_time.is_none() =>
        {
            Observation::new(
                PrimitivePhase::Pending,
                &reason,
                format!("Pipeline pending ({reason})"),
            )
        }
        Some("Unknown") => Observation::new(
            PrimitivePhase::Running,
            if reason.is_empty() {
                "Running"
            } else {
                &reason
            },
            format!(
                "Pipeline executing: {}/{} tasks completed",
                progress.completed, progress.total
            ),
        ),
        Some("True") => {
            let mut o = Observation::new(
                PrimitivePhase::Succeeded,
                if reason.is_empty() {
                    "Succeeded"
                } else {
                    &reason
                },
                message.clone(),
            );
            o.completed_at = status.completion_time.as_ref().map(|t| t.0);
            o
        }
        Some(_) => failed(pr, task_runs, owner, &reason, &message, now),
    };
    obs.started_at = status.start_time.as_ref().map(|t| t.0);
    obs.progress = progress;
    if let Some(f) = obs.failure.as_mut() {
        f.execution_time_before_failure = obs
            .started_at
            .filter(|_| f.was_execution_failure)
            .map(|s| Duration::try_from(f.failed_at.duration_since(s)).unwrap_or_default());
        *f = f.clone().with_summary(&owner.workflow_id, &owner.target);
    }
    obs
}

fn failed(
    pr: &PipelineRun,
    task_runs: &[&TaskRun],
    owner: &Owner,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Observation {
    let status = pr.status.clone().unwrap_or_default();
    let at = status
        .completion_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| {
            succeeded(&status.conditions)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        })
        .unwrap_or(now);
    let task = failed_task(pr, task_runs);
    let cause = classify(reason, message, task.as_ref());
    let msg = if message.is_empty() {
        format!("PipelineRun failed ({reason})")
    } else {
        message.to_owned()
    };
    let mut d = FailureDetails::new(cause, msg, started(task_runs), at);
    if let Some(t) = task {
        d.failed_task_name = Some(t.name);
        d.failed_task_index = Some(t.index);
        d.failed_step_name = t.step;
        d.exit_code = t
            .exit_code
            .filter(|_| cause != FailureReason::DeadlineExceeded);
    }
    Observation::failed(d, owner)
}

/// When the agent gives up on a PipelineRun before Tekton does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a TaskRun's pod may stay unable to start because a Secret or ConfigMap is
    /// missing before the execution fails: the object rarely appears by itself, and
    /// waiting for the pipeline timeout hides the cause behind DeadlineExceeded.
    pub stuck_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            stuck_grace: Duration::from_secs(120),
        }
    }
}

/// The mapper's conclusion.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// What to report.
    pub observation: Observation,
    /// The agent decided the execution failed while the PipelineRun still runs: stop it
    /// (`spec.status: Cancelled`). False once it is already being stopped.
    pub abort: bool,
}

/// A TaskRun whose pod cannot start for a reason that does not heal by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckTask {
    /// TaskRun name.
    pub name: String,
    /// Index in childReferences, when listed there.
    pub index: Option<u32>,
    /// Since when it waits: its creation (it never started a container since).
    pub since: Timestamp,
    /// Tekton's message (the kubelet's reason).
    pub message: String,
}

/// [`pipeline_run_state`], plus the agent's own rule: a run still Pending/Running whose
/// TaskRun waits on a missing Secret/ConfigMap longer than the grace has failed.
pub fn run_state(
    pr: &PipelineRun,
    task_runs: &[&TaskRun],
    owner: &Owner,
    policy: &Policy,
    now: Timestamp,
) -> RunState {
    let observation = pipeline_run_state(pr, task_runs, owner, now);
    let unfinished = matches!(
        observation.phase,
        PrimitivePhase::Pending | PrimitivePhase::Running
    );
    let stuck = stuck_task(pr, task_runs).filter(|_| unfinished);
    let Some(task) = stuck else {
        return RunState {
            observation,
            abort: false,
        };
    };
    if waited(task.since, now) < policy.stuck_grace {
        return RunState {
            observation: waiting_on(observation, &task, policy),
            abort: false,
        };
    }
    let mut failed = Observation::failed(stuck_failure(task, policy, now), owner);
    failed.started_at = observation.started_at;
    failed.progress = observation.progress;
    RunState {
        observation: failed,
        abort: !is_stopping(pr),
    }
}

/// Within the grace the run is reported as it is, but naming what it waits on, so the
/// execution's status says why before it fails.
fn waiting_on(mut observation: Observation, task: &StuckTask, policy: &Policy) -> Observation {
    let what = missing_object(&task.message)
        .map(|o| format!("{o} not found"))
        .unwrap_or_else(|| "a referenced Secret or ConfigMap is missing".into());
    observation.reason = WAITING_ON_REFERENCE.to_owned();
    observation.message = format!(
        "TaskRun {} cannot start: {what}; fails with ConfigurationError after the {}s stuck grace",
        task.name,
        policy.stuck_grace.as_secs()
    );
    observation
}

/// The reason reported while a TaskRun's pod waits on a missing Secret or ConfigMap (the
/// kubelet's name for it).
pub const WAITING_ON_REFERENCE: &str = "CreateContainerConfigError";

fn waited(since: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or_default()
}

/// The first TaskRun still Unknown whose pod cannot start on a missing reference.
pub fn stuck_task(pr: &PipelineRun, task_runs: &[&TaskRun]) -> Option<StuckTask> {
    task_runs.iter().find_map(|tr| {
        let status = tr.status.as_ref()?;
        let cond = succeeded(&status.conditions).filter(|c| c.status == "Unknown")?;
        let message = cond.message.clone().unwrap_or_default();
        let reason = cond.reason.as_deref().unwrap_or("");
        let blocked = match reason {
            "CreateContainerConfigError" => true,
            "Pending" => is_missing_reference(&message),
            _ => false,
        };
        if !blocked {
            return None;
        }
        let name = tr.metadata.name.clone().unwrap_or_default();
        let since = tr
            .metadata
            .creation_timestamp
            .as_ref()
            .or(cond.last_transition_time.as_ref())?
            .0;
        Some(StuckTask {
            index: child_index(pr, &name),
            name,
            since,
            message,
        })
    })
}

fn child_index(pr: &PipelineRun, name: &str) -> Option<u32> {
    let children = &pr.status.as_ref()?.child_references;
    let i = children.iter().position(|c| c.name == name)?;
    u32::try_from(i).ok()
}

/// Tekton copies the pod's waiting message (`build step "step-x" is pending with reason
/// "secret \"x\" not found"`) or condition message (`... MountVolume.SetUp failed for
/// volume \"ws-x\" : secret \"x\" not found`) into the TaskRun, quotes escaped; the
/// kubelet says `couldn't find key k in Secret ns/x` for a missing key. Anything else
/// pending (scheduling, a slow image pull, other mount errors) may still heal.
fn is_missing_reference(message: &str) -> bool {
    let msg = unescaped(message).to_ascii_lowercase();
    let names_object = ["secret \"", "configmap \""]
        .iter()
        .any(|w| msg.contains(w));
    (names_object && msg.contains("not found"))
        || msg.contains("couldn't find key")
        || msg.contains("createcontainerconfigerror")
}

fn unescaped(message: &str) -> String {
    message.replace('\\', "")
}

/// `secret "x"` / `configmap "x"` as the message names it, for a message a person reads.
fn missing_object(message: &str) -> Option<String> {
    let msg = unescaped(message);
    let lower = msg.to_ascii_lowercase();
    ["secret \"", "configmap \""].iter().find_map(|w| {
        let start = lower.find(w)?;
        let name_at = start + w.len();
        let end = name_at + msg[name_at..].find('"')?;
        Some(format!(
            "{}\"{}\"",
            &msg[start..start + w.len() - 1],
            &msg[name_at..end]
        ))
    })
}

fn stuck_failure(task: StuckTask, policy: &Policy, now: Timestamp) -> FailureDetails {
    let what = missing_object(&task.message)
        .map(|o| format!("{o} not found"))
        .unwrap_or_else(|| "a referenced Secret or ConfigMap is missing".into());
    let message = format!(
        "TaskRun {} could not start for {}s: {what}; failing instead of waiting for the pipeline timeout (Tekton: {})",
        task.name,
        policy.stuck_grace.as_secs(),
        unescaped(&task.message)
    );
    let mut d = FailureDetails::new(FailureReason::ConfigurationError, message, false, now);
    d.failed_task_name = Some(task.name);
    d.failed_task_index = task.index;
    d
}

/// `spec.status` already asks Tekton to stop the run (by us or by a cancel).
fn is_stopping(pr: &PipelineRun) -> bool {
    pr.spec
        .status
        .as_deref()
        .is_some_and(|s| matches!(s, "Cancelled" | "CancelledRunFinally" | "StoppedRunFinally"))
}

#[cfg(test)]
mod tests;
