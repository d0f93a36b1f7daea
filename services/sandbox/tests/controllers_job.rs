//! The simulated Job controller and kubelet, driven through the sandbox's HTTP API
//! with kube-rs, on Jobs shaped like the job-agent's (upstream §4.2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod controllers_support;

use controllers_support::{events_about, eventually, reasons, sandbox, wait_deleted, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = "default";

/// A Job as the job-agent builds it, with these env vars and spec overrides.
fn job(name: &str, env: &[(&str, &str)], spec: Value) -> Job {
    let mut env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    env.insert(
        0,
        json!({"name": "TARGET_RESOURCE", "value": "default/deployment/web"}),
    );
    let mut j = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": {"kubernaut.ai/workflow-execution": name, "kubernaut.ai/execution-engine": "job"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "activeDeadlineSeconds": 1800,
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "Ignore", "onExitCodes": {"containerName": "workflow", "operator": "In", "values": [137]}},
            ]},
            "template": {
                "metadata": {"labels": {"kubernaut.ai/workflow-execution": name, "kubernaut.ai/execution-engine": "job"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "workflow", "image": "quay.io/kubernaut/restart:v1", "env": env,
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    });
    merge(&mut j["spec"], spec);
    serde_json::from_value(j).expect("valid job")
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

async fn create(client: &Client, job: &Job) -> Api<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), job)
        .await
        .expect("create job");
    api
}

fn condition(job: &Job, type_: &str) -> Option<(String, String)> {
    let cs = job.status.as_ref()?.conditions.as_ref()?;
    let c = cs.iter().find(|c| c.type_ == type_ && c.status == "True")?;
    Some((
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

fn finished(job: Option<&Job>) -> bool {
    job.is_some_and(|j| condition(j, "Complete").is_some() || condition(j, "Failed").is_some())
}

async fn pods_of(client: &Client, job: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .expect("list pods")
        .items
}

fn terminated(pod: &Pod) -> (i32, String) {
    let s = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let t = s
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("terminated");
    (t.exit_code, t.reason.clone().unwrap_or_default())
}

#[tokio::test]
async fn job_succeeds_with_pod_status_conditions_and_events() {
    let (sb, client) = sandbox().await;
    let api = create(
        &client,
        &job("wfe-ok", &[("SANDBOX_DURATION", "300ms")], json!({})),
    )
    .await;
    let done = wait_for(&api, "wfe-ok", "a finished job", finished).await;
    let status = done.status.clone().unwrap();
    let types: Vec<_> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, vec!["SuccessCriteriaMet", "Complete"]);
    assert_eq!(
        condition(&done, "Complete"),
        Some((
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into()
        ))
    );
    assert_eq!(
        (status.succeeded, status.failed, status.active),
        (Some(1), Some(0), Some(0))
    );
    assert!(status.start_time.is_some() && status.completion_time.is_some());

    let pods = pods_of(&client, "wfe-ok").await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let pod_name = pod.metadata.name.clone().unwrap();
    assert!(
        pod_name.starts_with("wfe-ok-") && pod_name.len() == "wfe-ok-".len() + 5,
        "{pod_name}"
    );
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(terminated(pod), (0, "Completed".into()));
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["batch.kubernetes.io/job-name"], "wfe-ok");
    assert_eq!(labels["kubernaut.ai/execution-engine"], "job");

    let job_events = reasons(&events_about(&client, NS, "wfe-ok").await);
    assert!(
        job_events.contains(&(
            "SuccessfulCreate".into(),
            format!("Created pod: {pod_name}")
        )),
        "{job_events:?}"
    );
    assert!(
        job_events.contains(&("Completed".into(), "Job completed".into())),
        "{job_events:?}"
    );
    let pod_events: Vec<String> = reasons(&events_about(&client, NS, &pod_name).await)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(
            pod_events.contains(&reason.to_string()),
            "{reason} missing from {pod_events:?}"
        );
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn failing_workload_exits_3_and_hits_backoff_limit() {
    let (sb, client) = sandbox().await;
    let env = [("SANDBOX_OUTCOME", "fail:3"), ("SANDBOX_DURATION", "0s")];
    let api = create(&client, &job("wfe-fail", &env, json!({}))).await;
    let done = wait_for(&api, "wfe-fail", "a finished job", finished).await;
    assert_eq!(
        condition(&done, "Failed"),
        Some((
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into()
        ))
    );
    assert!(condition(&done, "FailureTarget").is_some());
    assert_eq!(done.status.as_ref().unwrap().failed, Some(1));
    let pods = pods_of(&client, "wfe-fail").await;
    assert_eq!(pods.len(), 1, "backoffLimit 0: no retry");
    assert_eq!(terminated(&pods[0]), (3, "Error".into()));
    let events = reasons(&events_about(&client, NS, "wfe-fail").await);
    assert!(
        events.iter().any(|(r, _)| r == "BackoffLimitExceeded"),
        "{events:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn oom_is_ignored_by_the_pod_failure_policy_and_replaced() {
    let (sb, client) = sandbox().await;
    let env = [("SANDBOX_OUTCOME", "oom"), ("SANDBOX_DURATION", "0s")];
    let api = create(&client, &job("wfe-oom", &env, json!({}))).await;
    let pods = eventually("two OOMKilled pods", || async {
        let pods = pods_of(&client, "wfe-oom").await;
        let oom = pods
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
            .count();
        (oom >= 2).then_some(pods)
    })
    .await;
    let failed: Vec<_> = pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .collect();
    assert_eq!(terminated(failed[0]), (137, "OOMKilled".into()));
    let job = api.get("wfe-oom").await.unwrap();
    assert_eq!(
        job.status.as_ref().and_then(|s| s.failed),
        Some(0),
        "ignored failures do not count"
    );
    assert!(!finished(Some(&job)));
    sb.shutdown().await;
}

#[tokio::test]
async fn image_pull_error_never_starts_and_the_deadline_fails_the_job() {
    let (sb, client) = sandbox().await;
    let env = [("SANDBOX_OUTCOME", "image-pull-error")];
    let api = create(
        &client,
        &job("wfe-pull", &env, json!({"activeDeadlineSeconds": 3})),
    )
    .await;
    let waiting = eventually("ImagePullBackOff", || async {
        let pods = pods_of(&client, "wfe-pull").await;
        let reason = pods.first()?.status.as_ref()?.container_statuses.as_ref()?[0]
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()?;
        (reason == "ImagePullBackOff").then_some(reason)
    })
    .await;
    assert_eq!(waiting, "ImagePullBackOff");
    let done = wait_for(&api, "wfe-pull", "a finished job", finished).await;
    assert_eq!(
        condition(&done, "Failed"),
        Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        ))
    );
    let events = reasons(&events_about(&client, NS, "wfe-pull-").await);
    assert!(
        events.iter().any(|(r, m)| r == "Failed"
            && m.contains("Failed to pull image \"quay.io/kubernaut/restart:v1\"")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "BackOff" && m.contains("Back-off pulling image")),
        "{events:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn missing_secret_volume_fails_mount_until_the_deadline() {
    let (sb, client) = sandbox().await;
    let spec = json!({"activeDeadlineSeconds": 2, "template": {"spec": {
        "volumes": [{"name": "secret-creds", "secret": {"secretName": "creds"}}, {"name": "tmp", "emptyDir": {}}],
    }}});
    let api = create(&client, &job("wfe-secret", &[], spec)).await;
    let done = wait_for(&api, "wfe-secret", "a finished job", finished).await;
    assert_eq!(
        condition(&done, "Failed").map(|c| c.0),
        Some("DeadlineExceeded".into())
    );
    assert_eq!(
        done.status.as_ref().unwrap().failed,
        Some(1),
        "the killed pod counts as failed"
    );
    let events = reasons(&events_about(&client, NS, "wfe-secret-").await);
    let mount = "MountVolume.SetUp failed for volume \"secret-creds\" : secret \"creds\" not found";
    assert!(
        events.iter().any(|(r, m)| r == "FailedMount" && m == mount),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|(r, _)| r == "Started"),
        "the pod never starts: {events:?}"
    );
    let job_events = reasons(&events_about(&client, NS, "wfe-secret").await);
    assert!(
        job_events.iter().any(|(r, _)| r == "SuccessfulDelete"),
        "{job_events:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn missing_env_secret_is_a_create_container_config_error() {
    let (sb, client) = sandbox().await;
    let spec = json!({"template": {"spec": {"containers": [{
        "name": "workflow", "image": "quay.io/kubernaut/restart:v1",
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}}],
    }]}}});
    create(&client, &job("wfe-env", &[], spec)).await;
    let message = eventually("CreateContainerConfigError", || async {
        let pods = pods_of(&client, "wfe-env").await;
        let waiting = pods.first()?.status.as_ref()?.container_statuses.as_ref()?[0]
            .state
            .as_ref()?
            .waiting
            .clone()?;
        (waiting.reason.as_deref() == Some("CreateContainerConfigError")).then_some(waiting.message)
    })
    .await;
    assert_eq!(message.as_deref(), Some("secret \"api-token\" not found"));
    sb.shutdown().await;
}

#[tokio::test]
async fn hanging_workload_is_killed_at_the_deadline() {
    let (sb, client) = sandbox().await;
    let api = create(
        &client,
        &job(
            "wfe-hang",
            &[("SANDBOX_OUTCOME", "hang")],
            json!({"activeDeadlineSeconds": 1}),
        ),
    )
    .await;
    let done = wait_for(&api, "wfe-hang", "a finished job", finished).await;
    assert_eq!(
        condition(&done, "Failed").map(|c| c.0),
        Some("DeadlineExceeded".into())
    );
    let events = reasons(&events_about(&client, NS, "wfe-hang").await);
    assert!(
        events.contains(&(
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        )),
        "{events:?}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    eventually("the hung pod deleted", || async {
        pods.list(&ListParams::default().labels("job-name=wfe-hang"))
            .await
            .ok()
            .filter(|l| l.items.is_empty())
    })
    .await;
    sb.shutdown().await;
}

#[tokio::test]
async fn finished_job_is_deleted_after_its_ttl() {
    let (sb, client) = sandbox().await;
    let env = [("SANDBOX_DURATION", "0s")];
    let api = create(
        &client,
        &job("wfe-ttl", &env, json!({"ttlSecondsAfterFinished": 1})),
    )
    .await;
    wait_for(&api, "wfe-ttl", "a finished job", finished).await;
    wait_deleted(&api, "wfe-ttl").await;
    sb.shutdown().await;
}

#[tokio::test]
async fn retries_until_an_attempt_succeeds() {
    let (sb, client) = sandbox().await;
    let env = [
        ("SANDBOX_OUTCOME", "fail:2"),
        ("SANDBOX_FAILING_ATTEMPTS", "1"),
        ("SANDBOX_DURATION", "0s"),
    ];
    let api = create(&client, &job("wfe-retry", &env, json!({"backoffLimit": 2}))).await;
    let done = wait_for(&api, "wfe-retry", "a finished job", finished).await;
    assert!(condition(&done, "Complete").is_some(), "{:?}", done.status);
    let status = done.status.unwrap();
    assert_eq!((status.failed, status.succeeded), (Some(1), Some(1)));
    assert_eq!(pods_of(&client, "wfe-retry").await.len(), 2);
    sb.shutdown().await;
}

#[tokio::test]
async fn restarted_controllers_finish_a_job_from_its_objects() {
    use wfe_sandbox::SandboxConfig;
    use wfe_sandbox::controllers::{self, ControllerConfig};
    let config = SandboxConfig {
        job_controller: false,
        tekton_controller: false,
        ..SandboxConfig::default()
    };
    let (sb, client) = controllers_support::sandbox_with(config).await;
    let cfg = ControllerConfig {
        tekton: false,
        ..ControllerConfig::default()
    };
    let first = controllers::start(client.clone(), cfg.clone());
    let api = create(
        &client,
        &job("wfe-restart", &[("SANDBOX_DURATION", "1s")], json!({})),
    )
    .await;
    eventually("a running pod", || async {
        let pods = pods_of(&client, "wfe-restart").await;
        (pods.first()?.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    first.shutdown().await;
    let second = controllers::start(client.clone(), cfg);
    let done = wait_for(&api, "wfe-restart", "a finished job", finished).await;
    assert!(condition(&done, "Complete").is_some());
    assert_eq!(
        pods_of(&client, "wfe-restart").await.len(),
        1,
        "no second pod after the restart"
    );
    second.shutdown().await;
    sb.shutdown().await;
}
