//! What `wfe dev` prints once the stack is up: where to connect, and a call to paste.

use crate::cli::DevArgs;
use crate::state::{OPERATOR_TOKEN, StateFiles};

/// A digest-pinned image; the sandbox runs no containers, any valid digest works.
pub const DEMO_IMAGE: &str = "ghcr.io/kubernaut/workflows/restart-deployment@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Prints the banner.
pub fn print(args: &DevArgs, files: &StateFiles) {
    let grpc = args.grpc_addr;
    let admin = args.admin_addr;
    let sandbox = args.sandbox_addr;
    let kubeconfig = files.kubeconfig.display();
    let audit = files.audit_log.display();
    println!(
        r#"
The local stack is up: sandbox, workflow-api, job-agent, tekton-agent. Ctrl-C stops it.

  workflow-api gRPC   {grpc}   (token: {OPERATOR_TOKEN})
  metrics, readiness  http://{admin}/metrics   http://{admin}/readyz
  Kubernetes (sandbox) http://{sandbox}        export KUBECONFIG={kubeconfig}
  audit log           {audit}

Run a workflow (paste it):

  grpcurl -plaintext -H 'authorization: Bearer {OPERATOR_TOKEN}' -d '{{
    "idempotency_key": "demo-1",
    "spec": {{
      "remediation_request_ref": {{"name": "rr-demo-1", "namespace": "kubernaut-system"}},
      "workflow_ref": {{"workflow_id": "restart-deployment", "workflow_name": "restart-deployment",
        "action_type": "RestartDeployment", "version": "1.0.0",
        "container_image": "{DEMO_IMAGE}"}},
      "execution_engine": "job",
      "target_resource": "default/Deployment/web",
      "parameters": {{"SANDBOX_DURATION": "3s"}}
    }}}}' {grpc} kubernaut.workflowexecution.v1.WorkflowExecutionService/ExecuteWorkflow

  kubectl --kubeconfig {kubeconfig} get wfe
"#
    );
}
