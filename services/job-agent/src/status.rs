//! Job + its Pods + Events → an [`Observation`]. Pure, with table tests.
//!
//! Better than upstream (which reported every Job failure as `Unknown`): the container's
//! terminated reason gives OOMKilled and the exit code; waiting reasons and Events give
//! ImagePullBackOff and missing secrets / config maps (ConfigurationError); the Job's
//! `DeadlineExceeded` condition gives DeadlineExceeded; `wasExecutionFailure` is true only
//! if the container actually started; the retry count comes from the pods created.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use wfe_agent::primitive::{Observation, Owner, Progress};
use wfe_core::failure::{FailureDetails, FailureReason, JobFailureSignals, classify_job_failure};
use wfe_proto::agent::PrimitivePhase;

use crate::job::CONTAINER;

/// When the agent gives up on a Job before Kubernetes does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// OOM kills tolerated (the pod failure policy retries exit 137); one more fails the
    /// execution with OOMKilled instead of retrying until the deadline.
    pub oom_kill_limit: u32,
    /// How long a container may stay unable to start (image pull, missing secret) before
    /// the execution fails: such errors rarely heal, and waiting for the deadline hides them.
    pub stuck_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            oom_kill_limit: 2,
            stuck_grace: Duration::from_secs(120),
        }
    }
}

/// The mapper's conclusion.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    /// What to report.
    pub observation: Observation,
    /// The agent decided the execution failed while the Job still runs: delete the Job.
    pub abort: bool,
}

/// What the pods of a Job say.
#[derive(Debug, Default, Clone)]
struct PodFacts {
    created: u32,
    oom_kills: u32,
    started_at: Option<Timestamp>,
    started: bool,
    terminated_reason: Option<String>,
    exit_code: Option<i32>,
    terminated_message: Option<String>,
    waiting_reason: Option<String>,
    waiting_message: Option<String>,
    active: u32,
}

fn workflow_status(pod: &Pod) -> Option<&ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find(|c| c.name == CONTAINER)
        .or_else(|| statuses.first())
}

fn pod_facts(pods: &[&Pod]) -> PodFacts {
    let mut f = PodFacts {
        created: u32::try_from(pods.len()).unwrap_or(u32::MAX),
        ..Default::default()
    };
    let mut sorted: Vec<&Pod> = pods.to_vec();
    sorted.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    for pod in sorted {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Pending" | "Running")) {
            f.active += 1;
        }
        let Some(cs) = workflow_status(pod) else {
            continue;
        };
        let state = cs.state.as_ref();
        if let Some(r) = state.and_then(|s| s.running.as_ref()) {
            f.started = true;
            let at = r.started_at.as_ref().map(|t| t.0);
            f.started_at = f.started_at.or(at);
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            // A container that terminated after running has a start time; ContainerCannotRun
            // and StartError never ran the workload.
            let ran = !matches!(
                t.reason.as_deref(),
                Some("ContainerCannotRun" | "StartError")
            );
            if ran {
                f.started = true;
                f.started_at = f.started_at.or(t.started_at.as_ref().map(|s| s.0));
            }
            if t.reason.as_deref() == Some("OOMKilled") {
                f.oom_kills += 1;
            }
            f.terminated_reason = t.reason.clone();
            f.exit_code = Some(t.exit_code);
            f.terminated_message = t.message.clone();
        }
        let waiting = state.and_then(|s| s.waiting.as_ref());
        f.waiting_reason = waiting.and_then(|w| w.reason.clone());
        f.waiting_message = waiting.and_then(|w| w.message.clone());
    }
    f
}

/// Upstream's enrichment (#1481/#1645): the first mount, config or image-pull problem
/// among the pods' events.
fn blocking_event<'a>(events: &[&'a Event]) -> Option<&'a Event> {
    let mut sorted: Vec<&Event> = events.to_vec();
    sorted.sort_by_key(|e| e.first_timestamp.as_ref().map(|t| t.0));
    sorted.into_iter().find(|e| {
        let msg = e.message.as_deref().unwrap_or("").to_lowercase();
        match e.reason.as_deref() {
            // The Job controller could not create the pod at all (a missing
            // ServiceAccount, PodSecurity, a pod quota): nothing will run until that
            // changes.
            Some("FailedCreate") => e.involved_object.kind.as_deref() == Some("Job"),
            Some("FailedMount" | "CreateContainerConfigError") => true,
            Some("Failed") if is_missing_reference(&msg) => true,
            Some("Failed" | "BackOff") => ["pull image", "errimagepull", "imagepullbackoff"]
                .iter()
                .any(|w| msg.contains(w)),
            _ => false,
        }
    })
}

/// The real kubelet reports an env `valueFrom`/`envFrom` reference to a missing Secret or
/// ConfigMap (waiting reason CreateContainerConfigError) as event reason `Failed`, message
/// `Error: secret "x" not found` / `Error: configmap "x" not found` / `Error: couldn't
/// find key k in Secret ns/x`. `msg` is lowercased.
fn is_missing_reference(msg: &str) -> bool {
    let names_object = ["secret \"", "configmap \""]
        .iter()
        .any(|w| msg.contains(w));
    (names_object && msg.contains("not found")) || msg.contains("couldn't find key")
}

fn blocking_reason(e: &Event) -> FailureReason {
    let msg = e.message.as_deref().unwrap_or("").to_lowercase();
    match e.reason.as_deref() {
        Some("FailedCreate") => pod_refusal_reason(&msg),
        Some("FailedMount" | "CreateContainerConfigError") => FailureReason::ConfigurationError,
        Some("Failed") if is_missing_reference(&msg) => FailureReason::ConfigurationError,
        _ => FailureReason::ImagePullBackOff,
    }
}

/// Why the API server refused the Job's pod (`msg` lowercased, the Job controller's
/// `Error creating: pods "x-" is forbidden: …`): over a quota is ResourceExhausted; a
/// ServiceAccount that does not exist or a pod the namespace's PodSecurity level
/// refuses is the workflow's configuration; any other refusal (an admission webhook,
/// RBAC) is Forbidden.
fn pod_refusal_reason(msg: &str) -> FailureReason {
    if msg.contains("exceeded quota") {
        FailureReason::ResourceExhausted
    } else if msg.contains("error looking up service account")
        || msg.contains("violates podsecurity")
    {
        FailureReason::ConfigurationError
    } else if msg.contains("forbidden") {
        FailureReason::Forbidden
    } else {
        FailureReason::ConfigurationError
    }
}

/// When the workflow container first started according to the kubelet's `Started`
/// events. Events outlive pods: after `activeDeadlineSeconds` the Job controller deletes
/// the running pod, and only its events still say the workload ran.
fn started_by_events(events: &[&Event]) -> Option<Timestamp> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Started"))
        .filter(|e| e.involved_object.kind.as_deref() == Some("Pod"))
        .filter(|e| {
            e.involved_object
                .field_path
                .as_deref()
                .is_none_or(|f| f.contains(&format!("{{{CONTAINER}}}")))
        })
        .filter_map(|e| {
            e.first_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        })
        .min()
}

/// Pods created for the Job according to its `SuccessfulCreate` events (count 0 is 1).
fn created_by_events(events: &[&Event]) -> u32 {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
        .filter(|e| e.involved_object.kind.as_deref() == Some("Job"))
        .map(|e| u32::try_from(e.count.unwrap_or(1).max(1)).unwrap_or(1))
        .sum()
}

fn condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Maps a Job, its pods and the events about both to what the agent reports.
pub fn job_state(
    job: &Job,
    pods: &[&Pod],
    events: &[&Event],
    owner: &Owner,
    policy: &Policy,
    now: Timestamp,
) -> JobState {
    let mut facts = pod_facts(pods);
    if let Some(at) = started_by_events(events) {
        facts.started = true;
        facts.started_at = Some(facts.started_at.map_or(at, |p| p.min(at)));
    }
    let retries = facts
        .created
        .max(created_by_events(events))
        .saturating_sub(1);
    let blocker = blocking_event(events);
    let mut state = if let Some(c) = condition(job, "Complete") {
        let mut o = Observation::new(
            PrimitivePhase::Succeeded,
            "Complete",
            c.message.clone().unwrap_or_else(|| "Job completed".into()),
        );
        o.completed_at = job
            .status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .or(c.last_transition_time.as_ref())
            .map(|t| t.0);
        o.progress.completed = 1;
        JobState {
            observation: o,
            abort: false,
        }
    } else if let Some(c) = condition(job, "Failed") {
        let at = c.last_transition_time.as_ref().map_or(now, |t| t.0);
        let details = failure(
            &facts,
            blocker,
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or(""),
            at,
        );
        JobState {
            observation: Observation::failed(details, owner),
            abort: false,
        }
    } else {
        running(job, &facts, blocker, owner, policy, now)
    };
    state.observation.started_at = facts.started_at;
    state.observation.progress = Progress {
        completed: state.observation.progress.completed,
        total: 1,
        retries,
    };
    if let Some(f) = state.observation.failure.as_mut() {
        f.execution_time_before_failure = facts
            .started_at
            .map(|s| Duration::try_from(f.failed_at.duration_since(s)).unwrap_or_default());
        *f = f.clone().with_summary(&owner.workflow_id, &owner.target);
    }
    state
}

fn failure(
    facts: &PodFacts,
    blocker: Option<&Event>,
    condition_reason: &str,
    condition_message: &str,
    at: Timestamp,
) -> FailureDetails {
    // A container that never started and an event naming why: that is the cause, even if
    // the Job ended by its deadline.
    if !facts.started
        && let Some(e) = blocker
    {
        let msg = e.message.clone().unwrap_or_default();
        let mut d = FailureDetails::new(blocking_reason(e), msg, false, at);
        d.exit_code = None;
        return d;
    }
    let waiting_msg = facts.waiting_message.clone();
    let message = match (&facts.terminated_reason, facts.exit_code) {
        (Some(r), Some(code)) if facts.started && code != 0 => {
            let extra = facts
                .terminated_message
                .clone()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            format!(
                "container {CONTAINER} terminated ({r}, exit code {code}){extra}; {condition_message}"
            )
        }
        _ => waiting_msg.unwrap_or_else(|| condition_message.to_owned()),
    };
    let signals = JobFailureSignals {
        condition_reason,
        message: &message,
        terminated_reason: facts.terminated_reason.as_deref(),
        waiting_reason: facts.waiting_reason.as_deref(),
        exit_code: facts.exit_code,
    };
    let reason = classify_job_failure(&signals);
    let mut d = FailureDetails::new(reason, message, facts.started, at);
    if facts.started {
        // A timeout has no exit code: a container stopped at the deadline exits with the
        // kill's code (137, 143) or none, depending on when the agent looked.
        d.exit_code = facts
            .exit_code
            .filter(|c| *c != 0 && reason != FailureReason::DeadlineExceeded);
        d.failed_task_name = Some(CONTAINER.to_owned());
    }
    d
}

/// No terminal condition yet: Pending until the container starts, then Running; the
/// agent gives up early on repeated OOM kills and on containers that cannot start.
fn running(
    job: &Job,
    facts: &PodFacts,
    blocker: Option<&Event>,
    owner: &Owner,
    policy: &Policy,
    now: Timestamp,
) -> JobState {
    if facts.oom_kills > policy.oom_kill_limit {
        let message = format!(
            "container {CONTAINER} was OOMKilled {} times (exit code 137); giving up instead of retrying until the deadline",
            facts.oom_kills
        );
        let mut d = FailureDetails::new(FailureReason::OOMKilled, message, true, now);
        d.exit_code = Some(crate::job::SIGKILL_EXIT_CODE);
        d.failed_task_name = Some(CONTAINER.to_owned());
        return JobState {
            observation: Observation::failed(d, owner),
            abort: true,
        };
    }
    if facts.started {
        let (reason, message) = if facts.oom_kills > 0 {
            (
                "OOMKilled",
                format!(
                    "container {CONTAINER} was OOMKilled {} time(s); retrying (exit code 137 is ignored by the pod failure policy)",
                    facts.oom_kills
                ),
            )
        } else {
            (
                "Running",
                format!("Job running ({}/1 pods active)", facts.active),
            )
        };
        return JobState {
            observation: Observation::new(PrimitivePhase::Running, reason, message),
            abort: false,
        };
    }
    let created = job
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let stuck_for = Duration::try_from(now.duration_since(created)).unwrap_or_default();
    if let Some((cause, reason, message)) = cannot_start(facts, blocker) {
        if stuck_for >= policy.stuck_grace {
            let d = FailureDetails::new(cause, message, false, now);
            return JobState {
                observation: Observation::failed(d, owner),
                abort: true,
            };
        }
        return JobState {
            observation: Observation::new(PrimitivePhase::Pending, &reason, message),
            abort: false,
        };
    }
    let reason = facts
        .waiting_reason
        .clone()
        .unwrap_or_else(|| "Pending".into());
    let message = facts
        .waiting_message
        .clone()
        .unwrap_or_else(|| "Job created, waiting for the workflow container to start".into());
    JobState {
        observation: Observation::new(PrimitivePhase::Pending, &reason, message),
        abort: false,
    }
}

/// Why the container cannot start, if it cannot: an event, else a waiting reason that
/// does not heal by itself. (cause, CamelCase reason, message)
fn cannot_start(
    facts: &PodFacts,
    blocker: Option<&Event>,
) -> Option<(FailureReason, String, String)> {
    if let Some(e) = blocker {
        let reason = e.reason.clone().unwrap_or_default();
        return Some((
            blocking_reason(e),
            reason,
            e.message.clone().unwrap_or_default(),
        ));
    }
    let waiting = facts.waiting_reason.as_deref()?;
    let cause = match waiting {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" => FailureReason::ImagePullBackOff,
        "CreateContainerConfigError" => FailureReason::ConfigurationError,
        _ => return None,
    };
    let message = facts
        .waiting_message
        .clone()
        .unwrap_or_else(|| waiting.to_owned());
    Some((cause, waiting.to_owned(), message))
}

#[cfg(test)]
mod tests;
