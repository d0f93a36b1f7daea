//! job-agent: runs workflows as batch/v1 Jobs for workflow-api.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use wfe_job_agent::status::Policy;
use wfe_job_agent::{JobExecutor, JobExecutorConfig};

/// job-agent flags.
#[derive(Debug, Parser)]
#[command(version, about = "Executor agent for the job engine")]
struct Cli {
    #[command(flatten)]
    agent: wfe_agent::AgentArgs,
    /// OOM kills tolerated before the execution fails with OOMKilled.
    #[arg(long, env = "WFE_AGENT_OOM_KILL_LIMIT", default_value_t = 2)]
    oom_kill_limit: u32,
    /// Seconds a container may fail to start (image pull, missing secret) before failing.
    #[arg(long, env = "WFE_AGENT_STUCK_GRACE_SECONDS", default_value_t = 120)]
    stuck_grace_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wfe_agent::init_tracing();
    let cli = Cli::parse();
    let client = kube::Client::try_default().await?;
    let executor = JobExecutor::new(
        client,
        JobExecutorConfig {
            namespace: cli.agent.execution_namespace.clone(),
            cluster_id: cli.agent.cluster_id.clone(),
            policy: Policy {
                oom_kill_limit: cli.oom_kill_limit,
                stuck_grace: Duration::from_secs(cli.stuck_grace_seconds),
            },
        },
    );
    wfe_agent::run(
        &cli.agent,
        Arc::new(executor),
        wfe_agent::shutdown_on_signals(),
    )
    .await
}
