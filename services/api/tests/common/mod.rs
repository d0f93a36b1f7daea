//! Test harness: a sandbox API server with the CRD, workflow-api instances in-process, an
//! authenticated gRPC client and a fake agent speaking the session protocol.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod datastorage;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tonic::service::Interceptor;
use tonic::transport::Channel;
use wfe_api::{Config, Running};
use wfe_proto::v1;
use wfe_proto::v1::workflow_execution_service_client::WorkflowExecutionServiceClient;

/// Caller tokens: `caller-token` is alice.
pub const CALLER_TOKEN: &str = "caller-token";
/// Agent tokens: `job-local` (local/job), `job-east` (east/job).
pub const AGENT_TOKENS: &str = "job-local - job\njob-east east job\ntekton-local - tekton\n";

pub const NS: &str = "default";

/// A sandbox plus a temp dir with tokens and the audit file.
pub struct Env {
    pub sandbox: wfe_sandbox::Sandbox,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub async fn new() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let crd = serde_json::to_value(wfe_k8s::crd::workflow_execution_crd()).unwrap();
        let config = wfe_sandbox::SandboxConfig {
            crds: vec![crd],
            job_controller: false,
            tekton_controller: false,
            ..Default::default()
        };
        let sandbox = wfe_sandbox::Sandbox::start(config).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("callers"),
            format!("{CALLER_TOKEN} alice\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("agents"), AGENT_TOKENS).unwrap();
        Self { sandbox, dir }
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// Test configuration: short heartbeats and leases, tiny backoff.
    pub fn config(&self) -> Config {
        let mut c = Config::local(NS, self.audit_path());
        c.caller_tokens_file = Some(self.dir.path().join("callers"));
        c.agent_tokens_file = Some(self.dir.path().join("agents"));
        c.heartbeat_interval = Duration::from_millis(200);
        c.lease_duration = Duration::from_millis(800);
        c.ack_timeout = Duration::from_millis(400);
        c.watch_heartbeat = Duration::from_millis(300);
        c.shutdown_grace = Duration::from_secs(2);
        c.primitive_retention = Duration::ZERO;
        c
    }

    /// Test configuration with the DataStorage sink and an outbox under the temp dir.
    pub fn datastorage_config(&self, url: &str) -> Config {
        let mut c = self.config();
        c.audit_sink = wfe_api::config::AuditSinkKind::Datastorage;
        c.datastorage_url = Some(url.to_owned());
        c.audit_outbox_dir = self.dir.path().join("outbox");
        c.audit_retry_base = Duration::from_millis(100);
        c.audit_resync_interval = Duration::from_millis(200);
        c
    }

    pub async fn start(&self, config: Config) -> Running {
        let running = wfe_api::start(config, self.sandbox.kube_client().unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), running.wait_ready())
            .await
            .expect("API synced");
        running
    }

    /// Every audit event recorded so far.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[derive(Clone)]
pub struct Bearer(pub String);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.0).parse().unwrap(),
        );
        Ok(req)
    }
}

pub type Client = WorkflowExecutionServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, Bearer>,
>;

pub async fn channel(running: &Running) -> Channel {
    Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub async fn client(running: &Running, token: &str) -> Client {
    WorkflowExecutionServiceClient::with_interceptor(
        channel(running).await,
        Bearer(token.to_owned()),
    )
}

/// A valid request body.
pub fn spec(target: &str, workflow_id: &str) -> v1::ExecutionSpec {
    v1::ExecutionSpec {
        remediation_request_ref: Some(v1::RemediationRequestReference {
            name: "rr-1".into(),
            namespace: "kubernaut".into(),
            uid: String::new(),
        }),
        workflow_ref: Some(v1::WorkflowReference {
            workflow_id: workflow_id.into(),
            workflow_name: "restart-pod".into(),
            action_type: "RestartPod".into(),
            version: "1.0.0".into(),
            container_image: format!("quay.io/kubernaut/restart@sha256:{}", "a".repeat(64)),
        }),
        execution_engine: "job".into(),
        target_resource: target.into(),
        parameters: [("REPLICAS".to_owned(), "3".to_owned())].into(),
        ..Default::default()
    }
}

pub fn execute_req(target: &str, workflow_id: &str, key: &str) -> v1::ExecuteWorkflowRequest {
    v1::ExecuteWorkflowRequest {
        namespace: String::new(),
        idempotency_key: key.into(),
        spec: Some(spec(target, workflow_id)),
    }
}

/// Sends ExecuteWorkflow (no idempotency key), expects a new execution and returns its name.
pub async fn start_execution(c: &mut Client, target: &str, workflow_id: &str) -> String {
    let res = c
        .execute_workflow(execute_req(target, workflow_id, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.disposition, v1::Disposition::Created as i32, "{res:?}");
    res.execution.unwrap().name
}

/// Polls `f` until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn get(c: &mut Client, name: &str) -> v1::WorkflowExecution {
    c.get_workflow_execution(v1::GetWorkflowExecutionRequest {
        name: name.into(),
        namespace: String::new(),
    })
    .await
    .unwrap()
    .into_inner()
    .execution
    .unwrap()
}

pub fn phase(e: &v1::WorkflowExecution) -> v1::Phase {
    v1::Phase::try_from(e.status.as_ref().map(|s| s.phase).unwrap_or(0)).unwrap()
}

/// Waits until the execution reaches `want`.
pub async fn wait_phase(c: &Client, name: &str, want: v1::Phase) -> v1::WorkflowExecution {
    eventually(10, &format!("{name} to be {want:?}"), || {
        let mut c = c.clone();
        async move {
            let e = get(&mut c, name).await;
            (phase(&e) == want).then_some(e)
        }
    })
    .await
}

pub fn condition<'a>(e: &'a v1::WorkflowExecution, t: &str) -> Option<&'a v1::Condition> {
    e.status.as_ref()?.conditions.iter().find(|c| c.r#type == t)
}

/// The AuditRecorded condition's message once it lists every event type in `types`.
pub async fn wait_audit_recorded(c: &Client, name: &str, types: &[&str]) -> v1::WorkflowExecution {
    eventually(
        10,
        &format!("AuditRecorded of {name} listing {types:?}"),
        || {
            let mut c = c.clone();
            async move {
                let e = get(&mut c, name).await;
                let cond = condition(&e, "AuditRecorded")?;
                (cond.status == "True" && types.iter().all(|t| cond.message.contains(t)))
                    .then_some(e)
            }
        },
    )
    .await
}

/// The /metrics text.
pub async fn metrics(running: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", running.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
