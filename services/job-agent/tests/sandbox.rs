//! The job executor against the sandbox's API server and simulated Job controller and
//! kubelet: one test per failure kind, driven by the workload behaviours
//! (`SANDBOX_OUTCOME`), plus redelivery and adoption.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ListParams, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wfe_agent::Executor;
use wfe_job_agent::status::Policy;
use wfe_job_agent::{JobExecutor, JobExecutorConfig};
use wfe_proto::agent::{Assign, ExecutionKey, PrimitivePhase, StatusReport};
use wfe_proto::v1::{Dependencies, FailureReason, WorkflowReference};
use wfe_sandbox::{Sandbox, SandboxConfig};

const NS: &str = "kubernaut-workflows";

struct Env {
    _sb: Sandbox,
    client: kube::Client,
    exec: Arc<JobExecutor>,
    reports: mpsc::Receiver<StatusReport>,
    _stop: tokio_util::sync::DropGuard,
}

async fn env() -> Env {
    let sb = Sandbox::start(SandboxConfig {
        time_scale: 0.2,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = sb.kube_client().unwrap();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let (exec, reports, stop) = executor(&client).await;
    Env {
        _sb: sb,
        client,
        exec,
        reports,
        _stop: stop.drop_guard(),
    }
}

async fn executor(
    client: &kube::Client,
) -> (
    Arc<JobExecutor>,
    mpsc::Receiver<StatusReport>,
    CancellationToken,
) {
    let policy = Policy {
        oom_kill_limit: 2,
        stuck_grace: Duration::from_secs(2),
    };
    let cfg = JobExecutorConfig {
        namespace: NS.into(),
        cluster_id: String::new(),
        policy,
    };
    let exec = Arc::new(JobExecutor::new(client.clone(), cfg));
    let (tx, rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    tokio::spawn(exec.clone().observe(tx, stop.clone()));
    tokio::time::timeout(Duration::from_secs(10), exec.synced())
        .await
        .expect("synced");
    (exec, rx, stop)
}

fn assign(uid: &str, outcome: &str, deadline_secs: Option<i64>) -> Assign {
    let now = jiff::Timestamp::now().as_second();
    Assign {
        assignment_id: format!("as-{uid}"),
        execution: Some(ExecutionKey {
            name: format!("we-{uid}"),
            namespace: "default".into(),
            uid: uid.into(),
        }),
        attempt: 1,
        fencing_token: 1,
        primitive_namespace: NS.into(),
        primitive_name: wfe_core::naming::primitive_name("default", &format!("we-{uid}"), 1),
        target_resource: "default/Deployment/app".into(),
        workflow_ref: Some(WorkflowReference {
            workflow_id: "wf".into(),
            container_image: "registry.local/wf:1".into(),
            ..Default::default()
        }),
        parameters: [("SANDBOX_OUTCOME", outcome), ("SANDBOX_DURATION", "200ms")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        deadline: deadline_secs.map(|s| prost_types::Timestamp {
            seconds: now + s,
            nanos: 0,
        }),
        ..Default::default()
    }
}

impl Env {
    /// Waits (30 s) for a terminal report of `uid`.
    async fn terminal(&mut self, uid: &str) -> StatusReport {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .expect("terminal report in time")
                .unwrap();
            let done = matches!(
                PrimitivePhase::try_from(r.phase),
                Ok(PrimitivePhase::Succeeded | PrimitivePhase::Failed)
            );
            if done && r.execution.as_ref().is_some_and(|k| k.uid == uid) {
                return r;
            }
        }
    }

    /// Waits (30 s) for a report of `uid` in `phase`.
    async fn phase(&mut self, uid: &str, phase: PrimitivePhase) -> StatusReport {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .unwrap_or_else(|_| panic!("{phase:?} report of {uid} in time"))
                .unwrap();
            if r.phase == phase as i32 && r.execution.as_ref().is_some_and(|k| k.uid == uid) {
                return r;
            }
        }
    }

    async fn run(&mut self, a: Assign) -> StatusReport {
        let uid = a.execution.clone().unwrap().uid;
        let first = self.exec.start(&a).await;
        assert!(first.primitive.is_some(), "created: {first:?}");
        self.terminal(&uid).await
    }

    async fn jobs_of(&self, uid: &str) -> usize {
        let lp =
            ListParams::default().labels(&format!("kubernaut.ai/workflow-execution-uid={uid}"));
        Api::<Job>::namespaced(self.client.clone(), NS)
            .list(&lp)
            .await
            .unwrap()
            .items
            .len()
    }
}

fn failure(r: &StatusReport) -> (FailureReason, Option<i32>, bool, String) {
    let f = r.failure.clone().expect("failure details");
    (
        FailureReason::try_from(f.reason).unwrap(),
        f.exit_code,
        f.was_execution_failure,
        f.message,
    )
}

#[tokio::test]
async fn succeeds() {
    let mut e = env().await;
    let r = e.run(assign("ok", "succeed", None)).await;
    assert_eq!(r.phase, PrimitivePhase::Succeeded as i32, "{r:?}");
    assert_eq!(r.progress.unwrap().completed_tasks, 1);
}

#[tokio::test]
async fn exit_code_is_task_failed() {
    let mut e = env().await;
    let r = e.run(assign("fail", "fail:3", None)).await;
    let (reason, code, wef, msg) = failure(&r);
    assert_eq!(
        (reason, code, wef),
        (FailureReason::TaskFailed, Some(3), true),
        "{msg}"
    );
    assert!(msg.contains("exit code 3"), "{msg}");
}

#[tokio::test]
async fn oom_is_reported_with_retries() {
    let mut e = env().await;
    let r = e.run(assign("oom", "oom", Some(60))).await;
    let (reason, code, wef, msg) = failure(&r);
    assert_eq!(
        (reason, code, wef),
        (FailureReason::OomKilled, Some(137), true),
        "{msg}"
    );
    assert!(r.progress.unwrap().retry_count >= 2, "{r:?}");
}

#[tokio::test]
async fn image_pull_error_never_started() {
    let mut e = env().await;
    let r = e.run(assign("pull", "image-pull-error", Some(60))).await;
    let (reason, code, wef, msg) = failure(&r);
    assert_eq!(
        (reason, code, wef),
        (FailureReason::ImagePullBackOff, None, false),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_secret_is_configuration_error() {
    let mut e = env().await;
    let mut a = assign("secret", "succeed", Some(60));
    a.dependencies = Some(Dependencies {
        secrets: vec!["does-not-exist".into()],
        config_maps: vec![],
    });
    let r = e.run(a).await;
    let (reason, _, wef, msg) = failure(&r);
    assert_eq!(
        (reason, wef),
        (FailureReason::ConfigurationError, false),
        "{msg}"
    );
    assert!(msg.contains("does-not-exist"), "{msg}");
}

#[tokio::test]
async fn deadline_exceeded_after_start() {
    let mut e = env().await;
    // Deadline whole seconds away (at least 3 s): the pod starts before it even on a busy
    // machine, then activeDeadlineSeconds deletes the running pod.
    let r = e.run(assign("hang", "hang", Some(4))).await;
    assert!(r.started_at.is_some(), "{r:?}");
    let (reason, _, wef, msg) = failure(&r);
    assert_eq!(
        (reason, wef),
        (FailureReason::DeadlineExceeded, true),
        "{msg}"
    );
}

#[tokio::test]
async fn redelivered_assign_creates_one_job_and_another_replica_adopts_it() {
    let mut e = env().await;
    let mut a = assign("dup", "hang", Some(30));
    e.exec.start(&a).await;
    e.exec.start(&a).await;
    assert_eq!(e.jobs_of("dup").await, 1);
    e.phase("dup", PrimitivePhase::Running).await;
    // Another replica takes over with a newer assignment and adopts the same Job.
    let (replica, _rx, _stop) = executor(&e.client).await;
    a.adopt = true;
    a.attempt = 2;
    a.fencing_token = 2;
    a.primitive_name = wfe_core::naming::primitive_name("default", "we-dup", 2);
    let r = replica.start(&a).await;
    assert_eq!(
        e.jobs_of("dup").await,
        1,
        "adoption must not create a second Job"
    );
    assert_eq!(r.fencing_token, 2);
    let name = r.primitive.unwrap().name;
    assert_eq!(
        name,
        wfe_core::naming::primitive_name("default", "we-dup", 1)
    );
    let job = Api::<Job>::namespaced(e.client.clone(), NS)
        .get(&name)
        .await
        .unwrap();
    assert_eq!(
        job.metadata
            .annotations
            .unwrap()
            .get("kubernaut.ai/fencing-token")
            .map(String::as_str),
        Some("2")
    );
    // Cancel deletes it.
    let cancel = wfe_proto::agent::Cancel {
        command_id: "c".into(),
        execution: a.execution.clone(),
        fencing_token: 2,
        reason: "test".into(),
    };
    let r = replica.cancel(&cancel).await.unwrap();
    let (reason, _, wef, _) = failure(&r);
    assert_eq!((reason, wef), (FailureReason::Cancelled, true), "{r:?}");
    // The watch sees the Job go (the runtime sends the Cancelled report itself).
    e.phase("dup", PrimitivePhase::Missing).await;
    assert_eq!(e.jobs_of("dup").await, 0);
}

/// A Secret referenced through env (`valueFrom.secretKeyRef`) that does not exist: the
/// kubelet leaves the container waiting with CreateContainerConfigError and writes event
/// reason `Failed`, "Error: secret \"x\" not found". The agent's own Jobs mount secrets
/// as volumes, so the test adds the env reference to the Job it builds, creates it, and
/// lets the executor adopt and watch it.
#[tokio::test]
async fn missing_env_secret_is_configuration_error() {
    let mut e = env().await;
    let a = assign("envsecret", "succeed", Some(3));
    let mut job = wfe_job_agent::job::build_job(&a, NS, jiff::Timestamp::now()).unwrap();
    let spec = job.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    let env_ref: k8s_openapi::api::core::v1::EnvVar = serde_json::from_value(serde_json::json!({
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}
    }))
    .unwrap();
    spec.containers[0].env.as_mut().unwrap().push(env_ref);
    Api::<Job>::namespaced(e.client.clone(), NS)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let r = e.run(a).await;
    let (reason, code, wef, msg) = failure(&r);
    assert_eq!(
        (reason, code, wef),
        (FailureReason::ConfigurationError, None, false),
        "{msg}"
    );
    assert!(msg.contains("secret \"db-credentials\" not found"), "{msg}");
}
