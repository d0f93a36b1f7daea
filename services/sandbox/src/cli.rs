//! Command line of the `sandbox` binary; every flag is also a `SANDBOX_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;
use wfe_sandbox::{Sandbox, SandboxConfig};

/// Embedded Kubernetes-compatible API server with simulated controllers.
/// A development and test tool: production runs on a real cluster.
#[derive(Debug, clap::Parser)]
#[command(name = "sandbox", version)]
pub struct Args {
    /// Address to serve plain HTTP on.
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Keep objects in this directory across restarts (in memory when absent).
    #[arg(long, env = "SANDBOX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// CRD YAML/JSON file to install at start (repeatable; multi-document YAML allowed).
    #[arg(long = "crd", env = "SANDBOX_CRD", value_delimiter = ',')]
    crds: Vec<PathBuf>,
    /// Directory whose *.yaml / *.yml / *.json files are CRDs to install at start.
    #[arg(long, env = "SANDBOX_CRD_DIR")]
    crd_dir: Option<PathBuf>,
    /// Watch events kept for resuming watches (older resourceVersions get 410 Gone).
    #[arg(long, env = "SANDBOX_HISTORY_SIZE", default_value_t = 10_000)]
    history_size: usize,
    /// Disable the simulated Job controller and kubelet.
    #[arg(long, env = "SANDBOX_NO_JOB_CONTROLLER")]
    no_job_controller: bool,
    /// Disable the simulated Tekton controller.
    #[arg(long, env = "SANDBOX_NO_TEKTON_CONTROLLER")]
    no_tekton_controller: bool,
    /// Do not install the Tekton CRDs at start (to exercise "Tekton CRDs missing").
    #[arg(long, env = "SANDBOX_NO_INSTALL_TEKTON_CRDS")]
    no_install_tekton_crds: bool,
    /// Multiplies every simulated controller delay, SANDBOX_DURATION included (0 = instant).
    #[arg(long, env = "SANDBOX_TIME_SCALE", default_value_t = 1.0)]
    time_scale: f64,
    /// Bearer tokens, one `token,user,uid[,"group1,group2"]` a line (kube-apiserver's
    /// format); requests without a known token get 401. Without it, everyone is served.
    #[arg(long, env = "SANDBOX_TOKEN_AUTH_FILE")]
    token_auth_file: Option<PathBuf>,
    /// AlwaysAllow, or RBAC: the stored Roles, ClusterRoles and bindings decide.
    #[arg(
        long,
        env = "SANDBOX_AUTHORIZATION_MODE",
        value_enum,
        default_value = "AlwaysAllow"
    )]
    authorization_mode: wfe_sandbox::access::AuthorizationMode,
    /// Requests without a token are `system:anonymous` (true, kube-apiserver's default)
    /// or refused with 401 (false); with a token file only.
    #[arg(long, env = "SANDBOX_ANONYMOUS_AUTH", default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "SANDBOX_LOG", default_value = "info")]
    log: String,
}

impl Args {
    /// Start the server and run until SIGTERM or Ctrl-C, then shut down cleanly.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(&self.log))
            .init();
        let crds = self.load_crds()?;
        let access = wfe_sandbox::access::from_flags(
            self.token_auth_file.as_deref(),
            self.authorization_mode,
            self.anonymous_auth,
        )
        .map_err(anyhow::Error::msg)?;
        let config = SandboxConfig {
            access,
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            history_size: self.history_size,
            crds,
            job_controller: !self.no_job_controller,
            tekton_controller: !self.no_tekton_controller,
            install_tekton_crds: !self.no_install_tekton_crds,
            time_scale: self.time_scale,
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config)
            .await
            .context("starting the sandbox")?;
        println!(
            "sandbox API server on {} (use: kubectl --server {})",
            sandbox.url(),
            sandbox.url()
        );
        wait_for_signal().await;
        tracing::info!("shutting down");
        sandbox.shutdown().await;
        Ok(())
    }

    fn load_crds(&self) -> anyhow::Result<Vec<Value>> {
        let mut files = self.crds.clone();
        if let Some(dir) = &self.crd_dir {
            let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            found.sort();
            files.extend(found);
        }
        let mut out = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("parsing {}", file.display()))?;
                if value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                    out.push(value);
                }
            }
        }
        Ok(out)
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
