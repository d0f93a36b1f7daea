//! Command-line flags shared by every agent binary (flattened into each one's clap
//! struct). Every flag is also an environment variable `WFE_AGENT_*`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of the agent runtime.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// URL of workflow-api's agent session endpoint (`https://` needs `--tls-ca`).
    #[arg(
        long,
        env = "WFE_AGENT_API_URL",
        default_value = "http://workflow-api:8443"
    )]
    pub api_url: String,
    /// File holding the bearer token (re-read on every reconnect, so it can rotate).
    #[arg(long, env = "WFE_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to verify the API's certificate; enables TLS.
    #[arg(long, env = "WFE_AGENT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Cluster this agent runs in; empty for the local cluster.
    #[arg(long, env = "WFE_AGENT_CLUSTER_ID", default_value = "")]
    pub cluster_id: String,
    /// Namespace of the primitives.
    #[arg(
        long,
        env = "WFE_AGENT_EXECUTION_NAMESPACE",
        default_value = "kubernaut-workflows"
    )]
    pub execution_namespace: String,
    /// Executions run at once (slots advertised to the API).
    #[arg(long, env = "WFE_AGENT_CAPACITY", default_value_t = 50)]
    pub capacity: u32,
    /// Address of the admin port (`/livez`, `/readyz`, `/metrics`, gRPC health).
    #[arg(long, env = "WFE_AGENT_ADMIN_ADDR", default_value = "0.0.0.0:9091")]
    pub admin_addr: SocketAddr,
    /// Unique id of this replica; defaults to `$POD_NAME`, then the hostname.
    #[arg(long, env = "WFE_AGENT_AGENT_ID")]
    pub agent_id: Option<String>,
    /// OTLP/gRPC collector for traces, e.g. `http://otel-collector:4317`; without it no
    /// span is exported.
    #[arg(long, env = "WFE_AGENT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Longest time the drain after SIGTERM may take, in seconds.
    #[arg(long, env = "WFE_AGENT_DRAIN_TIMEOUT_SECONDS", default_value_t = 30)]
    pub drain_timeout_seconds: u64,
}

impl AgentArgs {
    /// The agent id: the flag, `$POD_NAME`, `$HOSTNAME`, `/etc/hostname`, or a random one.
    pub fn resolved_agent_id(&self) -> String {
        let non_empty = |s: String| {
            let s = s.trim().to_owned();
            (!s.is_empty()).then_some(s)
        };
        self.agent_id
            .clone()
            .and_then(non_empty)
            .or_else(|| std::env::var("POD_NAME").ok().and_then(non_empty))
            .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .and_then(non_empty)
            })
            .unwrap_or_else(|| format!("agent-{}", uuid::Uuid::new_v4()))
    }

    /// The drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    #[test]
    fn defaults_and_flags() {
        let cli = Cli::try_parse_from(["agent", "--capacity", "3", "--agent-id", "a-1"])
            .expect("valid flags");
        assert_eq!(cli.agent.capacity, 3);
        assert_eq!(cli.agent.execution_namespace, "kubernaut-workflows");
        assert_eq!(cli.agent.resolved_agent_id(), "a-1");
        assert!(cli.agent.tls_ca.is_none());
        assert!(cli.agent.otlp_endpoint.is_none());
    }

    #[test]
    fn otlp_endpoint_flag() {
        let cli = Cli::try_parse_from(["agent", "--otlp-endpoint", "http://collector:4317"])
            .expect("valid flags");
        assert_eq!(
            cli.agent.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
    }
}
