//! Starting and stopping etcd, kube-apiserver and kube-controller-manager.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::kubeconfig;
use crate::pki::Pki;
use crate::process::{self, Process};

/// How long each process may take to become ready (a cold start on 2 shared cores).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The superuser the supervisor and kube-controller-manager use.
const LOOPBACK_USER: &str = "wfe-control-plane-loopback";

/// What to start.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// The kubecp binary (see [`crate::binary::kubecp`]).
    pub kubecp: PathBuf,
    /// Where kube-apiserver serves HTTPS.
    pub listen: SocketAddr,
    /// etcd data, PKI, token file, logs; kept across restarts.
    pub data_dir: PathBuf,
    /// Extra lines for kube-apiserver's `--token-auth-file` (the callers' identities).
    pub token_auth_file: Option<PathBuf>,
    /// etcd fsyncs its log (production-like); off, it runs faster and loses data on
    /// a machine crash.
    pub etcd_fsync: bool,
    /// The Job controller's pod-failure backoff (upstream: 10 s, doubling); `None`
    /// keeps upstream's.
    pub job_pod_failure_backoff: Option<Duration>,
}

/// A running control plane; its processes end when it is dropped.
#[derive(Debug)]
pub struct ControlPlane {
    processes: Vec<Process>,
    pki: Pki,
    admin_kubeconfig: PathBuf,
    url: String,
}

impl ControlPlane {
    /// Starts etcd, then kube-apiserver, each ready before the next starts. Install
    /// CRDs now, then call [`ControlPlane::start_controller_manager`]: its quota and
    /// garbage collector controllers discover resources at start and then only every
    /// 30 s, so a CRD installed later goes unquota'd and uncollected for that long.
    pub async fn start(config: &ControlPlaneConfig) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        process::reap_leftovers(&logs)?;
        let pki = Pki::ensure(&dir.join("pki"))?;
        let url = format!("https://{}", config.listen);
        let loopback_token = loopback_token(dir)?;
        let tokens = write_token_file(dir, &loopback_token, config.token_auth_file.as_deref())?;
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &admin_kubeconfig,
            kubeconfig::render(&url, &pki.ca_pem()?, &loopback_token, "default"),
        )?;
        let mut plane = Self {
            processes: Vec::new(),
            pki,
            admin_kubeconfig,
            url,
        };
        let etcd = plane.start_etcd(config, &logs).await?;
        plane
            .start_apiserver(config, &logs, &etcd, &tokens, &loopback_token)
            .await?;
        Ok(plane)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA clients must trust.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// A superuser kubeconfig (system:masters).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// Resolves when any process exits, naming it.
    pub async fn exited(&mut self) -> String {
        if self.processes.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.processes.iter_mut().map(|p| Box::pin(p.exited()));
        futures::future::select_all(waits).await.0
    }

    /// Stops the processes, newest first, each with a short grace.
    pub async fn stop(mut self) {
        for p in self.processes.iter_mut().rev() {
            p.stop(Duration::from_secs(10)).await;
        }
    }

    async fn start_etcd(
        &mut self,
        config: &ControlPlaneConfig,
        logs: &Path,
    ) -> anyhow::Result<String> {
        let client = format!("http://{}", free_loopback_addr()?);
        let peer = format!("http://{}", free_loopback_addr()?);
        let data = config.data_dir.join("etcd").display().to_string();
        let args = vec![
            "--name=node0".to_owned(),
            format!("--data-dir={data}"),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=node0={peer}"),
            format!("--unsafe-no-fsync={}", !config.etcd_fsync),
            // kube-apiserver compacts every 5 minutes itself; etcd keeps an hour at most.
            "--auto-compaction-mode=periodic".to_owned(),
            "--auto-compaction-retention=1h".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let process = Process::spawn(&config.kubecp, "etcd", &args, &[], logs)?;
        self.processes.push(process);
        let health = format!("{client}/health");
        self.wait_until(&health, None, "etcd").await?;
        Ok(client)
    }

    async fn start_apiserver(
        &mut self,
        config: &ControlPlaneConfig,
        logs: &Path,
        etcd: &str,
        tokens: &Path,
        loopback_token: &str,
    ) -> anyhow::Result<()> {
        let p = |path: PathBuf| path.display().to_string();
        let args = vec![
            format!("--etcd-servers={etcd}"),
            format!("--bind-address={}", config.listen.ip()),
            format!("--advertise-address={}", config.listen.ip()),
            format!("--secure-port={}", config.listen.port()),
            format!("--tls-cert-file={}", p(self.pki.serving_cert())),
            format!("--tls-private-key-file={}", p(self.pki.serving_key())),
            format!("--client-ca-file={}", p(self.pki.ca_cert())),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!(
                "--service-account-key-file={}",
                p(self.pki.service_account_pub())
            ),
            format!(
                "--service-account-signing-key-file={}",
                p(self.pki.service_account_key())
            ),
            // No kubelet or Service network here: the `kubernetes` Endpoints would
            // name an address nothing serves.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--cert-dir={}", p(config.data_dir.join("pki"))),
            "--profiling=false".to_owned(),
        ];
        let process = Process::spawn(&config.kubecp, "kube-apiserver", &args, &[], logs)?;
        self.processes.push(process);
        let readyz = format!("{}/readyz", self.url);
        self.wait_until(&readyz, Some(loopback_token), "kube-apiserver")
            .await
    }

    /// Starts kube-controller-manager (Jobs, TTL, garbage collection, namespaces,
    /// service accounts, quota).
    pub fn start_controller_manager(&mut self, config: &ControlPlaneConfig) -> anyhow::Result<()> {
        let logs = config.data_dir.join("logs");
        let p = |path: PathBuf| path.display().to_string();
        // The controllers our product meets in a real cluster; the others (nodes,
        // services, volumes, certificates, …) have nothing to do without nodes.
        let controllers = [
            "job-controller",
            "ttl-after-finished-controller",
            "garbage-collector-controller",
            "namespace-controller",
            "serviceaccount-controller",
            "serviceaccount-token-controller",
            "resourcequota-controller",
            "pod-garbage-collector-controller",
            "root-ca-certificate-publisher-controller",
        ];
        let args = vec![
            format!("--kubeconfig={}", self.admin_kubeconfig.display()),
            "--leader-elect=false".to_owned(),
            "--use-service-account-credentials=false".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            "--secure-port=0".to_owned(),
            format!("--controllers={}", controllers.join(",")),
            format!(
                "--service-account-private-key-file={}",
                p(self.pki.service_account_key())
            ),
            format!("--root-ca-file={}", p(self.pki.ca_cert())),
            "--kube-api-qps=1000".to_owned(),
            "--kube-api-burst=2000".to_owned(),
        ];
        let env: Vec<(&str, String)> = config
            .job_pod_failure_backoff
            .map(|d| {
                (
                    "KUBECP_JOB_POD_FAILURE_BACKOFF",
                    format!("{}ms", d.as_millis()),
                )
            })
            .into_iter()
            .collect();
        let process = Process::spawn(
            &config.kubecp,
            "kube-controller-manager",
            &args,
            &env,
            &logs,
        )?;
        self.processes.push(process);
        Ok(())
    }

    /// Polls `url` until it answers 200, failing early when a process exits.
    async fn wait_until(
        &mut self,
        url: &str,
        token: Option<&str>,
        what: &str,
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(
                self.pki.ca_pem()?.as_bytes(),
            )?)
            .timeout(Duration::from_secs(5))
            .build()?;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            for p in &mut self.processes {
                p.check_alive()?;
            }
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if request.send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{what} was not ready at {url} after {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The supervisor's superuser token, generated once per data directory.
fn loopback_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("loopback.token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = format!("loopback-{:032x}", rand_u128());
    std::fs::write(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// kube-apiserver's token file: the loopback superuser, then the caller's lines.
fn write_token_file(dir: &Path, loopback: &str, extra: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut text =
        kubeconfig::token_line(loopback, LOOPBACK_USER, LOOPBACK_USER, &["system:masters"]);
    if let Some(extra) = extra {
        text += &std::fs::read_to_string(extra)
            .with_context(|| format!("reading the token file {}", extra.display()))?;
    }
    let path = dir.join("tokens.csv");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Unpredictable enough for a loopback-only token: the clock and the process id
/// mixed through the standard library's randomly keyed hasher.
fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut high = std::collections::hash_map::RandomState::new().build_hasher();
    high.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let mut low = std::collections::hash_map::RandomState::new().build_hasher();
    low.write_u32(std::process::id());
    (u128::from(high.finish()) << 64) | u128::from(low.finish())
}

/// A loopback address free right now (the kernel picks the port).
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}
