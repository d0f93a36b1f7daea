//! The tekton executor against the sandbox's API server and simulated Tekton controller:
//! one test per failure kind, driven by the workload behaviours (`SANDBOX_OUTCOME` as a
//! PipelineRun param), plus redelivery/adoption and a cluster without Tekton.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ListParams, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wfe_agent::{Availability, Executor};
use wfe_k8s::tekton::PipelineRun;
use wfe_proto::agent::{Assign, Cancel, ExecutionKey, PrimitivePhase, StatusReport};
use wfe_proto::v1::{FailureReason, WorkflowReference};
use wfe_sandbox::{Sandbox, SandboxConfig};
use wfe_tekton_agent::{TektonExecutor, TektonExecutorConfig};

const NS: &str = "kubernaut-workflows";

struct Env {
    _sb: Sandbox,
    client: kube::Client,
    exec: Arc<TektonExecutor>,
    reports: mpsc::Receiver<StatusReport>,
    _stop: tokio_util::sync::DropGuard,
}

async fn sandbox(install_tekton_crds: bool) -> (Sandbox, kube::Client) {
    let sb = Sandbox::start(SandboxConfig {
        time_scale: 0.2,
        install_tekton_crds,
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
    (sb, client)
}

fn new_executor(client: &kube::Client) -> Arc<TektonExecutor> {
    let cfg = TektonExecutorConfig {
        namespace: NS.into(),
        cluster_id: String::new(),
    };
    Arc::new(TektonExecutor::new(client.clone(), cfg))
}

async fn executor(
    client: &kube::Client,
) -> (
    Arc<TektonExecutor>,
    mpsc::Receiver<StatusReport>,
    CancellationToken,
) {
    let exec = new_executor(client);
    assert_eq!(exec.availability().await, Availability::Available);
    let (tx, rx) = mpsc::channel(1024);
    let stop = CancellationToken::new();
    tokio::spawn(exec.clone().observe(tx, stop.clone()));
    tokio::time::timeout(Duration::from_secs(10), exec.synced())
        .await
        .expect("synced");
    (exec, rx, stop)
}

async fn env() -> Env {
    let (sb, client) = sandbox(true).await;
    let (exec, reports, stop) = executor(&client).await;
    Env {
        _sb: sb,
        client,
        exec,
        reports,
        _stop: stop.drop_guard(),
    }
}

fn assign(uid: &str, params: &[(&str, &str)], deadline_secs: Option<i64>) -> Assign {
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
            container_image: "registry.local/bundles/wf:1".into(),
            ..Default::default()
        }),
        parameters: params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        deadline: deadline_secs.map(|s| prost_types::Timestamp {
            seconds: now + s,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn is_terminal(r: &StatusReport) -> bool {
    matches!(
        PrimitivePhase::try_from(r.phase),
        Ok(PrimitivePhase::Succeeded | PrimitivePhase::Failed)
    )
}

impl Env {
    /// Reports of `uid` until (and with) the first one `stop` accepts (30 s).
    async fn until(
        &mut self,
        uid: &str,
        stop: impl Fn(&StatusReport) -> bool,
    ) -> Vec<StatusReport> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let r = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .unwrap_or_else(|_| panic!("report of {uid} in time; saw {seen:?}"))
                .unwrap();
            if r.execution.as_ref().is_none_or(|k| k.uid != uid) {
                continue;
            }
            let done = stop(&r);
            seen.push(r);
            if done {
                return seen;
            }
        }
    }

    async fn terminal(&mut self, uid: &str) -> StatusReport {
        self.until(uid, is_terminal).await.pop().unwrap()
    }

    async fn run(&mut self, a: Assign) -> StatusReport {
        let uid = a.execution.clone().unwrap().uid;
        let first = self.exec.start(&a).await;
        assert!(first.primitive.is_some(), "created: {first:?}");
        self.terminal(&uid).await
    }

    async fn runs_of(&self, uid: &str) -> Vec<PipelineRun> {
        let lp =
            ListParams::default().labels(&format!("kubernaut.ai/workflow-execution-uid={uid}"));
        Api::<PipelineRun>::namespaced(self.client.clone(), NS)
            .list(&lp)
            .await
            .unwrap()
            .items
    }
}

struct Failure {
    reason: FailureReason,
    task: String,
    index: u32,
    step: String,
    exit_code: Option<i32>,
    started: bool,
    message: String,
}

fn failure(r: &StatusReport) -> Failure {
    assert_eq!(r.phase, PrimitivePhase::Failed as i32, "{r:?}");
    let f = r.failure.clone().expect("failure details");
    Failure {
        reason: FailureReason::try_from(f.reason).unwrap(),
        task: f.failed_task_name,
        index: f.failed_task_index,
        step: f.failed_step_name,
        exit_code: f.exit_code,
        started: f.was_execution_failure,
        message: f.message,
    }
}

#[tokio::test]
async fn succeeds_with_task_progress() {
    let mut e = env().await;
    let a = assign(
        "ok",
        &[
            ("SANDBOX_TASKS", "clone,build,deploy"),
            ("SANDBOX_DURATION", "500ms"),
        ],
        None,
    );
    e.exec.start(&a).await;
    let seen = e.until("ok", is_terminal).await;
    let last = seen.last().unwrap();
    assert_eq!(last.phase, PrimitivePhase::Succeeded as i32, "{last:?}");
    let p = last.progress.unwrap();
    assert_eq!((p.completed_tasks, p.total_tasks), (3, 3), "{last:?}");
    // While running, progress counted the whole pipeline, not only the TaskRuns so far.
    let running: Vec<(u32, u32)> = seen
        .iter()
        .filter(|r| r.phase == PrimitivePhase::Running as i32)
        .filter_map(|r| r.progress.map(|p| (p.completed_tasks, p.total_tasks)))
        .collect();
    assert!(running.contains(&(1, 3)), "running progress: {running:?}");
}

#[tokio::test]
async fn failed_task_names_task_step_and_exit_code() {
    let mut e = env().await;
    let a = assign(
        "fail",
        &[
            ("SANDBOX_OUTCOME", "fail:3"),
            ("SANDBOX_TASKS", "clone,build"),
            ("SANDBOX_DURATION", "100ms"),
        ],
        None,
    );
    let f = failure(&e.run(a).await);
    assert_eq!(f.reason, FailureReason::TaskFailed, "{}", f.message);
    let name = wfe_core::naming::primitive_name("default", "we-fail", 1);
    assert_eq!(f.task, format!("{name}-build"));
    assert_eq!((f.index, f.step.as_str()), (1, "run"), "{}", f.message);
    assert_eq!((f.exit_code, f.started), (Some(3), true));
}

#[tokio::test]
async fn oom_killed_step() {
    let mut e = env().await;
    let a = assign(
        "oom",
        &[("SANDBOX_OUTCOME", "oom"), ("SANDBOX_DURATION", "100ms")],
        None,
    );
    let f = failure(&e.run(a).await);
    assert_eq!(
        (f.reason, f.exit_code, f.started),
        (FailureReason::OomKilled, Some(137), true),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn timeout_is_deadline_exceeded() {
    let mut e = env().await;
    // The deadline becomes spec.timeouts.pipeline; `hang` runs the first task forever.
    let a = assign("hang", &[("SANDBOX_OUTCOME", "hang")], Some(3));
    let f = failure(&e.run(a).await);
    assert_eq!(
        (f.reason, f.started),
        (FailureReason::DeadlineExceeded, true),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn cancel_sets_spec_status_and_reports_cancelled() {
    let mut e = env().await;
    let a = assign("cancel", &[("SANDBOX_OUTCOME", "hang")], Some(60));
    e.exec.start(&a).await;
    e.until("cancel", |r| r.phase == PrimitivePhase::Running as i32)
        .await;
    let c = Cancel {
        command_id: "c".into(),
        execution: a.execution.clone(),
        fencing_token: 1,
        reason: "operator".into(),
    };
    let f = failure(&e.exec.cancel(&c).await.unwrap());
    assert_eq!(f.reason, FailureReason::Cancelled);
    // Tekton itself then ends the run as Cancelled, and the record is kept.
    let f = failure(&e.terminal("cancel").await);
    assert_eq!(f.reason, FailureReason::Cancelled, "{}", f.message);
    let runs = e.runs_of("cancel").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].spec.status.as_deref(), Some("Cancelled"));
}

#[tokio::test]
async fn bundle_not_found_is_configuration_error() {
    let mut e = env().await;
    let a = assign("bundle", &[("SANDBOX_OUTCOME", "bundle-not-found")], None);
    let f = failure(&e.run(a).await);
    assert_eq!(
        (f.reason, f.started),
        (FailureReason::ConfigurationError, false),
        "{}",
        f.message
    );
    assert!(f.message.contains("manifest unknown"), "{}", f.message);
}

#[tokio::test]
async fn redelivered_and_adopted_assignment_keeps_one_pipeline_run() {
    let mut e = env().await;
    let mut a = assign("dup", &[("SANDBOX_OUTCOME", "hang")], Some(60));
    let first = e.exec.start(&a).await;
    let again = e.exec.start(&a).await;
    assert_eq!(
        first.primitive.as_ref().unwrap().uid,
        again.primitive.unwrap().uid
    );
    e.until("dup", |r| r.phase == PrimitivePhase::Running as i32)
        .await;
    // Another replica takes over under a newer assignment (adopt = true).
    let (replica, _rx, _stop) = executor(&e.client).await;
    a.adopt = true;
    a.attempt = 2;
    a.fencing_token = 2;
    a.primitive_name = wfe_core::naming::primitive_name("default", "we-dup", 2);
    let r = replica.start(&a).await;
    assert_eq!(r.fencing_token, 2);
    assert_eq!(r.primitive.unwrap().uid, first.primitive.unwrap().uid);
    let runs = e.runs_of("dup").await;
    assert_eq!(
        runs.len(),
        1,
        "adoption must not create a second PipelineRun"
    );
    let token = runs[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernaut.ai/fencing-token").cloned());
    assert_eq!(token.as_deref(), Some("2"));
}

/// Without Tekton's CRDs the executor says so, and the agent's `/readyz` shows the reason.
#[tokio::test]
async fn missing_tekton_crds_make_the_agent_unavailable() {
    let (_sb, client) = sandbox(false).await;
    let exec = new_executor(&client);
    let Availability::Unavailable(why) = exec.availability().await else {
        panic!("available without Tekton CRDs")
    };
    assert!(why.contains("Tekton Pipelines is not installed"), "{why}");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = admin.local_addr().unwrap();
    let cfg = wfe_agent::AgentConfig {
        dial: wfe_agent::session::Dial {
            // Nothing listens there: readiness must explain the engine first anyway.
            url: "http://127.0.0.1:1".into(),
            token_file: None,
            tls_ca: None,
        },
        agent_id: "tekton-test".into(),
        cluster_id: String::new(),
        capacity: 4,
        version: "test".into(),
        drain_timeout: Duration::from_secs(1),
        backoff: wfe_agent::backoff::Backoff::default(),
    };
    let stop = CancellationToken::new();
    let agent = tokio::spawn(wfe_agent::run_with(cfg, exec, admin, stop.clone()));
    let url = format!("http://{addr}/readyz");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let body = loop {
        tick.tick().await;
        if let Ok(resp) = reqwest::get(&url).await {
            assert_eq!(resp.status(), 503);
            let body = resp.text().await.unwrap();
            if body.contains("engine unavailable") {
                break body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never explained"
        );
    };
    assert!(body.contains("Tekton Pipelines is not installed"), "{body}");
    stop.cancel();
    agent.await.unwrap().unwrap();
}
