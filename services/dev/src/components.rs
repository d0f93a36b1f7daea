//! `wfe api`, `wfe job-agent`, `wfe tekton-agent`: the production code paths,
//! started from this one binary so `wfe dev` needs a single build.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use wfe_job_agent::status::Policy;
use wfe_job_agent::{JobExecutor, JobExecutorConfig};
use wfe_tekton_agent::{TektonExecutor, TektonExecutorConfig};

/// Runs workflow-api until SIGTERM or Ctrl-C.
pub async fn api(config: wfe_api::Config) -> anyhow::Result<()> {
    wfe_api::run(config, shutdown_on_signal()).await
}

/// Runs a job-agent until SIGTERM or Ctrl-C (then drains).
pub async fn job_agent(cli: crate::cli::JobAgentCli) -> anyhow::Result<()> {
    let args = cli.agent;
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let executor = JobExecutor::new(
        client,
        JobExecutorConfig {
            namespace: args.execution_namespace.clone(),
            cluster_id: args.cluster_id.clone(),
            policy: Policy {
                oom_kill_limit: cli.oom_kill_limit,
                stuck_grace: std::time::Duration::from_secs(cli.stuck_grace_seconds),
            },
        },
    );
    wfe_agent::run(&args, Arc::new(executor), shutdown_on_signal()).await
}

/// Runs a tekton-agent until SIGTERM or Ctrl-C (then drains).
pub async fn tekton_agent(cli: crate::cli::AgentCli) -> anyhow::Result<()> {
    let args = cli.agent;
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let executor = TektonExecutor::new(
        client,
        TektonExecutorConfig {
            namespace: args.execution_namespace.clone(),
            cluster_id: args.cluster_id.clone(),
        },
    )
    .with_policy(wfe_tekton_agent::status::Policy {
        stuck_grace: std::time::Duration::from_secs(cli.stuck_grace_seconds),
    });
    wfe_agent::run(&args, Arc::new(executor), shutdown_on_signal()).await
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        crate::dev::wait_for_shutdown_signal().await;
        t.cancel();
    });
    token
}
