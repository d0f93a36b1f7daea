//! The tekton-agent's command line, shared by the `tekton-agent` binary and
//! `wfe tekton-agent` (so the two cannot drift), and the run it starts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::status::Policy;
use crate::{TektonExecutor, TektonExecutorConfig};

/// tekton-agent flags; each is also an environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "tekton-agent",
    version,
    about = "Executor agent for the tekton engine"
)]
pub struct TektonAgentCli {
    /// Flags every agent has (API, identity, capacity, admin port).
    #[command(flatten)]
    pub agent: wfe_agent::AgentArgs,
    /// Seconds a TaskRun's pod may wait on a missing Secret or ConfigMap before the
    /// execution fails with ConfigurationError. A choice: long enough for a Secret created
    /// a moment late, short enough that the mistake is not reported as DeadlineExceeded at
    /// the pipeline timeout.
    #[arg(long, env = "WFE_AGENT_STUCK_GRACE_SECONDS", default_value_t = 120)]
    pub stuck_grace_seconds: u64,
}

impl TektonAgentCli {
    /// Runs the agent against the cluster of the environment (in-cluster or kubeconfig)
    /// until `shutdown`, then drains.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes")?;
        let executor = TektonExecutor::new(
            client,
            TektonExecutorConfig {
                namespace: self.agent.execution_namespace.clone(),
                cluster_id: self.agent.cluster_id.clone(),
            },
        )
        .with_policy(Policy {
            stuck_grace: Duration::from_secs(self.stuck_grace_seconds),
        });
        wfe_agent::run(&self.agent, Arc::new(executor), shutdown).await
    }
}
