//! Command line of `wfe`; every flag is also a `WFE_DEV_*` environment variable.

use std::path::PathBuf;
use std::time::Duration;

use wfe_process::duration::parse as parse_duration;

/// Runs the Kubernaut WorkflowExecution system locally, on the sandbox.
#[derive(Debug, clap::Parser)]
#[command(name = "wfe", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start the whole local stack and keep it running until Ctrl-C; a component that
    /// dies is started again.
    #[command(after_help = DEV_ENVIRONMENT)]
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

/// `wfe dev --help`'s closing section: the components' own settings.
const DEV_ENVIRONMENT: &str = "\
Every component reads the environment `wfe dev` was started with, so any flag of
`wfe api --help` (WFE_API_*) and of `wfe job-agent --help` / `wfe tekton-agent --help`
(WFE_AGENT_*, read by both agents) can be set there, e.g.
  WFE_API_COOLDOWN=30s            same workflow on the same target: refused this long (5m)
  WFE_API_BACKOFF_BASE=5s         wait after a pre-execution failure, doubling (60s)
  WFE_API_MAX_CONSECUTIVE_FAILURES=5   then ExhaustedRetries (3)
  WFE_API_LEASE_DURATION=10s      an agent silent this long is lost (5s)
  WFE_API_PRIMITIVE_RETENTION=1m  keep finished Jobs/PipelineRuns this long (10m)
  WFE_AGENT_STUCK_GRACE_SECONDS=30  image pull / missing Secret: fail after this (120)
The flags above (--cooldown, --backoff-base, --lease-duration, --stuck-grace-seconds)
win over the environment. Addresses, token files and the audit file are set by `wfe dev`.";

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
    /// How long to wait before restarting a component that died; doubles while it keeps
    /// dying soon after a restart.
    #[arg(long, env = "WFE_DEV_RESTART_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub restart_backoff: Duration,
    /// The longest wait before a restart; a component up this long counts as healthy.
    #[arg(long, env = "WFE_DEV_RESTART_BACKOFF_MAX", default_value = "30s", value_parser = parse_duration)]
    pub restart_backoff_max: Duration,
    /// Settings passed on to the components.
    #[command(flatten)]
    pub tunings: Tunings,
}

/// The components' most-tuned settings, passed on as their flags when given (otherwise
/// their own defaults, or their `WFE_API_*` / `WFE_AGENT_*` environment, apply).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Tunings {
    /// workflow-api `--cooldown`: how long the same workflow on the same target is
    /// refused (RecentlyRemediated) after it completed [component default: 5m].
    #[arg(long, env = "WFE_DEV_COOLDOWN", value_parser = parse_duration)]
    pub cooldown: Option<Duration>,
    /// workflow-api `--backoff-base`: the wait after a pre-execution failure, doubling
    /// (ExponentialBackoff) [component default: 60s].
    #[arg(long, env = "WFE_DEV_BACKOFF_BASE", value_parser = parse_duration)]
    pub backoff_base: Option<Duration>,
    /// workflow-api `--lease-duration`: an agent silent this long is lost and its work
    /// reassigned [component default: 5s].
    #[arg(long, env = "WFE_DEV_LEASE_DURATION", value_parser = parse_duration)]
    pub lease_duration: Option<Duration>,
    /// Both agents' `--stuck-grace-seconds`: how long a workflow may wait on a pre-start
    /// problem (an image that cannot be pulled, a missing Secret) before it fails
    /// [component default: 120].
    #[arg(long, env = "WFE_DEV_STUCK_GRACE_SECONDS")]
    pub stuck_grace_seconds: Option<u64>,
}

impl Tunings {
    /// The flags for `wfe api`.
    pub fn api_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, value) in [
            ("--cooldown", self.cooldown),
            ("--backoff-base", self.backoff_base),
            ("--lease-duration", self.lease_duration),
        ] {
            if let Some(d) = value {
                out.extend([flag.to_owned(), format!("{}ms", d.as_millis())]);
            }
        }
        out
    }

    /// The flags for `wfe job-agent` and `wfe tekton-agent`.
    pub fn agent_args(&self) -> Vec<String> {
        self.stuck_grace_seconds
            .map(|s| vec!["--stuck-grace-seconds".to_owned(), s.to_string()])
            .unwrap_or_default()
    }
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

    fn dev(args: &[&str]) -> DevArgs {
        let all = ["wfe", "dev"].iter().chain(args);
        match Cli::try_parse_from(all).expect("parses").command {
            Command::Dev(a) => a,
            _ => unreachable!("parsed as the dev command"),
        }
    }

    #[test]
    fn dev_tunings_become_the_components_flags_only_when_given() {
        let plain = dev(&[]);
        assert!(plain.tunings.api_args().is_empty() && plain.tunings.agent_args().is_empty());
        assert_eq!(plain.restart_backoff, Duration::from_secs(1));
        let tuned = dev(&[
            "--cooldown",
            "30s",
            "--backoff-base=1.5s",
            "--lease-duration",
            "10s",
            "--stuck-grace-seconds",
            "20",
            "--restart-backoff",
            "200ms",
        ]);
        assert_eq!(
            tuned.tunings.api_args(),
            [
                "--cooldown",
                "30000ms",
                "--backoff-base",
                "1500ms",
                "--lease-duration",
                "10000ms"
            ]
        );
        assert_eq!(tuned.tunings.agent_args(), ["--stuck-grace-seconds", "20"]);
        assert_eq!(tuned.restart_backoff, Duration::from_millis(200));
        // What they become must parse as the components' own flags.
        let api = Cli::try_parse_from(
            ["wfe", "api"]
                .into_iter()
                .map(str::to_owned)
                .chain(tuned.tunings.api_args()),
        )
        .expect("wfe api takes them");
        let Command::Api(config) = api.command else {
            unreachable!("parsed as the api command")
        };
        assert_eq!(config.cooldown, Duration::from_secs(30));
        assert_eq!(config.backoff_base, Duration::from_millis(1500));
        assert_eq!(config.lease_duration, Duration::from_secs(10));
        for agent in ["job-agent", "tekton-agent"] {
            Cli::try_parse_from(
                ["wfe", agent, "--api-url", "http://127.0.0.1:1"]
                    .into_iter()
                    .map(str::to_owned)
                    .chain(tuned.tunings.agent_args()),
            )
            .unwrap_or_else(|e| panic!("{agent} takes them: {e}"));
        }
        assert!(Cli::try_parse_from(["wfe", "dev", "--cooldown", "soon"]).is_err());
    }

    /// Every `WFE_*` variable `wfe dev --help` names is one a component reads.
    #[test]
    fn dev_help_names_only_real_component_variables() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let read: Vec<String> = ["api", "job-agent", "tekton-agent"]
            .iter()
            .flat_map(|c| cli.find_subcommand(c).expect("a component").get_arguments())
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .collect();
        let named: Vec<&str> = DEV_ENVIRONMENT
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '*'))
            .filter(|w| w.starts_with("WFE_") && !w.ends_with('*'))
            .collect();
        assert!(named.len() >= 6, "{named:?}");
        for var in named {
            assert!(
                read.iter().any(|r| r == var),
                "{var} is read by no component"
            );
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
