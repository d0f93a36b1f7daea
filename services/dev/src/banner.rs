//! What `wfe dev` prints once the stack is up: where to connect, and a call to paste.

use crate::cli::DevArgs;
use crate::state::{OPERATOR_TOKEN, StateFiles};

/// A digest-pinned image; the sandbox runs no containers, any valid digest works.
pub const DEMO_IMAGE: &str = "ghcr.io/kubernaut/workflows/restart-deployment@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Prints the banner.
pub fn print(args: &DevArgs, files: &StateFiles) {
    let grpc = args.grpc_addr;
    let admin = args.admin_addr;
    let (what, kubernetes) = match args.backend {
        crate::cli::Backend::Sandbox => ("sandbox", format!("http://{}", args.sandbox_addr)),
        crate::cli::Backend::Real => ("real", format!("https://{}", args.sandbox_addr)),
    };
    let kubeconfig = files.kubeconfig.display();
    let audit = files.audit_log.display();
    println!(
        r#"
The local stack is up on the {what} backend: Kubernetes, workflow-api, job-agent, tekton-agent. Ctrl-C stops it.

  workflow-api gRPC   {grpc}   (token: {OPERATOR_TOKEN})
  metrics, readiness  http://{admin}/metrics   http://{admin}/readyz
  Kubernetes ({what})  {kubernetes}   export KUBECONFIG={kubeconfig}
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
    for hint in missing_client_hints(&path_dirs()) {
        println!("  {hint}");
    }
}

/// The clients the banner's commands use, and how to get each one.
const CLIENTS: [(&str, &str); 2] = [
    (
        "grpcurl",
        "grpcurl is not on PATH: python3 -m pip install -r tests/requirements.txt",
    ),
    (
        "kubectl",
        "kubectl is not on PATH: install it to look at the sandbox's resources",
    ),
];

fn path_dirs() -> Vec<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// A hint for each client the banner's commands need that no directory in `path` holds,
/// so a newcomer learns it here rather than from "command not found".
fn missing_client_hints(path: &[std::path::PathBuf]) -> Vec<&'static str> {
    CLIENTS
        .iter()
        .filter(|(bin, _)| !path.iter().any(|dir| dir.join(bin).is_file()))
        .map(|(_, hint)| *hint)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_only_the_missing_clients() {
        let dir = std::env::temp_dir().join(format!("wfe-banner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kubectl"), "").unwrap();
        let hints = missing_client_hints(std::slice::from_ref(&dir));
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(hints[0].starts_with("grpcurl is not on PATH"));
        std::fs::write(dir.join("grpcurl"), "").unwrap();
        assert!(missing_client_hints(std::slice::from_ref(&dir)).is_empty());
        assert_eq!(missing_client_hints(&[]).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
