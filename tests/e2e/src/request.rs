//! ExecuteWorkflow requests that pick the sandbox workload's behaviour.

use std::collections::HashMap;
use std::time::Duration;

use wfe_proto::v1;

/// A digest-pinned reference; the sandbox runs no containers, any valid digest works.
pub const IMAGE: &str = "ghcr.io/kubernaut/workflows/restart-deployment@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Builder of an [`v1::ExecuteWorkflowRequest`] on one target.
#[derive(Debug, Clone)]
pub struct Req {
    engine: &'static str,
    target: String,
    workflow_id: String,
    rr: String,
    rr_uid: String,
    key: String,
    params: HashMap<String, String>,
    timeout: Option<Duration>,
    cluster_id: String,
    service_account: String,
}

impl Req {
    /// A job-engine request on `target` (`namespace/Kind/name`) that succeeds after 1 s.
    pub fn job(target: &str) -> Self {
        Self::new("job", target)
    }

    /// A tekton-engine request on `target` that succeeds after 1 s.
    pub fn tekton(target: &str) -> Self {
        Self::new("tekton", target)
    }

    fn new(engine: &'static str, target: &str) -> Self {
        let slug: String = target
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        Self {
            engine,
            target: target.to_owned(),
            workflow_id: "restart-deployment".to_owned(),
            rr: format!("rr-{slug}"),
            rr_uid: String::new(),
            key: String::new(),
            params: HashMap::from([("SANDBOX_DURATION".to_owned(), "1s".to_owned())]),
            timeout: None,
            cluster_id: String::new(),
            service_account: String::new(),
        }
    }

    /// `execution_config.service_account_name`: the account the workflow's pods run as.
    pub fn service_account(mut self, name: &str) -> Self {
        self.service_account = name.to_owned();
        self
    }

    /// `SANDBOX_OUTCOME`: succeed, fail:<code>, oom, image-pull-error, missing-secret, hang, …
    pub fn outcome(self, outcome: &str) -> Self {
        self.param("SANDBOX_OUTCOME", outcome)
    }

    /// `SANDBOX_DURATION` as a Go duration (`0s`, `500ms`, `3s`).
    pub fn duration(self, d: &str) -> Self {
        self.param("SANDBOX_DURATION", d)
    }

    /// Any workflow parameter.
    pub fn param(mut self, k: &str, v: &str) -> Self {
        self.params.insert(k.to_owned(), v.to_owned());
        self
    }

    /// The execution's relative timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// The idempotency key.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.to_owned();
        self
    }

    /// The RemediationRequest name (the audit correlation id).
    pub fn remediation(mut self, rr: &str) -> Self {
        self.rr = rr.to_owned();
        self
    }

    /// The RemediationRequest's uid (its executions are owned by it when it exists).
    pub fn remediation_uid(mut self, uid: &str) -> Self {
        self.rr_uid = uid.to_owned();
        self
    }

    /// The workflow id (cooldown is per workflow and target).
    pub fn workflow(mut self, id: &str) -> Self {
        self.workflow_id = id.to_owned();
        self
    }

    /// The cluster whose agents must run it.
    pub fn cluster(mut self, id: &str) -> Self {
        self.cluster_id = id.to_owned();
        self
    }

    /// The spec alone (for Preflight).
    pub fn spec(&self) -> v1::ExecutionSpec {
        v1::ExecutionSpec {
            remediation_request_ref: Some(v1::RemediationRequestReference {
                name: self.rr.clone(),
                namespace: "kubernaut-system".to_owned(),
                uid: self.rr_uid.clone(),
            }),
            workflow_ref: Some(v1::WorkflowReference {
                workflow_id: self.workflow_id.clone(),
                workflow_name: self.workflow_id.clone(),
                action_type: "RestartDeployment".to_owned(),
                version: "1.0.0".to_owned(),
                container_image: IMAGE.to_owned(),
            }),
            execution_engine: self.engine.to_owned(),
            target_resource: self.target.clone(),
            cluster_id: self.cluster_id.clone(),
            parameters: self.params.clone(),
            execution_config: Some(self.config()),
            confidence: 0.9,
            rationale: "end-to-end test".to_owned(),
        }
    }

    fn config(&self) -> v1::ExecutionConfig {
        let deadline = self.timeout.map(|d| {
            v1::execution_config::Deadline::Timeout(prost_types::Duration {
                seconds: d.as_secs() as i64,
                nanos: d.subsec_nanos() as i32,
            })
        });
        v1::ExecutionConfig {
            deadline,
            service_account_name: self.service_account.clone(),
            ..Default::default()
        }
    }

    /// The request.
    pub fn build(&self) -> v1::ExecuteWorkflowRequest {
        v1::ExecuteWorkflowRequest {
            namespace: String::new(),
            idempotency_key: self.key.clone(),
            spec: Some(self.spec()),
        }
    }
}
