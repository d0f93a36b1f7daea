//! tekton-agent: runs workflows as Tekton PipelineRuns for workflow-api.

use std::sync::Arc;

use clap::Parser;
use wfe_tekton_agent::{TektonExecutor, TektonExecutorConfig};

/// tekton-agent flags.
#[derive(Debug, Parser)]
#[command(version, about = "Executor agent for the tekton engine")]
struct Cli {
    #[command(flatten)]
    agent: wfe_agent::AgentArgs,
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
    );
    wfe_agent::run(
        &cli.agent,
        Arc::new(executor),
        wfe_agent::shutdown_on_signals(),
    )
    .await
}
