//! The simulated Job controller's decisions, pure: given a Job and its pods, which
//! pods to create or delete, the new Job status, the events, and when to look again.
//!
//! Conditions follow Kubernetes 1.31+: `SuccessCriteriaMet` then `Complete`;
//! `FailureTarget` (active pods are deleted) then `Failed` once none is active.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::events::EventDraft;
use super::kubelet_logic::{signed, until};
use super::pod_failure::{Verdict, evaluate};

/// Kubernetes' default `backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// A change the Job controller makes.
#[derive(Clone, Debug, PartialEq)]
pub enum JobAction {
    /// Create this pod.
    CreatePod(Box<Pod>),
    /// Delete the named active pod (deadline or failure).
    DeletePod(String),
    /// Replace the Job's status.
    UpdateStatus(Box<JobStatus>),
    /// Delete the Job with background propagation (`ttlSecondsAfterFinished`).
    DeleteJob,
}

/// What the Job controller does next with one Job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobStep {
    /// Changes, in order.
    pub actions: Vec<JobAction>,
    /// Events about the Job.
    pub events: Vec<EventDraft>,
    /// Look again after this long.
    pub requeue: Option<Duration>,
}

/// Inputs beyond the Job and its pods.
#[derive(Clone, Copy, Debug)]
pub struct JobInputs<'a> {
    /// Pods created but not yet seen in the cache (the controller's "expectations").
    pub pods_in_flight: usize,
    /// Five lower-case alphanumerics for the next pod's name.
    pub pod_suffix: &'a str,
    /// Wait after a failed pod before creating its replacement.
    pub retry_delay: Duration,
    /// Current time.
    pub now: Timestamp,
}

struct Counts<'a> {
    active: Vec<&'a Pod>,
    ready: i32,
    succeeded: i32,
    failed: i32,
    fail_job: Option<String>,
    last_failure: Option<Timestamp>,
}

/// Decides the next step for a Job.
pub fn next_job_step(job: &Job, pods: &[Pod], input: JobInputs<'_>) -> JobStep {
    if job.metadata.deletion_timestamp.is_some() {
        return JobStep::default();
    }
    if let Some(finished_at) = finished_at(job) {
        return ttl_step(job, finished_at, input.now);
    }
    if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) {
        return JobStep::default();
    }
    let counts = count(job, pods);
    let mut status = job.status.clone().unwrap_or_default();
    let start = status.start_time.clone().map_or(input.now, |t| t.0);
    status.start_time = Some(Time(start));
    let mut step = JobStep::default();
    let target = terminal_target(job, &status, &counts, start, input.now);
    match target {
        Some(t) => finish(&mut step, &mut status, &counts, t, input.now),
        None => run(&mut step, job, &counts, start, input),
    }
    status.active = Some(counts.active.len() as i32 + input.pods_in_flight as i32);
    if step
        .actions
        .iter()
        .any(|a| matches!(a, JobAction::CreatePod(_)))
    {
        status.active = status.active.map(|a| a + 1);
    }
    status.ready = Some(counts.ready);
    status.succeeded = Some(counts.succeeded);
    status.failed = Some(counts.failed.max(status.failed.unwrap_or(0)));
    if job.status.as_ref() != Some(&status) {
        step.actions.push(JobAction::UpdateStatus(Box::new(status)));
    }
    step
}

/// The end a Job is heading for.
#[derive(Clone, Debug, PartialEq)]
struct Target {
    success: bool,
    reason: String,
    message: String,
}

fn terminal_target(
    job: &Job,
    status: &JobStatus,
    c: &Counts<'_>,
    start: Timestamp,
    now: Timestamp,
) -> Option<Target> {
    let spec = job.spec.as_ref();
    let existing = |type_: &str, success| {
        condition(status, type_).map(|cond| Target {
            success,
            reason: cond.reason.clone().unwrap_or_default(),
            message: cond.message.clone().unwrap_or_default(),
        })
    };
    let fail = |reason: &str, message: &str| Target {
        success: false,
        reason: reason.into(),
        message: message.into(),
    };
    if let Some(t) =
        existing("FailureTarget", false).or_else(|| existing("SuccessCriteriaMet", true))
    {
        return Some(t);
    }
    if let Some(message) = &c.fail_job {
        return Some(fail("PodFailurePolicy", message));
    }
    let backoff_limit = spec
        .and_then(|s| s.backoff_limit)
        .unwrap_or(DEFAULT_BACKOFF_LIMIT);
    if c.failed > backoff_limit {
        return Some(fail(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    }
    let completions = spec.and_then(|s| s.completions).unwrap_or(1);
    if c.succeeded >= completions {
        let message = "Reached expected number of succeeded pods";
        return Some(Target {
            success: true,
            reason: "CompletionsReached".into(),
            message: message.into(),
        });
    }
    let deadline = deadline(job, start)?;
    (now >= deadline).then(|| {
        fail(
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
    })
}

fn deadline(job: &Job, start: Timestamp) -> Option<Timestamp> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    start
        .checked_add(jiff::SignedDuration::from_secs(seconds.max(0)))
        .ok()
}

/// Sets the interim condition, deletes active pods, and the final condition when none is left.
fn finish(step: &mut JobStep, status: &mut JobStatus, c: &Counts<'_>, t: Target, now: Timestamp) {
    let (interim, last) = if t.success {
        ("SuccessCriteriaMet", "Complete")
    } else {
        ("FailureTarget", "Failed")
    };
    if !t.success && condition(status, interim).is_none() {
        // Pods killed for the Job's failure count as failed, as in the real controller.
        status.failed = Some(status.failed.unwrap_or(0) + c.active.len() as i32);
    }
    set_condition(status, interim, &t, now);
    for pod in &c.active {
        let name = pod.metadata.name.clone().unwrap_or_default();
        step.events.push(EventDraft::normal(
            "SuccessfulDelete",
            format!("Deleted pod: {name}"),
        ));
        step.actions.push(JobAction::DeletePod(name));
    }
    if !c.active.is_empty() {
        return;
    }
    set_condition(status, last, &t, now);
    if t.success {
        status.completion_time = Some(Time(now));
        step.events
            .push(EventDraft::normal("Completed", "Job completed"));
    } else {
        step.events
            .push(EventDraft::warning(&t.reason, t.message.clone()));
    }
}

/// Keeps one pod running: creates it when none is active, after the retry delay.
fn run(step: &mut JobStep, job: &Job, c: &Counts<'_>, start: Timestamp, input: JobInputs<'_>) {
    if let Some(deadline) = deadline(job, start) {
        step.requeue = Some(until(input.now, deadline));
    }
    if !c.active.is_empty() || input.pods_in_flight > 0 {
        return;
    }
    if let Some(last) = c.last_failure {
        let retry_at = last.checked_add(signed(input.retry_delay)).unwrap_or(last);
        if input.now < retry_at {
            let wait = until(input.now, retry_at);
            step.requeue = Some(step.requeue.map_or(wait, |r| r.min(wait)));
            return;
        }
    }
    let pod = pod_for(job, input.pod_suffix);
    let name = pod.metadata.name.clone().unwrap_or_default();
    step.actions.push(JobAction::CreatePod(Box::new(pod)));
    step.events.push(EventDraft::normal(
        "SuccessfulCreate",
        format!("Created pod: {name}"),
    ));
}

fn ttl_step(job: &Job, finished_at: Timestamp, now: Timestamp) -> JobStep {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return JobStep::default();
    };
    let due = finished_at
        .checked_add(jiff::SignedDuration::from_secs(i64::from(ttl.max(0))))
        .unwrap_or(finished_at);
    if now >= due {
        return JobStep {
            actions: vec![JobAction::DeleteJob],
            ..JobStep::default()
        };
    }
    JobStep {
        requeue: Some(until(now, due)),
        ..JobStep::default()
    }
}

/// When the Job finished (`Complete` or `Failed` true), if it did.
fn finished_at(job: &Job) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    let done = ["Complete", "Failed"]
        .iter()
        .find_map(|t| condition(status, t))?;
    let at = status
        .completion_time
        .clone()
        .or_else(|| done.last_transition_time.clone());
    Some(at.map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

fn count<'a>(job: &Job, pods: &'a [Pod]) -> Counts<'a> {
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref());
    let mut c = Counts {
        active: Vec::new(),
        ready: 0,
        succeeded: 0,
        failed: 0,
        fail_job: None,
        last_failure: None,
    };
    for pod in pods {
        let status = pod.status.as_ref();
        match status.and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => c.succeeded += 1,
            Some("Failed") => {
                let ended = finished(pod);
                c.last_failure = c.last_failure.max(ended);
                match evaluate(policy, pod) {
                    Verdict::Ignore => {}
                    Verdict::Count => c.failed += 1,
                    Verdict::FailJob(message) => {
                        c.failed += 1;
                        c.fail_job.get_or_insert(message);
                    }
                }
            }
            _ if pod.metadata.deletion_timestamp.is_some() => {}
            _ => {
                c.ready += i32::from(is_ready(pod));
                c.active.push(pod);
            }
        }
    }
    c
}

fn finished(pod: &Pod) -> Option<Timestamp> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .filter_map(|s| s.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
        .map(|t| t.0)
        .max()
        .or_else(|| pod.metadata.creation_timestamp.clone().map(|t| t.0))
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn set_condition(status: &mut JobStatus, type_: &str, t: &Target, now: Timestamp) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
    {
        return;
    }
    conditions.retain(|c| c.type_ != type_);
    conditions.push(JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: Some(t.reason.clone()),
        message: Some(t.message.clone()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

/// The pod the Job controller creates from the Job's template.
pub fn pod_for(job: &Job, suffix: &str) -> Pod {
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template_meta.labels.unwrap_or_default();
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &job_name),
        ("controller-uid", &uid),
        ("job-name", &job_name),
    ] {
        labels.insert(k.to_string(), v.clone());
    }
    // generateName keeps names within 63 characters by cutting the prefix.
    let prefix: String = job_name.chars().take(57).collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}-{suffix}")),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: template_meta.annotations,
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".to_string(),
                kind: "Job".to_string(),
                name: job_name,
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
#[path = "job_logic_tests.rs"]
mod tests;
