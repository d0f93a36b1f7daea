use super::*;
use serde_json::{Value, json};
use wfe_proto::agent::ExecutionKey;

fn t(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp")
}

fn job(conditions: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": "wfe-1-a1", "namespace": "ns", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "status": {"conditions": conditions}
    }))
    .expect("valid job")
}

fn failed(reason: &str, message: &str) -> Job {
    job(
        json!([{"type": "Failed", "status": "True", "reason": reason, "message": message,
                "lastTransitionTime": "2025-01-01T00:01:00Z"}]),
    )
}

fn pod(name: &str, created: &str, state: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "workflow", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}
        ]}
    }))
    .expect("valid pod")
}

fn running_state() -> Value {
    json!({"running": {"startedAt": "2025-01-01T00:00:05Z"}})
}

fn terminated(reason: &str, code: i32) -> Value {
    json!({"terminated": {"reason": reason, "exitCode": code, "startedAt": "2025-01-01T00:00:05Z"}})
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"waiting": {"reason": reason, "message": message}})
}

fn event(kind: &str, reason: &str, message: &str, count: i32) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("e-{reason}")},
        "involvedObject": {"kind": kind, "name": "wfe-1-a1-abcde"},
        "reason": reason, "message": message, "count": count,
        "firstTimestamp": "2025-01-01T00:00:03Z"
    }))
    .expect("valid event")
}

fn owner() -> Owner {
    Owner {
        key: ExecutionKey {
            name: "we-1".into(),
            namespace: "ns".into(),
            uid: "u".into(),
        },
        attempt: 1,
        fencing_token: 1,
        workflow_id: "wf".into(),
        target: "ns/Deployment/app".into(),
    }
}

struct Case {
    name: &'static str,
    job: Job,
    pods: Vec<Pod>,
    events: Vec<Event>,
    now: &'static str,
    phase: PrimitivePhase,
    reason: &'static str,
    exit_code: Option<i32>,
    was_execution_failure: Option<bool>,
    retries: u32,
    abort: bool,
}

fn case(name: &'static str, job: Job, phase: PrimitivePhase, reason: &'static str) -> Case {
    Case {
        name,
        job,
        pods: Vec::new(),
        events: Vec::new(),
        now: "2025-01-01T00:01:00Z",
        phase,
        reason,
        exit_code: None,
        was_execution_failure: None,
        retries: 0,
        abort: false,
    }
}

#[test]
fn job_state_table() {
    use PrimitivePhase::*;
    let p = |n: &str, s: Value| pod(n, "2025-01-01T00:00:01Z", s);
    let cases = vec![
        Case {
            pods: vec![p("wfe-1-a1-aaaaa", terminated("Completed", 0))],
            ..case(
                "complete",
                job(json!([{"type": "Complete", "status": "True", "message": "done"}])),
                Succeeded,
                "Complete",
            )
        },
        Case {
            pods: vec![p("wfe-1-a1-aaaaa", terminated("Error", 3))],
            exit_code: Some(3),
            was_execution_failure: Some(true),
            ..case(
                "exit code",
                failed(
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
                Failed,
                "TaskFailed",
            )
        },
        Case {
            pods: vec![p("wfe-1-a1-aaaaa", running_state())],
            was_execution_failure: Some(true),
            ..case(
                "deadline while running",
                failed(
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
                Failed,
                "DeadlineExceeded",
            )
        },
        Case {
            // The Job controller stops the pod at the deadline: 143 is the kill's code.
            pods: vec![p("wfe-1-a1-aaaaa", terminated("Error", 143))],
            exit_code: None,
            was_execution_failure: Some(true),
            ..case(
                "deadline stopped the container: no exit code",
                failed(
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
                Failed,
                "DeadlineExceeded",
            )
        },
        Case {
            pods: vec![
                pod(
                    "wfe-1-a1-aaaaa",
                    "2025-01-01T00:00:01Z",
                    terminated("OOMKilled", 137),
                ),
                pod(
                    "wfe-1-a1-bbbbb",
                    "2025-01-01T00:00:09Z",
                    terminated("OOMKilled", 137),
                ),
            ],
            exit_code: Some(137),
            was_execution_failure: Some(true),
            retries: 1,
            ..case(
                "oom retried until deadline",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "OOMKilled",
            )
        },
        Case {
            pods: vec![p(
                "wfe-1-a1-aaaaa",
                waiting("ImagePullBackOff", "Back-off pulling image"),
            )],
            events: vec![event(
                "Pod",
                "Failed",
                "Failed to pull image \"x\": not found",
                1,
            )],
            was_execution_failure: Some(false),
            ..case(
                "image pull",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "ImagePullBackOff",
            )
        },
        Case {
            events: vec![event(
                "Job",
                "FailedCreate",
                "Error creating: pods \"wfe-1-a1-\" is forbidden: error looking up service account ns/wf-runner: serviceaccount \"wf-runner\" not found",
                3,
            )],
            was_execution_failure: Some(false),
            ..case(
                "missing service account: no pod, ended by the deadline",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "ConfigurationError",
            )
        },
        Case {
            events: vec![event(
                "Job",
                "FailedCreate",
                "Error creating: pods \"wfe-1-a1-\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true",
                1,
            )],
            was_execution_failure: Some(false),
            ..case(
                "pod refused by PodSecurity",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "ConfigurationError",
            )
        },
        Case {
            events: vec![event(
                "Job",
                "FailedCreate",
                "Error creating: pods \"wfe-1-a1-\" is forbidden: exceeded quota: q, requested: pods=1",
                1,
            )],
            was_execution_failure: Some(false),
            ..case(
                "pod over a quota",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "ResourceExhausted",
            )
        },
        Case {
            events: vec![event(
                "Job",
                "FailedCreate",
                "Error creating: pods \"wfe-1-a1-\" is forbidden: error looking up service account ns/wf-runner: serviceaccount \"wf-runner\" not found",
                1,
            )],
            now: "2025-01-01T00:00:30Z",
            ..case(
                "missing service account, within the grace: pending, says why",
                job(json!([])),
                Pending,
                "FailedCreate",
            )
        },
        Case {
            pods: vec![p("wfe-1-a1-aaaaa", waiting("ContainerCreating", ""))],
            events: vec![event(
                "Pod",
                "FailedMount",
                "MountVolume.SetUp failed for volume \"secret-db\": secret \"db\" not found",
                4,
            )],
            was_execution_failure: Some(false),
            ..case(
                "missing secret",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "ConfigurationError",
            )
        },
        Case {
            pods: vec![p(
                "wfe-1-a1-aaaaa",
                waiting("CreateContainerConfigError", "configmap \"c\" not found"),
            )],
            was_execution_failure: Some(false),
            ..case(
                "missing configmap in env",
                failed("DeadlineExceeded", "deadline"),
                Failed,
                "ConfigurationError",
            )
        },
        Case {
            pods: vec![p("wfe-1-a1-aaaaa", running_state())],
            ..case("running", job(json!([])), Running, "Running")
        },
        Case {
            pods: vec![p(
                "wfe-1-a1-aaaaa",
                waiting("ContainerCreating", "starting"),
            )],
            ..case("pending", job(json!([])), Pending, "ContainerCreating")
        },
        Case {
            pods: vec![p(
                "wfe-1-a1-aaaaa",
                waiting("ImagePullBackOff", "Back-off pulling image"),
            )],
            now: "2025-01-01T00:10:00Z",
            was_execution_failure: Some(false),
            abort: true,
            ..case(
                "stuck pulling gives up",
                job(json!([])),
                Failed,
                "ImagePullBackOff",
            )
        },
        Case {
            pods: vec![p(
                "wfe-1-a1-aaaaa",
                waiting("ImagePullBackOff", "Back-off pulling image"),
            )],
            ..case(
                "pulling within grace",
                job(json!([])),
                Pending,
                "ImagePullBackOff",
            )
        },
        Case {
            pods: vec![
                pod(
                    "wfe-1-a1-aaaaa",
                    "2025-01-01T00:00:01Z",
                    terminated("OOMKilled", 137),
                ),
                pod("wfe-1-a1-bbbbb", "2025-01-01T00:00:02Z", running_state()),
            ],
            retries: 1,
            ..case("oom retrying", job(json!([])), Running, "OOMKilled")
        },
        Case {
            pods: vec![
                pod(
                    "wfe-1-a1-aaaaa",
                    "2025-01-01T00:00:01Z",
                    terminated("OOMKilled", 137),
                ),
                pod(
                    "wfe-1-a1-bbbbb",
                    "2025-01-01T00:00:02Z",
                    terminated("OOMKilled", 137),
                ),
                pod(
                    "wfe-1-a1-ccccc",
                    "2025-01-01T00:00:03Z",
                    terminated("OOMKilled", 137),
                ),
            ],
            exit_code: Some(137),
            was_execution_failure: Some(true),
            retries: 2,
            abort: true,
            ..case("oom limit", job(json!([])), Failed, "OOMKilled")
        },
        Case {
            pods: vec![p("wfe-1-a1-ccccc", terminated("Completed", 0))],
            events: vec![event("Job", "SuccessfulCreate", "Created pod", 3)],
            retries: 2,
            ..case(
                "retries from events",
                job(json!([{"type": "Complete", "status": "True"}])),
                Succeeded,
                "Complete",
            )
        },
        Case {
            // activeDeadlineSeconds deleted the running pod: only its events remain.
            events: vec![event("Pod", "Started", "Started container workflow", 1)],
            was_execution_failure: Some(true),
            ..case(
                "deadline after the running pod was deleted",
                failed(
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
                Failed,
                "DeadlineExceeded",
            )
        },
        Case {
            // The real kubelet: waiting CreateContainerConfigError + event reason Failed.
            pods: vec![p(
                "wfe-1-a1-aaaaa",
                waiting("CreateContainerConfigError", "secret \"db\" not found"),
            )],
            events: vec![event("Pod", "Failed", "Error: secret \"db\" not found", 3)],
            was_execution_failure: Some(false),
            ..case(
                "env secret missing at the deadline",
                failed(
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
                Failed,
                "ConfigurationError",
            )
        },
        Case {
            events: vec![event(
                "Pod",
                "Failed",
                "Error: configmap \"settings\" not found",
                1,
            )],
            was_execution_failure: Some(false),
            abort: true,
            now: "2025-01-01T00:03:00Z",
            ..case(
                "env config map missing past the stuck grace",
                job(json!([])),
                Failed,
                "ConfigurationError",
            )
        },
        Case {
            events: vec![event("Pod", "Failed", "Error: ErrImagePull", 1)],
            was_execution_failure: Some(false),
            abort: true,
            now: "2025-01-01T00:03:00Z",
            ..case(
                "image pull Failed event is not a configuration error",
                job(json!([])),
                Failed,
                "ImagePullBackOff",
            )
        },
    ];
    for c in cases {
        let pods: Vec<&Pod> = c.pods.iter().collect();
        let events: Vec<&Event> = c.events.iter().collect();
        let s = job_state(
            &c.job,
            &pods,
            &events,
            &owner(),
            &Policy::default(),
            t(c.now),
        );
        let o = &s.observation;
        assert_eq!(o.phase, c.phase, "{}: {o:?}", c.name);
        assert_eq!(o.reason, c.reason, "{}: {o:?}", c.name);
        assert_eq!(o.progress.retries, c.retries, "{}", c.name);
        assert_eq!(s.abort, c.abort, "{}", c.name);
        let f = o.failure.as_ref();
        assert_eq!(f.and_then(|f| f.exit_code), c.exit_code, "{}", c.name);
        assert_eq!(
            f.map(|f| f.was_execution_failure),
            c.was_execution_failure,
            "{}",
            c.name
        );
        if let Some(f) = f {
            assert!(!f.message.is_empty(), "{}", c.name);
            assert!(f.natural_language_summary.contains("wf"), "{}", c.name);
        }
    }
}

#[test]
fn failure_message_names_the_cause() {
    let pods = [pod(
        "wfe-1-a1-aaaaa",
        "2025-01-01T00:00:01Z",
        terminated("Error", 42),
    )];
    let pods: Vec<&Pod> = pods.iter().collect();
    let s = job_state(
        &failed(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
        &pods,
        &[],
        &owner(),
        &Policy::default(),
        t("2025-01-01T00:01:00Z"),
    );
    let f = s.observation.failure.expect("failed");
    assert!(f.message.contains("exit code 42"), "{}", f.message);
    assert_eq!(f.failed_task_name.as_deref(), Some("workflow"));
    assert_eq!(
        f.execution_time_before_failure,
        Some(Duration::from_secs(55))
    );
    assert_eq!(s.observation.started_at, Some(t("2025-01-01T00:00:05Z")));
}
