//! `wfe sandbox`: the sandbox with the WorkflowExecution CRD (and Tekton's) installed.

use anyhow::Context;
use wfe_sandbox::{Sandbox, SandboxConfig};

use crate::cli::SandboxArgs;

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let crd = serde_json::to_value(wfe_k8s::crd::workflow_execution_crd())?;
    let access = wfe_sandbox::access::from_flags(
        args.token_auth_file.as_deref(),
        args.authorization_mode,
        args.anonymous_auth,
    )
    .map_err(anyhow::Error::msg)?;
    let config = SandboxConfig {
        access,
        listen: args.listen,
        data_dir: args.data_dir,
        crds: vec![crd],
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .context("starting the sandbox")?;
    ensure_namespaces(&sandbox).await?;
    tracing::info!(url = %sandbox.url(), "sandbox ready");
    crate::dev::wait_for_shutdown_signal().await;
    sandbox.shutdown().await;
    Ok(())
}

/// The namespaces the stack uses: the API's and the execution namespace.
pub const NAMESPACES: [&str; 3] = ["default", "kubernaut-system", "kubernaut-workflows"];

async fn ensure_namespaces(sandbox: &Sandbox) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let api: Api<Namespace> = Api::all(sandbox.kube_client()?);
    for name in NAMESPACES {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.to_owned());
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("creating namespace {name}")),
        }
    }
    Ok(())
}
