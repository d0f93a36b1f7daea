use super::*;
use k8s_openapi::api::batch::v1::{
    JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus,
    PodTemplateSpec,
};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn job(spec: impl FnOnce(&mut JobSpec)) -> Job {
    let mut s = JobSpec {
        backoff_limit: Some(0),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(
                    [(
                        "kubernaut.ai/execution-engine".to_string(),
                        "job".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "workflow".into(),
                    ..Default::default()
                }],
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
        },
        ..Default::default()
    };
    spec(&mut s);
    Job {
        metadata: ObjectMeta {
            name: Some("wfe-0123456789abcdef".into()),
            namespace: Some("ns".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(s),
        status: None,
    }
}

fn input(now: Timestamp) -> JobInputs<'static> {
    JobInputs {
        pods_in_flight: 0,
        pod_suffix: "abcde",
        retry_delay: Duration::from_secs(1),
        now,
    }
}

fn pod(phase: &str, exit_code: Option<i32>, finished: Timestamp) -> Pod {
    let state = exit_code.map(|code| ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            finished_at: Some(Time(finished)),
            ..Default::default()
        }),
        ..Default::default()
    });
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("p-{phase}-{}", finished.as_second())),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "workflow".into(),
                state,
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn status_of(step: &JobStep) -> JobStatus {
    step.actions
        .iter()
        .find_map(|a| match a {
            JobAction::UpdateStatus(s) => Some((**s).clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn with_status(mut job: Job, step: &JobStep) -> Job {
    job.status = Some(status_of(step));
    job
}

fn types(s: &JobStatus) -> Vec<(String, String)> {
    s.conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
        .collect()
}

#[test]
fn new_job_creates_a_labelled_owned_pod() {
    let j = job(|_| {});
    let step = next_job_step(&j, &[], input(t(0)));
    let JobAction::CreatePod(pod) = &step.actions[0] else {
        panic!("expected CreatePod: {step:?}")
    };
    assert_eq!(
        pod.metadata.name.as_deref(),
        Some("wfe-0123456789abcdef-abcde")
    );
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("job-name").map(String::as_str),
        Some("wfe-0123456789abcdef")
    );
    assert_eq!(
        labels
            .get("batch.kubernetes.io/controller-uid")
            .map(String::as_str),
        Some("job-uid")
    );
    assert_eq!(
        labels
            .get("kubernaut.ai/execution-engine")
            .map(String::as_str),
        Some("job")
    );
    let owner = &pod.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    assert_eq!(
        step.events[0].message,
        "Created pod: wfe-0123456789abcdef-abcde"
    );
    let s = status_of(&step);
    assert_eq!(
        (s.active, s.start_time.clone()),
        (Some(1), Some(Time(t(0))))
    );
}

#[test]
fn in_flight_pod_is_not_created_twice() {
    let j = job(|_| {});
    let step = next_job_step(
        &j,
        &[],
        JobInputs {
            pods_in_flight: 1,
            ..input(t(0))
        },
    );
    assert!(
        !step
            .actions
            .iter()
            .any(|a| matches!(a, JobAction::CreatePod(_)))
    );
}

#[test]
fn success_sets_success_criteria_then_complete() {
    let j = job(|_| {});
    let j = with_status(j.clone(), &next_job_step(&j, &[], input(t(0))));
    let step = next_job_step(&j, &[pod("Succeeded", Some(0), t(2))], input(t(2)));
    let s = status_of(&step);
    assert_eq!(
        types(&s),
        vec![
            ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
            ("Complete".into(), "CompletionsReached".into())
        ]
    );
    assert_eq!(
        s.conditions.clone().unwrap_or_default()[1]
            .message
            .as_deref(),
        Some("Reached expected number of succeeded pods")
    );
    assert_eq!(
        (s.succeeded, s.active, s.completion_time.clone()),
        (Some(1), Some(0), Some(Time(t(2))))
    );
    assert_eq!(step.events[0].reason, "Completed");
}

#[test]
fn failure_with_backoff_limit_zero_fails_job() {
    let j = job(|_| {});
    let step = next_job_step(&j, &[pod("Failed", Some(3), t(1))], input(t(1)));
    let s = status_of(&step);
    assert_eq!(
        types(&s)[1],
        ("Failed".into(), "BackoffLimitExceeded".into())
    );
    assert_eq!(s.failed, Some(1));
    assert!(s.completion_time.is_none());
    assert_eq!(
        step.events[0].message,
        "Job has reached the specified backoff limit"
    );
}

#[test]
fn retries_within_backoff_limit_after_delay() {
    let j = job(|s| s.backoff_limit = Some(2));
    let failed = [pod("Failed", Some(1), t(1))];
    let wait = next_job_step(&j, &failed, input(t(1)));
    assert_eq!(wait.requeue, Some(Duration::from_secs(1)));
    assert!(
        !wait
            .actions
            .iter()
            .any(|a| matches!(a, JobAction::CreatePod(_)))
    );
    let go = next_job_step(&j, &failed, input(t(2)));
    assert!(
        go.actions
            .iter()
            .any(|a| matches!(a, JobAction::CreatePod(_)))
    );
    assert_eq!(status_of(&go).failed, Some(1));
}

#[test]
fn ignored_oom_is_replaced_and_not_counted() {
    let policy = PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: "Ignore".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some("workflow".into()),
                operator: "In".into(),
                values: vec![137],
            }),
            ..Default::default()
        }],
    };
    let j = job(|s| s.pod_failure_policy = Some(policy));
    let step = next_job_step(&j, &[pod("Failed", Some(137), t(1))], input(t(5)));
    assert!(
        step.actions
            .iter()
            .any(|a| matches!(a, JobAction::CreatePod(_)))
    );
    assert_eq!(status_of(&step).failed, Some(0));
    assert!(types(&status_of(&step)).is_empty());
}

#[test]
fn fail_job_rule_fails_with_pod_failure_policy() {
    let policy = PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some("workflow".into()),
                operator: "In".into(),
                values: vec![42],
            }),
            ..Default::default()
        }],
    };
    let j = job(|s| {
        s.pod_failure_policy = Some(policy);
        s.backoff_limit = Some(5);
    });
    let s = status_of(&next_job_step(
        &j,
        &[pod("Failed", Some(42), t(1))],
        input(t(1)),
    ));
    let failed = s.conditions.unwrap_or_default().pop().unwrap_or_default();
    assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "Container workflow for pod ns/p-Failed-1700000001 failed with exit code 42 matching FailJob rule at index 0"
        )
    );
}

#[test]
fn deadline_deletes_active_pod_then_fails() {
    let j = job(|s| s.active_deadline_seconds = Some(10));
    let first = next_job_step(&j, &[], input(t(0)));
    assert_eq!(first.requeue, Some(Duration::from_secs(10)));
    let j = with_status(j, &first);
    let running = [pod("Running", None, t(0))];
    let step = next_job_step(&j, &running, input(t(10)));
    assert!(
        step.actions
            .contains(&JobAction::DeletePod("p-Running-1700000000".into()))
    );
    let s = status_of(&step);
    assert_eq!(
        types(&s),
        vec![("FailureTarget".into(), "DeadlineExceeded".into())]
    );
    assert_eq!(s.failed, Some(1));
    let j = with_status(j, &step);
    let done = next_job_step(&j, &[], input(t(11)));
    let s = status_of(&done);
    assert_eq!(types(&s)[1], ("Failed".into(), "DeadlineExceeded".into()));
    assert_eq!(s.failed, Some(1));
    assert_eq!(
        done.events[0].message,
        "Job was active longer than specified deadline"
    );
}

#[test]
fn ttl_deletes_finished_job_when_due() {
    let j = job(|s| s.ttl_seconds_after_finished = Some(30));
    let j = with_status(
        j.clone(),
        &next_job_step(&j, &[pod("Succeeded", Some(0), t(0))], input(t(0))),
    );
    assert_eq!(
        next_job_step(&j, &[], input(t(10))).requeue,
        Some(Duration::from_secs(20))
    );
    assert_eq!(
        next_job_step(&j, &[], input(t(30))).actions,
        vec![JobAction::DeleteJob]
    );
    let no_ttl = job(|_| {});
    let no_ttl = with_status(
        no_ttl.clone(),
        &next_job_step(&no_ttl, &[pod("Succeeded", Some(0), t(0))], input(t(0))),
    );
    assert_eq!(
        next_job_step(&no_ttl, &[], input(t(1000))),
        JobStep::default()
    );
}

#[test]
fn odd_jobs_do_not_panic() {
    let mut j = job(|_| {});
    j.spec = None;
    let step = next_job_step(&j, &[], input(t(0)));
    assert!(matches!(step.actions[0], JobAction::CreatePod(_)));
    let steady = with_status(j.clone(), &step);
    let again = next_job_step(&steady, &[pod("Running", None, t(0))], input(t(1)));
    assert!(
        again.actions.is_empty(),
        "no rewrite when nothing changed: {again:?}"
    );
}
