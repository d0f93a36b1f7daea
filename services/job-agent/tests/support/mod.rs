//! Harness for tests with the real workflow-api and real job-agents on the sandbox.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

mod proxy;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use wfe_job_agent::status::Policy;
use wfe_job_agent::{JobExecutor, JobExecutorConfig};
use wfe_proto::v1;
use wfe_proto::v1::workflow_execution_service_client::WorkflowExecutionServiceClient;

pub use proxy::Proxy;

/// Namespace of the executions (workflow-api's default namespace).
pub const NS: &str = "default";
/// Namespace of the Jobs.
pub const EXEC_NS: &str = "kubernaut-workflows";
const CALLER_TOKEN: &str = "caller-token";
const AGENT_TOKEN: &str = "job-local";
const UID_LABEL: &str = "kubernaut.ai/workflow-execution-uid";

/// Every Job ever seen, per execution uid: (job uid, finished).
type Seen = Arc<Mutex<HashMap<String, Vec<(String, bool)>>>>;

/// Sandbox (CRD + Job controller + kubelet), token files, and a Job watch.
pub struct Stack {
    pub sandbox: wfe_sandbox::Sandbox,
    pub dir: tempfile::TempDir,
    seen: Seen,
    _watch: tokio_util::sync::DropGuard,
}

/// An authenticated caller client.
pub type Client = WorkflowExecutionServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
>;

/// Adds the caller's bearer token.
#[derive(Clone)]
pub struct Bearer(String);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let v = format!("Bearer {}", self.0).parse().unwrap();
        req.metadata_mut().insert("authorization", v);
        Ok(req)
    }
}

impl Stack {
    pub async fn start() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let crd = serde_json::to_value(wfe_k8s::crd::workflow_execution_crd()).unwrap();
        let sandbox = wfe_sandbox::Sandbox::start(wfe_sandbox::SandboxConfig {
            crds: vec![crd],
            tekton_controller: false,
            ..Default::default()
        })
        .await
        .unwrap();
        let client = sandbox.kube_client().unwrap();
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": EXEC_NS}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("callers"),
            format!("{CALLER_TOKEN} alice\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("agents"), format!("{AGENT_TOKEN} - job\n")).unwrap();
        std::fs::write(dir.path().join("agent-token"), AGENT_TOKEN).unwrap();
        let seen = Seen::default();
        let stop = CancellationToken::new();
        tokio::spawn(record_jobs(client, seen.clone(), stop.clone()));
        Self {
            sandbox,
            dir,
            seen,
            _watch: stop.drop_guard(),
        }
    }

    /// workflow-api's configuration: short heartbeats and leases so loss is noticed fast.
    pub fn config(&self) -> wfe_api::Config {
        let mut c = wfe_api::Config::local(NS, self.dir.path().join("audit.jsonl"));
        c.caller_tokens_file = Some(self.dir.path().join("callers"));
        c.agent_tokens_file = Some(self.dir.path().join("agents"));
        c.execution_namespace = EXEC_NS.into();
        c.heartbeat_interval = Duration::from_millis(200);
        c.lease_duration = Duration::from_millis(800);
        c.ack_timeout = Duration::from_millis(500);
        c.shutdown_grace = Duration::from_secs(2);
        c
    }

    /// A workflow-api instance, synced.
    pub async fn api(&self) -> wfe_api::Running {
        let running = wfe_api::start(self.config(), self.sandbox.kube_client().unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), running.wait_ready())
            .await
            .expect("API synced");
        running
    }

    /// A job-agent replica dialing `api`, on its own runtime.
    pub fn agent(&self, id: &str, api: SocketAddr) -> AgentProc {
        AgentProc::start(self.sandbox.url(), self.agent_config(id, api))
    }

    /// The agent configuration the flags would give, with a fast reconnect.
    pub fn agent_config(&self, id: &str, api: SocketAddr) -> wfe_agent::AgentConfig {
        wfe_agent::AgentConfig {
            dial: wfe_agent::session::Dial {
                url: format!("http://{api}"),
                token_file: Some(self.dir.path().join("agent-token")),
                tls_ca: None,
            },
            agent_id: id.into(),
            cluster_id: String::new(),
            capacity: 200,
            version: "test".into(),
            drain_timeout: Duration::from_secs(2),
            backoff: wfe_agent::backoff::Backoff {
                base: Duration::from_millis(50),
                cap: Duration::from_millis(500),
            },
        }
    }

    pub async fn client(&self, api: &wfe_api::Running) -> Client {
        let ch = Channel::from_shared(format!("http://{}", api.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        WorkflowExecutionServiceClient::with_interceptor(ch, Bearer(CALLER_TOKEN.into()))
    }

    pub async fn get(&self, c: &Client, name: &str) -> v1::WorkflowExecution {
        let req = v1::GetWorkflowExecutionRequest {
            name: name.into(),
            namespace: String::new(),
        };
        c.clone()
            .get_workflow_execution(req)
            .await
            .unwrap()
            .into_inner()
            .execution
            .unwrap()
    }

    /// Waits (30 s) for the execution to reach `want`.
    pub async fn wait_phase(
        &self,
        c: &Client,
        name: &str,
        want: v1::Phase,
    ) -> v1::WorkflowExecution {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let e = self.get(c, name).await;
            if phase(&e) == want {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never became {want:?}: {e:?}"
            );
        }
    }

    /// Uids of the Jobs ever created for an execution, in order of appearance.
    pub fn jobs_created(&self, execution_uid: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.get(execution_uid)
            .map(|v| v.iter().map(|(u, _)| u.clone()).collect())
            .unwrap_or_default()
    }

    /// Waits (30 s) until a Job of the execution is Complete or Failed.
    pub async fn wait_job_finished(&self, execution_uid: &str) {
        wait_until(30, "the Job to finish", || {
            let seen = self.seen.lock().unwrap();
            seen.get(execution_uid)?
                .iter()
                .any(|(_, f)| *f)
                .then_some(())
        })
        .await;
    }

    /// The audit event types recorded for an execution.
    pub fn audit_types(&self, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(name))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("event_type")?.as_str().map(str::to_owned))
            .collect()
    }
}

/// Polls `f` (every 20 ms) until it returns Some; panics after `secs`.
pub async fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

/// Runs `fut` to completion or panics after `secs`.
pub async fn within<T>(secs: u64, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("in time")
}

pub fn phase(e: &v1::WorkflowExecution) -> v1::Phase {
    v1::Phase::try_from(e.status.as_ref().map_or(0, |s| s.phase)).unwrap()
}

/// ExecuteWorkflow for a job-engine workflow with the given parameters.
pub async fn execute(
    c: &mut Client,
    target: &str,
    params: &[(&str, String)],
) -> v1::WorkflowExecution {
    let spec = v1::ExecutionSpec {
        remediation_request_ref: Some(v1::RemediationRequestReference {
            name: format!("rr-{target}"),
            namespace: "kubernaut".into(),
            uid: String::new(),
        }),
        workflow_ref: Some(v1::WorkflowReference {
            workflow_id: format!("wf-{target}"),
            workflow_name: "restart-pod".into(),
            action_type: "RestartPod".into(),
            version: "1.0.0".into(),
            container_image: format!("quay.io/kubernaut/restart@sha256:{}", "a".repeat(64)),
        }),
        execution_engine: "job".into(),
        target_resource: format!("default/Deployment/{target}"),
        parameters: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ..Default::default()
    };
    let req = v1::ExecuteWorkflowRequest {
        namespace: String::new(),
        idempotency_key: String::new(),
        spec: Some(spec),
    };
    c.execute_workflow(req)
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap()
}

fn finished(job: &Job) -> bool {
    let conds = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds.is_some_and(|cs| {
        cs.iter()
            .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
    })
}

/// Records every Job the watch ever shows (by uid), so re-creations are counted even if
/// the first Job is gone by the end.
async fn record_jobs(client: kube::Client, seen: Seen, stop: CancellationToken) {
    let api = Api::<Job>::namespaced(client, EXEC_NS);
    let mut events = watcher(api, watcher::Config::default()).boxed();
    loop {
        let ev = tokio::select! {
            () = stop.cancelled() => return,
            ev = events.next() => match ev { Some(ev) => ev, None => return },
        };
        let job = match ev {
            Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) => j,
            _ => continue,
        };
        let (Some(exec), Some(uid)) = (job.labels().get(UID_LABEL).cloned(), job.uid()) else {
            continue;
        };
        let done = finished(&job);
        let mut seen = seen.lock().unwrap();
        let jobs = seen.entry(exec).or_default();
        match jobs.iter_mut().find(|(u, _)| *u == uid) {
            Some(entry) => entry.1 |= done,
            None => jobs.push((uid, done)),
        }
    }
}

/// A job-agent replica on its own runtime: `kill` stops every task it spawned at once,
/// without a drain, as a SIGKILL would.
pub struct AgentProc {
    rt: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
}

impl AgentProc {
    fn start(sandbox_url: String, cfg: wfe_agent::AgentConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        rt.spawn(async move {
            // The kube client's worker must live on this runtime, so it dies with it.
            let uri: http::Uri = sandbox_url.parse().unwrap();
            let client = kube::Client::try_from(kube::Config::new(uri)).unwrap();
            let exec = JobExecutor::new(
                client,
                JobExecutorConfig {
                    namespace: EXEC_NS.into(),
                    cluster_id: String::new(),
                    policy: Policy::default(),
                },
            );
            let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            if let Err(e) = wfe_agent::run_with(cfg, Arc::new(exec), admin, token).await {
                tracing::error!(error = %e, "agent failed");
            }
        });
        Self { rt: Some(rt), stop }
    }

    /// Kills the replica: no drain, no goodbye.
    pub fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
