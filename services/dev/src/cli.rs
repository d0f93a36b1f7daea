//! Command line of `wfe`; every flag is also a `WFE_DEV_*` environment variable.

use std::path::PathBuf;

/// Runs the Kubernaut WorkflowExecution system locally, on the sandbox.
#[derive(Debug, clap::Parser)]
#[command(name = "wfe", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start the whole local stack and keep it running until Ctrl-C.
    Dev(DevArgs),
    /// Run only the sandbox Kubernetes API server with the CRDs installed
    /// (started by `dev`; useful on its own).
    Sandbox(SandboxArgs),
    /// Run workflow-api (the same code as the `workflow-api` binary).
    Api(Box<wfe_api::Config>),
    /// Run a job-agent (the same flags and code as the `job-agent` binary).
    JobAgent(wfe_job_agent::cli::JobAgentCli),
    /// Run a tekton-agent (the same flags and code as the `tekton-agent` binary).
    TektonAgent(wfe_tekton_agent::cli::TektonAgentCli),
}

/// Options of `wfe dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Where the stack keeps its state (sandbox objects, audit log, tokens).
    #[arg(long, env = "WFE_DEV_STATE_DIR", default_value = "target/wfe-dev")]
    pub state_dir: PathBuf,
    /// Start from an empty state instead of the one left by the last run.
    #[arg(long, env = "WFE_DEV_FRESH")]
    pub fresh: bool,
    /// Sandbox API server address.
    #[arg(long, env = "WFE_DEV_SANDBOX_ADDR", default_value = "127.0.0.1:6443")]
    pub sandbox_addr: std::net::SocketAddr,
    /// workflow-api gRPC address.
    #[arg(long, env = "WFE_DEV_GRPC_ADDR", default_value = "127.0.0.1:8443")]
    pub grpc_addr: std::net::SocketAddr,
    /// workflow-api admin address (/metrics, /readyz); the agents use the next two ports.
    #[arg(long, env = "WFE_DEV_ADMIN_ADDR", default_value = "127.0.0.1:9090")]
    pub admin_addr: std::net::SocketAddr,
}

/// Options of `wfe sandbox`.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to serve on.
    #[arg(long, env = "WFE_SANDBOX_ADDR", default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// Keep objects in this directory across restarts (in memory when absent).
    #[arg(long, env = "WFE_SANDBOX_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Bearer tokens, one `token,user,uid[,"group1,group2"]` a line (kube-apiserver's
    /// format); requests without a known token get 401. Without it, everyone is served.
    #[arg(long, env = "WFE_SANDBOX_TOKEN_AUTH_FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// AlwaysAllow, or RBAC: the stored Roles, ClusterRoles and bindings decide.
    #[arg(
        long,
        env = "WFE_SANDBOX_AUTHORIZATION_MODE",
        value_enum,
        default_value = "AlwaysAllow"
    )]
    pub authorization_mode: wfe_sandbox::access::AuthorizationMode,
    /// Requests without a token are `system:anonymous` (true, kube-apiserver's default)
    /// or refused with 401 (false); with a token file only.
    #[arg(long, env = "WFE_SANDBOX_ANONYMOUS_AUTH", default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            // Children's output goes through `wfe dev`'s pipes: colour only on a terminal.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        match self.command {
            Command::Dev(args) => crate::dev::run(args).await,
            Command::Sandbox(args) => crate::sandbox::run(args).await,
            Command::Api(config) => crate::components::api(*config).await,
            Command::JobAgent(cli) => crate::components::job_agent(cli).await,
            Command::TektonAgent(cli) => crate::components::tekton_agent(cli).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn sandbox(args: &[&str]) -> Result<SandboxArgs, clap::Error> {
        let all = ["wfe", "sandbox"].iter().chain(args);
        match Cli::try_parse_from(all)?.command {
            Command::Sandbox(a) => Ok(a),
            _ => unreachable!("parsed as the sandbox command"),
        }
    }

    #[test]
    fn sandbox_access_flags_default_to_open_and_take_kube_apiservers_spelling() {
        let open = sandbox(&[]).expect("defaults parse");
        assert_eq!(
            open.authorization_mode,
            wfe_sandbox::access::AuthorizationMode::AlwaysAllow
        );
        assert!(open.anonymous_auth && open.token_auth_file.is_none());
        let rbac = sandbox(&[
            "--token-auth-file=t.csv",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
        ])
        .expect("RBAC parses");
        assert_eq!(
            rbac.authorization_mode,
            wfe_sandbox::access::AuthorizationMode::Rbac
        );
        assert!(!rbac.anonymous_auth);
        assert!(sandbox(&["--authorization-mode=Webhook"]).is_err());
    }
}
