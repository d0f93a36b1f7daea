//! The files `wfe dev` writes for its components: a kubeconfig for the sandbox,
//! bearer tokens, the audit log location.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{Backend, DevArgs};

/// Bearer token of the operator in the local stack.
pub const OPERATOR_TOKEN: &str = "dev-operator-token";
/// Identity recorded for that token (e.g. in blockClearance.clearedBy).
pub const OPERATOR_IDENTITY: &str = "operator@dev.local";

/// Paths of the generated files.
#[derive(Debug)]
pub struct StateFiles {
    /// kubeconfig pointing at the sandbox.
    pub kubeconfig: PathBuf,
    /// `<token> <identity>` lines for callers.
    pub caller_tokens: PathBuf,
    /// `<token> <cluster> <engine>` lines for agents.
    pub agent_tokens: PathBuf,
    /// Audit events, one JSON object a line.
    pub audit_log: PathBuf,
    /// kube-apiserver's token file (the real backend only).
    pub kube_tokens: PathBuf,
    /// The real cluster's data directory (etcd, PKI, logs).
    pub real_cluster_dir: PathBuf,
    dir: PathBuf,
}

/// The local developer's Kubernetes token on the real backend (system:masters, as
/// the sandbox serves everyone).
pub const KUBE_DEVELOPER_TOKEN: &str = "dev-kube-developer-token";

impl StateFiles {
    /// The token file of the agent for `engine`.
    pub fn agent_token(&self, engine: &str) -> PathBuf {
        self.dir
            .join("tokens")
            .join(format!("{engine}-agent.token"))
    }
}

/// Writes the files (idempotent; tokens are fixed, this is a local sandbox).
pub fn prepare(args: &DevArgs) -> anyhow::Result<StateFiles> {
    let dir = args.state_dir.clone();
    std::fs::create_dir_all(dir.join("tokens")).context("creating the state directory")?;
    let files = StateFiles {
        kubeconfig: dir.join("kubeconfig"),
        caller_tokens: dir.join("tokens/callers"),
        agent_tokens: dir.join("tokens/agents"),
        audit_log: dir.join("audit-events.jsonl"),
        kube_tokens: dir.join("tokens/kube.csv"),
        real_cluster_dir: dir.join("real-cluster"),
        dir: dir.clone(),
    };
    let kubeconfig_text = match args.backend {
        Backend::Sandbox => kubeconfig(&format!("http://{}", args.sandbox_addr)),
        Backend::Real => {
            let pki = wfe_control_plane::Pki::ensure(&files.real_cluster_dir.join("pki"))?;
            write(
                &files.kube_tokens,
                &wfe_control_plane::kubeconfig::token_line(
                    KUBE_DEVELOPER_TOKEN,
                    "developer",
                    "developer",
                    &["system:masters"],
                ),
            )?;
            wfe_control_plane::kubeconfig::render(
                &format!("https://{}", args.sandbox_addr),
                &pki.ca_pem()?,
                KUBE_DEVELOPER_TOKEN,
                "kubernaut-system",
            )
        }
    };
    write(&files.kubeconfig, &kubeconfig_text)?;
    write(
        &files.caller_tokens,
        &format!("{OPERATOR_TOKEN} {OPERATOR_IDENTITY}\n"),
    )?;
    write(
        &files.agent_tokens,
        "dev-job-agent-token - job\ndev-tekton-agent-token - tekton\n",
    )?;
    write(&files.agent_token("job"), "dev-job-agent-token\n")?;
    write(&files.agent_token("tekton"), "dev-tekton-agent-token\n")?;
    Ok(files)
}

fn write(path: &Path, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))
}

fn kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {server}\n\
         users:\n- name: developer\n  user: {{}}\ncontexts:\n- name: sandbox\n  context:\n    \
         cluster: sandbox\n    user: developer\n    namespace: kubernaut-system\n\
         current-context: sandbox\n"
    )
}
