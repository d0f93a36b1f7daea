//! The tonic client of workflow-api (generated from wfe-proto) with the bearer token,
//! and the ExecuteWorkflow requests of the benchmark.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use wfe_proto::v1;
use wfe_proto::v1::workflow_execution_service_client::WorkflowExecutionServiceClient;

/// A digest-pinned reference; the sandbox runs no containers, any valid digest works.
const IMAGE: &str = "ghcr.io/kubernaut/workflows/restart-deployment@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The workflow-api client.
pub type Client = WorkflowExecutionServiceClient<InterceptedService<Channel, Bearer>>;

/// Connects to `addr` with `token` (one HTTP/2 connection; clones share it).
pub async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Client> {
    let ch = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .context("connecting to workflow-api")?;
    let value = format!("Bearer {token}").parse()?;
    Ok(
        WorkflowExecutionServiceClient::with_interceptor(ch, Bearer(value))
            .max_decoding_message_size(64 << 20),
    )
}

/// A job-engine request with a zero-duration workload on `target`, for a workflow id
/// of its own (so the RecentlyRemediated cooldown, per workflow and target, never applies).
pub fn request(run: &str, seq: usize, target: &str) -> v1::ExecuteWorkflowRequest {
    let workflow_id = format!("bench-{run}-{seq}");
    let spec = v1::ExecutionSpec {
        remediation_request_ref: Some(v1::RemediationRequestReference {
            name: format!("rr-{run}-{seq}"),
            namespace: crate::stack::API_NAMESPACE.to_owned(),
            uid: String::new(),
        }),
        workflow_ref: Some(v1::WorkflowReference {
            workflow_id: workflow_id.clone(),
            workflow_name: workflow_id,
            action_type: "RestartDeployment".to_owned(),
            version: "1.0.0".to_owned(),
            container_image: IMAGE.to_owned(),
        }),
        execution_engine: "job".to_owned(),
        target_resource: target.to_owned(),
        cluster_id: String::new(),
        parameters: HashMap::from([("SANDBOX_DURATION".to_owned(), "0s".to_owned())]),
        execution_config: Some(v1::ExecutionConfig::default()),
        confidence: 0.9,
        rationale: "benchmark".to_owned(),
    };
    v1::ExecuteWorkflowRequest {
        namespace: String::new(),
        idempotency_key: String::new(),
        spec: Some(spec),
    }
}

/// The target of the `i`-th of `m` targets of run `run`.
pub fn target(run: &str, i: usize) -> String {
    format!("default/Deployment/bench-{run}-{i}")
}
