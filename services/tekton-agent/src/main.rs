//! tekton-agent: runs workflows as Tekton PipelineRuns for workflow-api.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wfe_tekton_agent::status::Policy;
use wfe_tekton_agent::{TektonExecutor, TektonExecutorConfig};

/// tekton-agent flags.
#[derive(Debug, Parser)]
#[command(version, about = "Executor agent for the tekton engine")]
struct Cli {
    #[command(flatten)]
    agent: wfe_agent::AgentArgs,
    /// Seconds a TaskRun's pod may wait on a missing Secret or ConfigMap before failing.
    #[arg(long, env = "WFE_AGENT_STUCK_GRACE_SECONDS", default_value_t = 120)]
    stuck_grace_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wfe_agent::init_tracing();
    let cli = Cli::parse();
    let client = kube::Client::try_default().await?;
    let executor = TektonExecutor::new(
        client,
        TektonExecutorConfig {
            namespace: cli.agent.execution_namespace.clone(),
            cluster_id: cli.agent.cluster_id.clone(),
        },
    )
    .with_policy(Policy {
        stuck_grace: Duration::from_secs(cli.stuck_grace_seconds),
    });
    wfe_agent::run(
        &cli.agent,
        Arc::new(executor),
        wfe_agent::shutdown_on_signals(),
    )
    .await
}
