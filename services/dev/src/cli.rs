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
    /// Run a real control plane (etcd, kube-apiserver, kube-controller-manager built by
    /// tests/control-plane/build) with the CRDs and namespaces installed and the
    /// simulated kubelet and Tekton controller (started by `dev --backend real`).
    RealCluster(RealClusterArgs),
    /// Run workflow-api (the same code as the `workflow-api` binary).
    Api(Box<wfe_api::Config>),
    /// Run a job-agent (the same flags and code as the `job-agent` binary).
    JobAgent(wfe_job_agent::cli::JobAgentCli),
    /// Run a tekton-agent (the same flags and code as the `tekton-agent` binary).
    TektonAgent(wfe_tekton_agent::cli::TektonAgentCli),
}

/// The Kubernetes `wfe dev` runs the system on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The embedded sandbox API server with simulated Job, kubelet and Tekton
    /// controllers: starts in a second, nothing to build.
    Sandbox,
    /// A real control plane: etcd, kube-apiserver (HTTPS, token authentication, RBAC)
    /// and kube-controller-manager built from Go modules by tests/control-plane/build
    /// (10-20 minutes the first time), with the simulated kubelet and Tekton.
    Real,
}

/// Options of `wfe dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Which Kubernetes to run on.
    #[arg(long, env = "WFE_DEV_BACKEND", value_enum, default_value = "sandbox")]
    pub backend: Backend,
    /// Where the stack keeps its state (sandbox objects, audit log, tokens).
    #[arg(long, env = "WFE_DEV_STATE_DIR", default_value = "target/wfe-dev")]
    pub state_dir: PathBuf,
    /// Start from an empty state instead of the one left by the last run.
    #[arg(long, env = "WFE_DEV_FRESH")]
    pub fresh: bool,
    /// Kubernetes API server address (the sandbox's, or kube-apiserver's on the real
    /// backend).
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

/// Options of `wfe real-cluster`.
#[derive(Debug, Clone, clap::Args)]
pub struct RealClusterArgs {
    /// Address kube-apiserver serves HTTPS on.
    #[arg(long, env = "WFE_REAL_CLUSTER_ADDR", default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// etcd data, PKI (pki/ca.crt is the CA to trust), token file and logs, kept across
    /// restarts.
    #[arg(
        long,
        env = "WFE_REAL_CLUSTER_DATA_DIR",
        default_value = "target/wfe-real-cluster"
    )]
    pub data_dir: PathBuf,
    /// Bearer tokens for kube-apiserver, one `token,user,uid[,"group1,group2"]` a line;
    /// a `system:masters` loopback token is always added for the cluster's own use.
    #[arg(long, env = "WFE_REAL_CLUSTER_TOKEN_AUTH_FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// etcd fsyncs its log, as in production (off: faster, and a machine crash may
    /// lose the last writes).
    #[arg(long, env = "WFE_REAL_CLUSTER_ETCD_FSYNC")]
    pub etcd_fsync: bool,
    /// The Job controller's pod-failure backoff (Go duration); upstream's 10 s,
    /// doubling, when absent.
    #[arg(long, env = "WFE_REAL_CLUSTER_JOB_POD_FAILURE_BACKOFF")]
    pub job_pod_failure_backoff: Option<String>,
    /// Multiplies the simulated kubelet's and Tekton's delays, SANDBOX_DURATION
    /// included (0 = instant).
    #[arg(long, env = "WFE_REAL_CLUSTER_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,
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
            Command::RealCluster(args) => crate::real_cluster::run(args).await,
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
