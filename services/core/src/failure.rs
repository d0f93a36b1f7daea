//! The failure taxonomy: reasons, execution vs pre-execution classification, retry
//! safety, audit error details, the Tekton message classifier and the summary a person reads.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

mod summary;
#[cfg(test)]
mod tests;

pub use summary::natural_language_summary;

/// Why an execution failed. Wire values are the variant names (upstream's CRD enum, minus
/// `Deduplicated`, plus `Cancelled` and `AgentLost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureReason {
    /// A container exceeded its memory limit.
    OOMKilled,
    /// The timeout or deadline passed.
    DeadlineExceeded,
    /// RBAC denied an operation.
    Forbidden,
    /// Quota or cluster capacity ran out.
    ResourceExhausted,
    /// The request or the workflow definition is wrong.
    ConfigurationError,
    /// The image or bundle could not be pulled.
    ImagePullBackOff,
    /// A task or the workflow container failed.
    TaskFailed,
    /// No agent can run the requested engine.
    UnsupportedEngine,
    /// Cancelled by CancelWorkflowExecution.
    Cancelled,
    /// The agent running it stopped reporting and its lease expired.
    AgentLost,
    /// Anything else.
    Unknown,
}

/// A failure-reason string that names no reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure reason: {0}")]
pub struct UnknownFailureReason(pub String);

impl FailureReason {
    /// Every reason.
    pub const ALL: [FailureReason; 11] = [
        Self::OOMKilled,
        Self::DeadlineExceeded,
        Self::Forbidden,
        Self::ResourceExhausted,
        Self::ConfigurationError,
        Self::ImagePullBackOff,
        Self::TaskFailed,
        Self::UnsupportedEngine,
        Self::Cancelled,
        Self::AgentLost,
        Self::Unknown,
    ];

    /// The wire value, e.g. `OOMKilled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OOMKilled => "OOMKilled",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::Forbidden => "Forbidden",
            Self::ResourceExhausted => "ResourceExhausted",
            Self::ConfigurationError => "ConfigurationError",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::TaskFailed => "TaskFailed",
            Self::UnsupportedEngine => "UnsupportedEngine",
            Self::Cancelled => "Cancelled",
            Self::AgentLost => "AgentLost",
            Self::Unknown => "Unknown",
        }
    }

    /// Parses the wire value (exact, case-sensitive).
    pub fn parse(s: &str) -> Result<Self, UnknownFailureReason> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownFailureReason(s.to_owned()))
    }

    /// Reasons that mean the workflow's own code never ran, whatever else happened.
    pub fn implies_nothing_ran(self) -> bool {
        matches!(
            self,
            Self::ImagePullBackOff
                | Self::ConfigurationError
                | Self::ResourceExhausted
                | Self::UnsupportedEngine
        )
    }

    /// Reasons that can only be observed once the workflow's code ran.
    fn implies_ran(self) -> bool {
        matches!(self, Self::OOMKilled | Self::TaskFailed)
    }
}

impl FromStr for FailureReason {
    type Err = UnknownFailureReason;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything known about a failure. Optional fields are `None` when not applicable
/// (upstream serialized zero values instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// The classified reason.
    pub reason: FailureReason,
    /// Human-readable message from the engine or the service.
    pub message: String,
    /// 0-based index of the first failed task (Tekton child reference order).
    pub failed_task_index: Option<u32>,
    /// TaskRun (Tekton) or container (Job) that failed.
    pub failed_task_name: Option<String>,
    /// Step within the failed task.
    pub failed_step_name: Option<String>,
    /// First non-zero exit code observed; the agents report none for DeadlineExceeded.
    pub exit_code: Option<i32>,
    /// When the failure was recorded.
    pub failed_at: Timestamp,
    /// How long it ran before failing; `None` if it never started.
    pub execution_time_before_failure: Option<Duration>,
    /// See [`natural_language_summary`].
    pub natural_language_summary: String,
    /// True when the workflow had started: it may have changed the target.
    pub was_execution_failure: bool,
}

impl FailureDetails {
    /// Details for a failure observed at `failed_at`; `started` as in
    /// [`was_execution_failure`]. Task, step, exit code, elapsed time and summary are empty:
    /// set the ones known, then call [`FailureDetails::with_summary`].
    pub fn new(
        reason: FailureReason,
        message: impl Into<String>,
        started: bool,
        failed_at: Timestamp,
    ) -> Self {
        Self {
            reason,
            message: message.into(),
            failed_task_index: None,
            failed_task_name: None,
            failed_step_name: None,
            exit_code: None,
            failed_at,
            execution_time_before_failure: None,
            natural_language_summary: String::new(),
            was_execution_failure: was_execution_failure(reason, started),
        }
    }

    /// Fills `natural_language_summary` from the current fields.
    pub fn with_summary(mut self, workflow_id: &str, target: &str) -> Self {
        self.natural_language_summary = natural_language_summary(workflow_id, target, Some(&self));
        self
    }

    /// See [`retry_safe`].
    pub fn retry_safe(&self) -> bool {
        retry_safe(self.reason, self.was_execution_failure)
    }
}

/// Did the failure happen after the workflow's code started (so it may have changed the
/// target)? `started` is true only if the workflow container or a task actually started.
///
/// Upstream inferred "started" from PipelineRun fields and guessed conservatively when it
/// lacked them; our agents observe the container state, so `started` is authoritative,
/// except where the reason itself proves the answer:
/// - ImagePullBackOff, ConfigurationError, ResourceExhausted, UnsupportedEngine → false;
/// - OOMKilled, TaskFailed → true (they cannot happen without running code);
/// - otherwise → `started`. A caller that cannot tell (e.g. AgentLost after the primitive
///   was created) must pass `started = true`: the safe side blocks the target.
pub fn was_execution_failure(reason: FailureReason, started: bool) -> bool {
    if reason.implies_nothing_ran() {
        return false;
    }
    started || reason.implies_ran()
}

/// May the orchestrator retry automatically without a person looking at the target?
/// Only when nothing of the workflow ran: a retry after partial effects could repeat
/// non-idempotent changes.
pub fn retry_safe(reason: FailureReason, was_execution_failure: bool) -> bool {
    !was_execution_failure || reason.implies_nothing_ran()
}

/// Audit `error_details.code` values (upstream §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// Configuration or permission problem: the workflow cannot run as requested.
    #[serde(rename = "ERR_WORKFLOW_NOT_FOUND")]
    WorkflowNotFound,
    /// The workflow failed.
    #[serde(rename = "ERR_PIPELINE_FAILED")]
    PipelineFailed,
    /// The image or bundle could not be pulled.
    #[serde(rename = "ERR_IMAGE_PULL")]
    ImagePull,
}

impl ErrorCode {
    /// The wire value, e.g. `ERR_PIPELINE_FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkflowNotFound => "ERR_WORKFLOW_NOT_FOUND",
            Self::PipelineFailed => "ERR_PIPELINE_FAILED",
            Self::ImagePull => "ERR_IMAGE_PULL",
        }
    }
}

/// Audit `error_details` of a `workflow.failed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// Error code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Always [`AUDIT_COMPONENT`].
    pub component: String,
    /// Whether a retry could succeed (upstream's table, not [`retry_safe`]).
    pub retry_possible: bool,
}

/// The `component` of audit error details.
pub const AUDIT_COMPONENT: &str = "workflowexecution";

/// Upstream's code / retry_possible table (§3.5).
pub fn error_code(reason: FailureReason, was_execution_failure: bool) -> (ErrorCode, bool) {
    use FailureReason::*;
    match reason {
        ConfigurationError | Forbidden => (ErrorCode::WorkflowNotFound, false),
        ImagePullBackOff => (ErrorCode::ImagePull, true),
        TaskFailed => (ErrorCode::PipelineFailed, !was_execution_failure),
        _ => (ErrorCode::PipelineFailed, true),
    }
}

/// Audit error details for a failure; `None` details give upstream's "unknown error" entry.
///
/// Message: `Pipeline failed at task '<task>'[ step '<step>'][: <message>]` like upstream when
/// a task is known, otherwise `Workflow execution failed[: <message>]` (upstream printed an
/// empty task name).
pub fn error_details(details: Option<&FailureDetails>) -> ErrorDetails {
    let Some(d) = details else {
        return ErrorDetails {
            code: ErrorCode::PipelineFailed,
            message: "Workflow execution failed with unknown error".to_owned(),
            component: AUDIT_COMPONENT.to_owned(),
            retry_possible: true,
        };
    };
    let (code, retry_possible) = error_code(d.reason, d.was_execution_failure);
    let mut message = match d.failed_task_name.as_deref().filter(|t| !t.is_empty()) {
        Some(task) => format!("Pipeline failed at task '{task}'"),
        None => "Workflow execution failed".to_owned(),
    };
    if let Some(step) = d.failed_step_name.as_deref().filter(|s| !s.is_empty()) {
        message.push_str(&format!(" step '{step}'"));
    }
    if !d.message.is_empty() {
        message.push_str(&format!(": {}", d.message));
    }
    ErrorDetails {
        code,
        message,
        component: AUDIT_COMPONENT.to_owned(),
        retry_possible,
    }
}

/// Classifies a failed PipelineRun from its `Succeeded` condition reason and message, with
/// upstream's ordered keyword rules (§3.9) on the lower-cased text.
pub fn classify_tekton_message(reason: &str, message: &str) -> FailureReason {
    let r = reason.to_lowercase();
    let m = message.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if any(&["oomkilled", "oom"]) {
        FailureReason::OOMKilled
    } else if r.contains("timeout") || any(&["timeout", "deadline"]) {
        FailureReason::DeadlineExceeded
    } else if any(&["forbidden", "rbac", "permission denied"]) {
        FailureReason::Forbidden
    } else if any(&["quota", "resource exhausted"]) {
        FailureReason::ResourceExhausted
    } else if any(&["imagepullbackoff", "image pull"]) {
        FailureReason::ImagePullBackOff
    } else if any(&["invalid", "configuration"]) {
        FailureReason::ConfigurationError
    } else if r.contains("taskfailed") || (m.contains("task") && m.contains("failed")) {
        FailureReason::TaskFailed
    } else {
        FailureReason::Unknown
    }
}

/// What a job-agent observed about a failed Job and its pod, as plain strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFailureSignals<'a> {
    /// Reason of the Job's `Failed` condition, e.g. `BackoffLimitExceeded`, `DeadlineExceeded`.
    pub condition_reason: &'a str,
    /// Message of that condition or of the pod's failure.
    pub message: &'a str,
    /// `state.terminated.reason` of the workflow container, e.g. `OOMKilled`, `Error`.
    pub terminated_reason: Option<&'a str>,
    /// `state.waiting.reason` of the workflow container, e.g. `ImagePullBackOff`.
    pub waiting_reason: Option<&'a str>,
    /// `state.terminated.exitCode` of the workflow container.
    pub exit_code: Option<i32>,
}

/// Classifies a failed Job from container and condition signals. Upstream classified every
/// Job failure as `Unknown`; container states say much more. Falls back to the keyword rules
/// of [`classify_tekton_message`] on the condition reason and message.
pub fn classify_job_failure(s: &JobFailureSignals<'_>) -> FailureReason {
    match (s.terminated_reason, s.waiting_reason, s.condition_reason) {
        (Some("OOMKilled"), _, _) => FailureReason::OOMKilled,
        (_, Some("ImagePullBackOff" | "ErrImagePull" | "InvalidImageName"), _) => {
            FailureReason::ImagePullBackOff
        }
        (_, Some("CreateContainerConfigError" | "CreateContainerError"), _) => {
            FailureReason::ConfigurationError
        }
        (_, _, "DeadlineExceeded") => FailureReason::DeadlineExceeded,
        _ if s.exit_code.is_some_and(|c| c != 0) => FailureReason::TaskFailed,
        (_, _, "BackoffLimitExceeded") if s.terminated_reason.is_some() => {
            FailureReason::TaskFailed
        }
        _ => classify_tekton_message(s.condition_reason, s.message),
    }
}
