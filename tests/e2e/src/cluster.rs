//! One cluster of a stack on either backend: the command that runs it, the
//! kubeconfigs that reach it, and an HTTP client that trusts it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::stack::{Backend, KUBE_ADMIN_TOKEN};

/// The files and arguments of one cluster (`wfe sandbox` or `wfe real-cluster`).
#[derive(Debug, Clone)]
pub struct ClusterFiles {
    backend: Backend,
    data_dir: PathBuf,
    /// The CA the real cluster's serving certificate is signed by.
    ca_pem: Option<String>,
}

impl ClusterFiles {
    /// A cluster keeping its state in `<dir>/<data>`; on the real backend its PKI is
    /// generated now, so kubeconfigs can carry the CA before the cluster starts.
    pub fn new(backend: Backend, dir: &Path, data: &str) -> anyhow::Result<Self> {
        let data_dir = dir.join(data);
        let ca_pem = match backend {
            Backend::Sandbox => None,
            Backend::Real => {
                let pki = wfe_control_plane::Pki::ensure(&data_dir.join("pki"))?;
                Some(pki.ca_pem()?)
            }
        };
        Ok(Self {
            backend,
            data_dir,
            ca_pem,
        })
    }

    /// The cluster's URL when it serves on `addr`.
    pub fn url(&self, addr: SocketAddr) -> String {
        format!("{}://{addr}", self.backend.scheme())
    }

    /// A kubeconfig for `server` as `token`.
    pub fn kubeconfig(&self, server: &str, token: &str) -> String {
        match &self.ca_pem {
            Some(ca) => {
                wfe_control_plane::kubeconfig::render(server, ca, token, "kubernaut-system")
            }
            None => plain_kubeconfig(server, token),
        }
    }

    /// `wfe <command> --listen <addr> --data-dir …`, with the token file when given
    /// (always on the real backend, where every client authenticates). A sandbox given
    /// tokens also authorizes by RBAC, as kube-apiserver always does here.
    pub fn args(&self, addr: SocketAddr, tokens: Option<&Path>) -> Vec<String> {
        let command = match self.backend {
            Backend::Sandbox => "sandbox",
            Backend::Real => "real-cluster",
        };
        let mut args = vec![
            command.to_owned(),
            "--listen".to_owned(),
            addr.to_string(),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
        ];
        if let Some(tokens) = tokens {
            args.extend(["--token-auth-file".to_owned(), tokens.display().to_string()]);
            if self.backend == Backend::Sandbox {
                args.extend(["--authorization-mode".to_owned(), "RBAC".to_owned()]);
            }
        }
        args
    }

    /// An HTTP client that trusts the cluster's serving certificate.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = &self.ca_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?);
        }
        Ok(builder.build()?)
    }

    /// Where the cluster keeps its state.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// The token file of a real cluster without RBAC identities: the tests' superuser.
pub fn admin_token_line() -> String {
    wfe_control_plane::kubeconfig::token_line(
        KUBE_ADMIN_TOKEN,
        "e2e-admin",
        "e2e-admin",
        &["system:masters"],
    )
}

/// A kubeconfig for a plain-HTTP sandbox with a bearer `token` (ignored by a sandbox
/// without access checks).
fn plain_kubeconfig(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {server}\n\
         users:\n- name: e2e\n  user:\n    token: {token}\ncontexts:\n- name: sandbox\n  context:\n    \
         cluster: sandbox\n    user: e2e\n    namespace: kubernaut-system\n\
         current-context: sandbox\n"
    )
}
