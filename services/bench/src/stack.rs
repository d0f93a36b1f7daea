//! The stack under test: the cluster (`wfe sandbox`, or `wfe real-cluster` on the real
//! backend), `wfe api` and `wfe job-agent` as separate processes, wired the way
//! `wfe dev` wires them (kubeconfig, token files), on free ports.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

/// Bearer token of the benchmark's caller.
pub const CALLER_TOKEN: &str = "bench-caller-token";
/// Namespace of the WorkflowExecutions and Leases (the API's default).
pub const API_NAMESPACE: &str = "kubernaut-system";
const AGENT_TOKEN: &str = "bench-job-agent-token";
/// The benchmark's Kubernetes superuser on the real backend.
const KUBE_TOKEN: &str = "bench-kube-admin-token";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A real control plane's start: etcd, kube-apiserver, CRDs, service accounts.
const CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(180);

/// The Kubernetes the stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// `wfe sandbox`, in memory.
    Sandbox,
    /// `wfe real-cluster`: etcd, kube-apiserver and kube-controller-manager built by
    /// tests/control-plane/build, with the simulated kubelet and Tekton.
    Real,
}

/// A component process; SIGKILLed when dropped.
#[derive(Debug)]
pub struct Proc {
    /// Name shown in the report.
    pub name: &'static str,
    args: Vec<String>,
    child: Option<Child>,
}

impl Proc {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Fails only when it already exited; wait() reaps it either way.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Addresses and processes of a running stack.
#[derive(Debug)]
pub struct Stack {
    wfe: PathBuf,
    log: String,
    /// Held so the directory lives as long as the stack (None with `--keep`).
    _dir: Option<TempDir>,
    path: PathBuf,
    /// Sandbox API server.
    pub sandbox: SocketAddr,
    /// workflow-api gRPC.
    pub grpc: SocketAddr,
    /// workflow-api admin (/metrics, /readyz).
    pub api_admin: SocketAddr,
    agent_admin: SocketAddr,
    /// sandbox, workflow-api, job-agent (in that order, when running).
    pub procs: Vec<Proc>,
    backend: Backend,
    etcd_fsync: bool,
    /// The real cluster's CA (PEM).
    ca_pem: Option<String>,
}

/// A loopback address whose port was free a moment ago.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    l.local_addr().context("reading the bound port")
}

impl Stack {
    /// Prepares the state directory; nothing runs yet.
    pub fn new(
        wfe: PathBuf,
        log: &str,
        keep: bool,
        backend: Backend,
        etcd_fsync: bool,
    ) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("wfe-bench-").tempdir()?;
        let (dir, path) = if keep {
            (None, tmp.keep())
        } else {
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        };
        let ca_pem = match backend {
            Backend::Sandbox => None,
            Backend::Real => {
                let pki = wfe_control_plane::Pki::ensure(&path.join("cluster/pki"))?;
                Some(pki.ca_pem()?)
            }
        };
        let stack = Self {
            wfe,
            log: log.to_owned(),
            _dir: dir,
            path: path.clone(),
            sandbox: free_addr()?,
            grpc: free_addr()?,
            api_admin: free_addr()?,
            agent_admin: free_addr()?,
            procs: Vec::new(),
            backend,
            etcd_fsync,
            ca_pem,
        };
        if keep {
            eprintln!("state directory (kept): {}", path.display());
        }
        stack.write_files()?;
        Ok(stack)
    }

    fn write_files(&self) -> anyhow::Result<()> {
        let d = &self.path;
        std::fs::create_dir_all(d.join("tokens"))?;
        let kubeconfig = match &self.ca_pem {
            Some(ca) => {
                std::fs::write(
                    d.join("tokens/kube.csv"),
                    wfe_control_plane::kubeconfig::token_line(
                        KUBE_TOKEN,
                        "bench",
                        "bench",
                        &["system:masters"],
                    ),
                )?;
                wfe_control_plane::kubeconfig::render(
                    &self.sandbox_url(),
                    ca,
                    KUBE_TOKEN,
                    API_NAMESPACE,
                )
            }
            None => kubeconfig(self.sandbox),
        };
        std::fs::write(d.join("kubeconfig"), kubeconfig)?;
        std::fs::write(
            d.join("tokens/callers"),
            format!("{CALLER_TOKEN} bench@local\n"),
        )?;
        std::fs::write(d.join("tokens/agents"), format!("{AGENT_TOKEN} - job\n"))?;
        std::fs::write(d.join("tokens/job-agent"), format!("{AGENT_TOKEN}\n"))?;
        Ok(())
    }

    fn file(&self, p: &str) -> String {
        self.path.join(p).display().to_string()
    }

    /// The cluster's URL.
    pub fn sandbox_url(&self) -> String {
        match self.backend {
            Backend::Sandbox => format!("http://{}", self.sandbox),
            Backend::Real => format!("https://{}", self.sandbox),
        }
    }

    /// The kubeconfig every component uses.
    pub fn kubeconfig(&self) -> PathBuf {
        self.path.join("kubeconfig")
    }

    /// Starts the cluster (`wfe sandbox` in memory, or `wfe real-cluster`) and waits
    /// until it serves the execution namespace's service account.
    pub async fn start_sandbox(&mut self) -> anyhow::Result<()> {
        let mut args = match self.backend {
            Backend::Sandbox => vec!["sandbox".into()],
            Backend::Real => vec![
                "real-cluster".into(),
                "--data-dir".into(),
                self.file("cluster"),
                "--token-auth-file".into(),
                self.file("tokens/kube.csv"),
            ],
        };
        args.extend(["--listen".into(), self.sandbox.to_string()]);
        if self.etcd_fsync {
            args.push("--etcd-fsync".into());
        }
        let url = format!(
            "{}/api/v1/namespaces/kubernaut-workflows/serviceaccounts/default",
            self.sandbox_url()
        );
        self.start("sandbox", args, &url).await
    }

    /// Starts `wfe api` with production defaults (but `retention`, the primitives'
    /// `--primitive-retention`, when given) and waits for `/readyz`.
    pub async fn start_api(&mut self, retention: Option<Duration>) -> anyhow::Result<()> {
        let mut args = [
            "api",
            "--grpc-addr",
            &self.grpc.to_string(),
            "--admin-addr",
            &self.api_admin.to_string(),
            "--caller-tokens-file",
            &self.file("tokens/callers"),
            "--agent-tokens-file",
            &self.file("tokens/agents"),
            "--audit-file",
            &self.file("audit-events.jsonl"),
            "--instance-id",
            "workflow-api-bench",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(r) = retention {
            args.extend([
                "--primitive-retention".to_owned(),
                format!("{}s", r.as_secs()),
            ]);
        }
        let url = format!("http://{}/readyz", self.api_admin);
        self.start("workflow-api", args, &url).await
    }

    /// Starts `wfe job-agent` and waits for its `/readyz`.
    pub async fn start_agent(&mut self, capacity: u32) -> anyhow::Result<()> {
        let args = [
            "job-agent",
            "--api-url",
            &format!("http://{}", self.grpc),
            "--token-file",
            &self.file("tokens/job-agent"),
            "--admin-addr",
            &self.agent_admin.to_string(),
            "--agent-id",
            "job-agent-bench",
            "--capacity",
            &capacity.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        let url = format!("http://{}/readyz", self.agent_admin);
        self.start("job-agent", args, &url).await
    }

    /// Stops (SIGKILL) the component called `name`.
    pub fn stop(&mut self, name: &str) {
        self.procs.retain(|p| p.name != name);
    }

    async fn start(
        &mut self,
        name: &'static str,
        args: Vec<String>,
        ready_url: &str,
    ) -> anyhow::Result<()> {
        let log = File::create(self.path.join(format!("{name}.log")))?;
        let child = Command::new(&self.wfe)
            .args(&args)
            .env("KUBECONFIG", self.path.join("kubeconfig"))
            .env("RUST_LOG", &self.log)
            .current_dir(&self.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} ({})", self.wfe.display()))?;
        self.procs.push(Proc {
            name,
            args,
            child: Some(child),
        });
        self.wait_ready(name, ready_url).await
    }

    async fn wait_ready(&mut self, name: &str, url: &str) -> anyhow::Result<()> {
        let timeout = match (name, self.backend) {
            ("sandbox", Backend::Real) => CLUSTER_START_TIMEOUT,
            _ => START_TIMEOUT,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut http = reqwest::Client::builder();
        if let Some(ca) = &self.ca_pem {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?);
        }
        let http = http.build()?;
        loop {
            let ready = http.get(url).bearer_auth(KUBE_TOKEN).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            self.check_alive(name)?;
            if tokio::time::Instant::now() > deadline {
                bail!("{name} did not become ready within {timeout:?} ({url})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn check_alive(&mut self, name: &str) -> anyhow::Result<()> {
        let log = self.path.join(format!("{name}.log"));
        for p in self.procs.iter_mut().filter(|p| p.name == name) {
            let Some(c) = p.child.as_mut() else { continue };
            if let Some(status) = c.try_wait()? {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("{name} exited ({status}) with args {:?}:\n{text}", p.args);
            }
        }
        Ok(())
    }

    /// `(name, pid)` of every running component, the real cluster's etcd,
    /// kube-apiserver and kube-controller-manager included (children of
    /// `wfe real-cluster`, which itself runs the simulated kubelet and Tekton).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut pids: Vec<(&'static str, u32)> = self
            .procs
            .iter()
            .filter_map(|p| Some((p.name, p.pid()?)))
            .map(|(name, pid)| match (name, self.backend) {
                ("sandbox", Backend::Real) => ("simulators", pid),
                _ => (name, pid),
            })
            .collect();
        if self.backend == Backend::Real {
            pids.extend(self.control_plane_pids());
        }
        pids
    }

    fn control_plane_pids(&self) -> Vec<(&'static str, u32)> {
        let known =
            std::fs::read_to_string(self.path.join("cluster/logs/pids")).unwrap_or_default();
        known
            .lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let name = match args.get(1).map(String::as_str) {
                    Some("etcd") => "etcd",
                    Some("kube-apiserver") => "kube-apiserver",
                    Some("kube-controller-manager") => "kube-ctrl-mgr",
                    _ => return None,
                };
                Some((name, pid))
            })
            .collect()
    }
}

fn kubeconfig(sandbox: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: http://{sandbox}\n\
         users:\n- name: bench\n  user: {{}}\ncontexts:\n- name: sandbox\n  context:\n    \
         cluster: sandbox\n    user: bench\n    namespace: {API_NAMESPACE}\n\
         current-context: sandbox\n"
    )
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Components go before their state directory does.
        self.procs.clear();
    }
}
