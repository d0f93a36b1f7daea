//! The job-agent's command line, shared by the `job-agent` binary and `wfe job-agent`
//! (so the two cannot drift), and the run it starts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::status::Policy;
use crate::{JobExecutor, JobExecutorConfig};

/// job-agent flags; each is also an environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "job-agent",
    version,
    about = "Executor agent for the job engine"
)]
pub struct JobAgentCli {
    /// Flags every agent has (API, identity, capacity, admin port).
    #[command(flatten)]
    pub agent: wfe_agent::AgentArgs,
    /// OOM kills tolerated before the execution fails with OOMKilled.
    #[arg(long, env = "WFE_AGENT_OOM_KILL_LIMIT", default_value_t = 2)]
    pub oom_kill_limit: u32,
    /// Seconds a container may fail to start (image pull, missing secret) before the
    /// execution fails with ImagePullBackOff or ConfigurationError. A choice: long enough
    /// for a slow registry or a Secret created a moment late to heal, short enough that the
    /// mistake is reported long before the Job's deadline.
    #[arg(long, env = "WFE_AGENT_STUCK_GRACE_SECONDS", default_value_t = 120)]
    pub stuck_grace_seconds: u64,
}

impl JobAgentCli {
    /// Runs the agent against the cluster of the environment (in-cluster or kubeconfig)
    /// until `shutdown`, then drains.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes")?;
        let executor = JobExecutor::new(
            client,
            JobExecutorConfig {
                namespace: self.agent.execution_namespace.clone(),
                cluster_id: self.agent.cluster_id.clone(),
                policy: Policy {
                    oom_kill_limit: self.oom_kill_limit,
                    stuck_grace: Duration::from_secs(self.stuck_grace_seconds),
                },
            },
        );
        wfe_agent::run(&self.agent, Arc::new(executor), shutdown).await
    }
}
