//! The simulated kubelet's decisions, pure: given a Pod, its behaviour and what
//! exists in the namespace, what status to write, which events to record, and when
//! to look again.
//!
//! ```text
//! (new) --Scheduled--> Pending/ContainerCreating --+--> Running --duration--> Succeeded | Failed
//!                                                  +--> FailedMount (retry, never starts)
//!                                                  +--> ErrImagePull <-> ImagePullBackOff
//!                                                  +--> CreateContainerConfigError (retry)
//! ```

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::behaviour::Outcome;
pub use super::blockers::{Blocker, RefKind, find_blocker};
use super::events::{EventDraft, NODE_NAME};
use super::podstatus::{
    self, Termination, condition, containers, has_condition, main_container, set_condition,
};

/// Simulated delays of the kubelet (already scaled by the time scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KubeletTiming {
    /// From Scheduled to Running.
    pub startup: Duration,
    /// Between retries of a failed mount / config lookup.
    pub retry: Duration,
    /// Between image pull attempts.
    pub pull_backoff: Duration,
}

/// What the kubelet does next with one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodStep {
    /// The new status to write, when it changed.
    pub status: Option<PodStatus>,
    /// Events about the pod.
    pub events: Vec<EventDraft>,
    /// Look again after this long (no watch event would wake us).
    pub requeue: Option<Duration>,
    /// When the containers started, for the caller's precise-start memory.
    pub started: Option<Timestamp>,
}

/// Decides the next step for a pod. `started` is the precise start remembered by the
/// caller (the status only keeps whole seconds).
pub fn next_pod_step(
    pod: &Pod,
    outcome: &Outcome,
    duration: Duration,
    blocker: Option<&Blocker>,
    started: Option<Timestamp>,
    timing: KubeletTiming,
    now: Timestamp,
) -> PodStep {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some() {
        return PodStep::default();
    }
    if !has_condition(pod, "PodScheduled") {
        return schedule(pod, now);
    }
    match started.or_else(|| running_since(pod)) {
        Some(started) => finish_if_due(pod, outcome, duration, started, now),
        None => try_start(pod, blocker, timing, now),
    }
}

fn schedule(pod: &Pod, now: Timestamp) -> PodStep {
    let mut status = podstatus::scheduled_status(pod, now);
    set_condition(&mut status, "PodScheduled", true, None, None, now);
    let name = format!(
        "{}/{}",
        namespace(pod),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    let message = format!("Successfully assigned {name} to {NODE_NAME}");
    PodStep {
        status: Some(status),
        events: vec![EventDraft::normal("Scheduled", message)],
        ..PodStep::default()
    }
}

fn try_start(
    pod: &Pod,
    blocker: Option<&Blocker>,
    timing: KubeletTiming,
    now: Timestamp,
) -> PodStep {
    let scheduled_at = condition(pod, "PodScheduled").and_then(|c| c.last_transition_time.clone());
    if let Some(at) = scheduled_at {
        let ready_at = at.0.checked_add(signed(timing.startup)).unwrap_or(at.0);
        if now < ready_at {
            return PodStep {
                requeue: Some(until(now, ready_at)),
                ..PodStep::default()
            };
        }
    }
    match blocker {
        Some(Blocker::Mount { volume, kind, name }) => {
            mount_failed(pod, volume, *kind, name, timing, now)
        }
        Some(Blocker::Config { kind, name }) => config_error(pod, *kind, name, timing, now),
        Some(Blocker::ImagePull) => pull_failed(pod, timing, now),
        None => start(pod, now),
    }
}

fn mount_failed(
    pod: &Pod,
    volume: &str,
    kind: RefKind,
    name: &str,
    timing: KubeletTiming,
    now: Timestamp,
) -> PodStep {
    let kind = kind.word();
    let message =
        format!("MountVolume.SetUp failed for volume \"{volume}\" : {kind} \"{name}\" not found");
    let status = pending_status(pod, "ContainerCreating", None, now);
    PodStep {
        status: changed(pod, status),
        events: vec![EventDraft::warning("FailedMount", message)],
        requeue: Some(timing.retry),
        started: None,
    }
}

fn config_error(
    pod: &Pod,
    kind: RefKind,
    name: &str,
    timing: KubeletTiming,
    now: Timestamp,
) -> PodStep {
    let detail = format!("{} \"{name}\" not found", kind.word());
    let status = pending_status(pod, "CreateContainerConfigError", Some(&detail), now);
    let container = main_name(pod);
    let mut events = pulled_events(pod);
    events.push(EventDraft::warning("Failed", format!("Error: {detail}")).on_container(&container));
    PodStep {
        status: changed(pod, status),
        events,
        requeue: Some(timing.retry),
        started: None,
    }
}

fn pull_failed(pod: &Pod, timing: KubeletTiming, now: Timestamp) -> PodStep {
    let container = main_name(pod);
    let image = main_image(pod);
    let was_err_pull = main_waiting_reason(pod).as_deref() == Some("ErrImagePull");
    let (reason, events) = if was_err_pull {
        let back_off = format!("Back-off pulling image \"{image}\"");
        let events = vec![
            EventDraft::normal("BackOff", back_off).on_container(&container),
            EventDraft::warning("Failed", "Error: ImagePullBackOff").on_container(&container),
        ];
        ("ImagePullBackOff", events)
    } else {
        let failed = format!(
            "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found: manifest unknown"
        );
        let events = vec![
            EventDraft::normal("Pulling", format!("Pulling image \"{image}\""))
                .on_container(&container),
            EventDraft::warning("Failed", failed).on_container(&container),
            EventDraft::warning("Failed", "Error: ErrImagePull").on_container(&container),
        ];
        ("ErrImagePull", events)
    };
    let message =
        (reason == "ImagePullBackOff").then(|| format!("Back-off pulling image \"{image}\""));
    let status = pending_status(pod, reason, message.as_deref(), now);
    PodStep {
        status: changed(pod, status),
        events,
        requeue: Some(timing.pull_backoff),
        started: None,
    }
}

fn start(pod: &Pod, now: Timestamp) -> PodStep {
    let mut status = pod.status.clone().unwrap_or_default();
    status.phase = Some("Running".to_string());
    status.container_statuses = Some(podstatus::running(pod, now));
    for type_ in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        set_condition(&mut status, type_, true, None, None, now);
    }
    let mut events = pulled_events(pod);
    for c in containers(pod) {
        events.push(
            EventDraft::normal("Created", format!("Created container: {}", c.name))
                .on_container(&c.name),
        );
        events.push(
            EventDraft::normal("Started", format!("Started container {}", c.name))
                .on_container(&c.name),
        );
    }
    // No requeue here: our own status write comes back as a watch event, and that
    // reconcile (knowing the precise start) sets the finish timer.
    PodStep {
        status: Some(status),
        events,
        requeue: None,
        started: Some(now),
    }
}

fn finish_if_due(
    pod: &Pod,
    outcome: &Outcome,
    duration: Duration,
    started: Timestamp,
    now: Timestamp,
) -> PodStep {
    if *outcome == Outcome::Hang {
        return PodStep {
            started: Some(started),
            ..PodStep::default()
        };
    }
    let due = started.checked_add(signed(duration)).unwrap_or(started);
    if now < due {
        return PodStep {
            requeue: Some(until(now, due)),
            started: Some(started),
            ..PodStep::default()
        };
    }
    let (termination, disrupted) = match outcome {
        Outcome::Fail(code) | Outcome::FailTask { code, .. } => (
            Termination {
                exit_code: *code,
                reason: "Error",
            },
            false,
        ),
        Outcome::Oom => (
            Termination {
                exit_code: 137,
                reason: "OOMKilled",
            },
            false,
        ),
        Outcome::Disrupt => (
            Termination {
                exit_code: 137,
                reason: "Error",
            },
            true,
        ),
        _ => (Termination::COMPLETED, false),
    };
    let mut status = pod.status.clone().unwrap_or_default();
    let succeeded = termination.exit_code == 0;
    status.phase = Some(if succeeded { "Succeeded" } else { "Failed" }.to_string());
    let started_at = running_since(pod).unwrap_or(started);
    status.container_statuses = Some(podstatus::terminated(pod, &termination, started_at, now));
    let reason = if succeeded {
        "PodCompleted"
    } else {
        "PodFailed"
    };
    for type_ in ["PodReadyToStartContainers", "ContainersReady", "Ready"] {
        set_condition(&mut status, type_, false, Some(reason), None, now);
    }
    let mut events = Vec::new();
    if disrupted {
        let message = "Pod was terminated in response to imminent node shutdown.";
        set_condition(
            &mut status,
            "DisruptionTarget",
            true,
            Some("TerminationByKubelet"),
            Some(message),
            now,
        );
        status.reason = Some("Terminated".to_string());
        status.message = Some(message.to_string());
        events.push(
            EventDraft::normal("Killing", format!("Stopping container {}", main_name(pod)))
                .on_container(&main_name(pod)),
        );
    }
    PodStep {
        status: Some(status),
        events,
        requeue: None,
        started: None,
    }
}

/// Pending with every container waiting for `reason`.
fn pending_status(pod: &Pod, reason: &str, message: Option<&str>, now: Timestamp) -> PodStatus {
    let mut status = pod.status.clone().unwrap_or_default();
    status.phase = Some("Pending".to_string());
    status.container_statuses = Some(podstatus::waiting(pod, reason, message));
    let not_ready = "containers with unready status: [".to_string() + &container_names(pod) + "]";
    set_condition(
        &mut status,
        "PodReadyToStartContainers",
        reason != "ContainerCreating",
        None,
        None,
        now,
    );
    set_condition(&mut status, "Initialized", true, None, None, now);
    set_condition(
        &mut status,
        "ContainersReady",
        false,
        Some("ContainersNotReady"),
        Some(&not_ready),
        now,
    );
    set_condition(
        &mut status,
        "Ready",
        false,
        Some("ContainersNotReady"),
        Some(&not_ready),
        now,
    );
    status
}

fn pulled_events(pod: &Pod) -> Vec<EventDraft> {
    containers(pod)
        .iter()
        .map(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            let message = format!("Container image \"{image}\" already present on machine");
            EventDraft::normal("Pulled", message).on_container(&c.name)
        })
        .collect()
}

/// The new status unless it equals the current one (no write, no watch echo).
fn changed(pod: &Pod, status: PodStatus) -> Option<PodStatus> {
    (pod.status.as_ref() != Some(&status)).then_some(status)
}

/// When the main container started running (or ran), from the status.
pub fn running_since(pod: &Pod) -> Option<Timestamp> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let main = main_name(pod);
    let state = statuses.iter().find(|s| s.name == main)?.state.as_ref()?;
    let running = state.running.as_ref().and_then(|r| r.started_at.clone());
    let terminated = state.terminated.as_ref().and_then(|t| t.started_at.clone());
    running.or(terminated).map(|t| t.0)
}

fn main_waiting_reason(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let main = main_name(pod);
    let state = statuses.iter().find(|s| s.name == main)?.state.as_ref()?;
    state.waiting.as_ref()?.reason.clone()
}

fn main_name(pod: &Pod) -> String {
    main_container(containers(pod))
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

fn main_image(pod: &Pod) -> String {
    main_container(containers(pod))
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn container_names(pod: &Pod) -> String {
    containers(pod)
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// A std duration as a jiff span (saturating at a day's worth of years, never panics).
pub fn signed(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

/// Time from `now` until `at` (zero when past).
pub fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
#[path = "kubelet_logic_tests.rs"]
mod tests;
