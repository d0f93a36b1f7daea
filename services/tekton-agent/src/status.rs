//! PipelineRun + its TaskRuns → an [`Observation`]. Pure, with table tests.

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
        d.exit_code = t.exit_code;
    }
    Observation::failed(d, owner)
}

#[cfg(test)]
mod tests;
