//! `wfe sandbox`: the sandbox with the WorkflowExecution CRD (and Tekton's) installed.

use anyhow::Context;
use wfe_sandbox::{Sandbox, SandboxConfig};

use crate::cli::SandboxArgs;

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let crd = serde_json::to_value(wfe_k8s::crd::workflow_execution_crd())?;
    let config = SandboxConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        crds: vec![crd],
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .context("starting the sandbox")?;
    tracing::info!(url = %sandbox.url(), "sandbox ready");
    crate::dev::wait_for_shutdown_signal().await;
    sandbox.shutdown().await;
    Ok(())
}
