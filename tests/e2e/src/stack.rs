//! [`Stack`]: sandbox, workflow-api replicas and agents as processes, wired the way
//! `wfe dev` wires them (kubeconfig, token files, audit file), on free ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use crate::cluster::{ClusterFiles, admin_token_line};
use crate::ports::free_addr;
use crate::process::Proc;

/// Bearer token of the operator (a caller).
pub const OPERATOR_TOKEN: &str = "e2e-operator-token";
/// Identity the API records for [`OPERATOR_TOKEN`].
pub const OPERATOR_IDENTITY: &str = "operator@e2e.local";
/// Agent token bindings: `<token> <cluster|-> <engine>`.
const AGENT_TOKENS: &str = "e2e-job-token - job\ne2e-tekton-token - tekton\n\
     e2e-east-job-token east job\ne2e-east-tekton-token east tekton\n";
/// The sandbox's superuser token (the tests' kubectl); see [`StackOptions::rbac`].
pub const KUBE_ADMIN_TOKEN: &str = "e2e-kube-admin-token";
/// Kubernetes identities of the components under RBAC: (identity, token). The service
/// accounts are those deploy/ creates and binds.
const KUBE_IDENTITIES: [(&str, &str); 3] = [
    ("workflow-api", "e2e-kube-workflow-api-token"),
    ("job-agent", "e2e-kube-job-agent-token"),
    ("tekton-agent", "e2e-kube-tekton-agent-token"),
];
/// How long a component may take to become ready (debug build, 2 shared cores).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a real control plane may take: etcd, kube-apiserver's post-start hooks,
/// CRDs established, the namespaces' service accounts created.
const REAL_CLUSTER_START_TIMEOUT: Duration = Duration::from_secs(180);

/// The Kubernetes the stack runs on, chosen by `WFE_E2E_BACKEND` (`sandbox`, the
/// default, or `real`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `wfe sandbox`: the embedded API server with simulated controllers.
    Sandbox,
    /// `wfe real-cluster`: etcd, kube-apiserver and kube-controller-manager built by
    /// `tests/control-plane/build`, with the simulated kubelet and Tekton.
    Real,
}

/// Environment variable choosing the backend of every stack.
pub const BACKEND_ENV: &str = "WFE_E2E_BACKEND";

impl Backend {
    /// The backend `WFE_E2E_BACKEND` names; an unknown value is an error, not a
    /// silent fallback.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(BACKEND_ENV).as_deref() {
            Err(_) | Ok("" | "sandbox") => Ok(Self::Sandbox),
            Ok("real") => Ok(Self::Real),
            Ok(other) => anyhow::bail!("{BACKEND_ENV}={other:?}: want sandbox or real"),
        }
    }

    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Self::Sandbox => "http",
            Self::Real => "https",
        }
    }
}

/// A process of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The cluster: `wfe sandbox`, or `wfe real-cluster` on the real backend.
    Sandbox,
    /// The n-th `wfe api` replica.
    Api(usize),
    /// The n-th `wfe job-agent`.
    JobAgent(usize),
    /// The n-th `wfe tekton-agent`.
    TektonAgent(usize),
    /// An agent a test started with [`Stack::spawn_agent`].
    Extra(usize),
    /// The cluster (sandbox or real) of the n-th remote cluster ([`Stack::add_remote_cluster`]).
    RemoteSandbox(usize),
}

/// What to start. Timing flags are small so the suite runs fast.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// workflow-api replicas, all on the one sandbox.
    pub apis: usize,
    /// job-agents; agent i connects to replica `i % apis`.
    pub job_agents: usize,
    /// tekton-agents; agent i connects to replica `(i + job_agents) % apis`.
    pub tekton_agents: usize,
    /// When set, job-agents run with this `--stuck-grace-seconds` (default 120 s).
    pub job_stuck_grace_seconds: Option<u64>,
    /// When set, tekton-agents run with this `--stuck-grace-seconds` (default 120 s).
    pub tekton_stuck_grace_seconds: Option<u64>,
    /// The sandbox checks tokens and RBAC, deploy/'s single-cluster RBAC is applied, and
    /// each component talks to Kubernetes as its own service account.
    pub rbac: bool,
    /// The backend; `None`: the one `WFE_E2E_BACKEND` names.
    pub backend: Option<Backend>,
    api_flags: BTreeMap<String, String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        let flags = [
            ("--heartbeat-interval", "500ms"),
            ("--lease-duration", "2s"),
            ("--ack-timeout", "1s"),
            ("--watch-heartbeat", "1s"),
            ("--lock-grace", "3s"),
            ("--cooldown", "1s"),
            ("--backoff-base", "1s"),
            ("--backoff-max", "4s"),
            ("--audit-resync-interval", "2s"),
            ("--shutdown-grace", "1s"),
        ];
        Self {
            apis: 1,
            job_agents: 1,
            tekton_agents: 1,
            job_stuck_grace_seconds: None,
            tekton_stuck_grace_seconds: None,
            rbac: false,
            backend: None,
            api_flags: flags
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

impl StackOptions {
    /// Sets (or overrides) a `wfe api` flag, e.g. `("--cooldown", "5m")`.
    pub fn api_flag(mut self, flag: &str, value: &str) -> Self {
        self.api_flags.insert(flag.to_owned(), value.to_owned());
        self
    }

    /// Job-agents fail a pod that cannot start after `seconds` (see the field).
    pub fn stuck_grace(mut self, seconds: u64) -> Self {
        self.job_stuck_grace_seconds = Some(seconds);
        self
    }

    /// Tekton-agents fail a TaskRun waiting on a missing Secret after `seconds`.
    pub fn tekton_stuck_grace(mut self, seconds: u64) -> Self {
        self.tekton_stuck_grace_seconds = Some(seconds);
        self
    }

    /// Runs on `backend` whatever `WFE_E2E_BACKEND` says.
    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Runs under deploy/'s RBAC (see the field).
    pub fn rbac(mut self) -> Self {
        self.rbac = true;
        self
    }

    /// Sets the number of processes of each kind.
    pub fn counts(mut self, apis: usize, job_agents: usize, tekton_agents: usize) -> Self {
        (self.apis, self.job_agents, self.tekton_agents) = (apis, job_agents, tekton_agents);
        self
    }
}

/// An agent started by a test, e.g. with a wrong token.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// "job" or "tekton".
    pub engine: &'static str,
    /// The bearer token it sends.
    pub token: String,
    /// `--cluster-id`.
    pub cluster_id: String,
    /// `--stuck-grace-seconds` of the agent (None: its default).
    pub stuck_grace_seconds: Option<u64>,
    /// The API replica it dials.
    pub api: usize,
    /// The cluster it works in (its kubeconfig); None: the stack's own sandbox.
    pub kubeconfig: Option<PathBuf>,
}

/// A remote cluster: its own sandbox, with agents that dial the stack's API.
#[derive(Debug, Clone)]
pub struct RemoteCluster {
    /// Its cluster id (`--cluster-id` of its agents, `cluster_id` of an execution).
    pub cluster_id: String,
    /// A kubeconfig pointing at its sandbox.
    pub kubeconfig: PathBuf,
    /// Its job-agent and tekton-agent.
    pub agents: [Component; 2],
}

/// Addresses of one workflow-api replica.
#[derive(Debug, Clone, Copy)]
pub struct ApiAddrs {
    /// gRPC (callers, agents, reflection, health).
    pub grpc: SocketAddr,
    /// Admin HTTP (/readyz, /metrics).
    pub admin: SocketAddr,
}

/// A running stack; every process is SIGKILLed when it is dropped.
#[derive(Debug)]
pub struct Stack {
    pub(crate) wfe: PathBuf,
    pub(crate) dir: TempDir,
    pub(crate) sandbox: SocketAddr,
    pub(crate) apis: Vec<ApiAddrs>,
    procs: BTreeMap<Component, Proc>,
    admin: BTreeMap<Component, SocketAddr>,
    /// Where each sandbox serves (the stack's own under `Component::Sandbox`).
    sandboxes: BTreeMap<Component, (SocketAddr, ClusterFiles)>,
    extra: usize,
    rbac: bool,
    backend: Backend,
    /// The stack's own cluster.
    cluster: ClusterFiles,
}

impl Stack {
    /// Starts sandbox, APIs and agents, each ready before the next starts.
    pub async fn start(opts: StackOptions) -> anyhow::Result<Self> {
        let backend = match opts.backend {
            Some(b) => b,
            None => Backend::from_env()?,
        };
        let dir = tempfile::Builder::new().prefix("wfe-e2e-").tempdir()?;
        let sandbox = free_addr()?;
        let cluster = ClusterFiles::new(backend, dir.path(), "sandbox-data")?;
        write_files(dir.path(), &cluster.url(sandbox), &cluster)?;
        let mut stack = Self {
            wfe: crate::binary::wfe()?,
            dir,
            sandbox,
            apis: Vec::new(),
            procs: BTreeMap::new(),
            admin: BTreeMap::new(),
            sandboxes: BTreeMap::from([(Component::Sandbox, (sandbox, cluster.clone()))]),
            extra: 0,
            rbac: opts.rbac,
            backend,
            cluster,
        };
        stack.add_sandbox().await?;
        if opts.rbac {
            stack.apply_deployed_rbac().await?;
        }
        for i in 0..opts.apis {
            stack.add_api(i, &opts).await?;
        }
        for i in 0..opts.job_agents {
            let mut spec = stack.default_agent("job", i % opts.apis);
            spec.stuck_grace_seconds = opts.job_stuck_grace_seconds;
            stack.add_agent(Component::JobAgent(i), &spec).await?;
        }
        for i in 0..opts.tekton_agents {
            let mut spec = stack.default_agent("tekton", (i + opts.job_agents) % opts.apis);
            spec.stuck_grace_seconds = opts.tekton_stuck_grace_seconds;
            stack.add_agent(Component::TektonAgent(i), &spec).await?;
        }
        Ok(stack)
    }

    fn default_agent(&self, engine: &'static str, api: usize) -> AgentSpec {
        AgentSpec {
            engine,
            token: format!("e2e-{engine}-token"),
            cluster_id: String::new(),
            stuck_grace_seconds: None,
            api,
            kubeconfig: None,
        }
    }

    /// Starts a remote cluster `cluster_id` ("east": its agent tokens are bound to it):
    /// a sandbox of its own with the stack's namespaces, and a job-agent and a
    /// tekton-agent that work there and dial API replica 0, as
    /// `deploy/overlays/remote-cluster` runs them.
    pub async fn add_remote_cluster(&mut self, cluster_id: &str) -> anyhow::Result<RemoteCluster> {
        let n = self.sandboxes.len() - 1;
        let c = Component::RemoteSandbox(n);
        let addr = free_addr()?;
        let kubeconfig_path = self.dir().join(format!("kubeconfig-{cluster_id}"));
        let cluster = ClusterFiles::new(
            self.backend,
            self.dir(),
            &format!("sandbox-{cluster_id}-data"),
        )?;
        std::fs::write(
            &kubeconfig_path,
            cluster.kubeconfig(&cluster.url(addr), KUBE_ADMIN_TOKEN),
        )?;
        let tokens = self.cluster_tokens()?;
        let args = cluster.args(addr, tokens.as_deref());
        self.sandboxes.insert(c, (addr, cluster));
        self.add(c, args, None).await?;
        let mut agents = Vec::new();
        for engine in ["job", "tekton"] {
            let spec = AgentSpec {
                engine,
                token: format!("e2e-{cluster_id}-{engine}-token"),
                cluster_id: cluster_id.to_owned(),
                stuck_grace_seconds: None,
                api: 0,
                kubeconfig: Some(kubeconfig_path.clone()),
            };
            let agent = self.next_extra();
            self.add_agent(agent, &spec).await?;
            agents.push(agent);
        }
        Ok(RemoteCluster {
            cluster_id: cluster_id.to_owned(),
            kubeconfig: kubeconfig_path,
            agents: [agents[0], agents[1]],
        })
    }

    /// The temp dir holding kubeconfig, tokens, audit files, logs and sandbox data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The kubeconfig pointing at the sandbox.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig")
    }

    /// Addresses of API replica `i`.
    pub fn api(&self, i: usize) -> ApiAddrs {
        self.apis[i]
    }

    /// The environment of a process that talks to Kubernetes as `identity` (one of
    /// [`KUBE_IDENTITIES`]; the shared superuser kubeconfig unless RBAC is on), or
    /// through `kubeconfig` when given (a remote cluster's).
    fn env(&self, identity: &str, kubeconfig: Option<&Path>) -> Vec<(String, String)> {
        let own = KUBE_IDENTITIES.iter().any(|(id, _)| *id == identity);
        let kubeconfig = match kubeconfig {
            Some(k) => k.to_path_buf(),
            None if self.rbac && own => self.dir().join(format!("kubeconfig-{identity}")),
            None => self.kubeconfig(),
        };
        let kubeconfig = kubeconfig.display().to_string();
        vec![
            ("KUBECONFIG".to_owned(), kubeconfig),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
    }

    fn log_path(&self, c: Component) -> PathBuf {
        self.dir()
            .join(format!("{c:?}.log").replace(['(', ')'], ""))
    }

    async fn add_sandbox(&mut self) -> anyhow::Result<()> {
        if self.rbac {
            let url = self.cluster.url(self.sandbox);
            write_kube_identities(self.dir(), &self.cluster, &url)?;
        }
        let tokens = self.cluster_tokens()?;
        let args = self.cluster.args(self.sandbox, tokens.as_deref());
        self.add(Component::Sandbox, args, None).await
    }

    /// The token file a cluster of this stack authenticates with: the RBAC identities
    /// (written by [`write_kube_identities`]), else on the real backend the superuser
    /// alone; the sandbox without RBAC serves everyone.
    fn cluster_tokens(&self) -> anyhow::Result<Option<PathBuf>> {
        let path = self.dir().join("tokens/kube.csv");
        if self.rbac {
            return Ok(Some(path));
        }
        match self.backend {
            Backend::Sandbox => Ok(None),
            Backend::Real => {
                std::fs::write(&path, admin_token_line())?;
                Ok(Some(path))
            }
        }
    }

    /// The stack's backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies everything `kubectl kustomize deploy/overlays/single-cluster` renders
    /// (service accounts, Roles, bindings, …) with kubectl.
    ///
    /// kubectl withholds bearer tokens from plain-HTTP servers, so it reaches the sandbox
    /// as `system:anonymous`. Anonymous may do everything while the overlay is applied,
    /// then only what the tests' kubectl does and no component can work with: read Jobs
    /// and PipelineRuns, delete RoleBindings. A component that stopped sending its own
    /// token would then be refused its writes, so a passing test proves each one is
    /// authorised as its service account.
    async fn apply_deployed_rbac(&self) -> anyhow::Result<()> {
        let all = serde_json::json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        self.grant_anonymous(all).await?;
        let overlay = crate::clients::repo_root().join("deploy/overlays/single-cluster");
        let rendered = tokio::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&overlay)
            .output()
            .await
            .context("running kubectl kustomize")?;
        anyhow::ensure!(
            rendered.status.success(),
            "kubectl kustomize {}: {}",
            overlay.display(),
            String::from_utf8_lossy(&rendered.stderr)
        );
        let file = self.dir().join("single-cluster.yaml");
        std::fs::write(&file, &rendered.stdout)?;
        let file = file.display().to_string();
        self.kubectl(&["apply", "--validate=false", "-f", &file])
            .await?;
        let tests_kubectl = serde_json::json!([
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
            {"apiGroups": ["tekton.dev"], "resources": ["pipelineruns"], "verbs": ["get", "list"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["delete"]}
        ]);
        self.grant_anonymous(tests_kubectl).await
    }

    /// Sets the rules of the `e2e-operator` ClusterRole, bound to `system:unauthenticated`
    /// (written with the superuser token, which reqwest does send over HTTP).
    async fn grant_anonymous(&self, rules: serde_json::Value) -> anyhow::Result<()> {
        if self.backend == Backend::Real {
            // Over HTTPS kubectl sends the superuser's token: nobody is anonymous.
            return Ok(());
        }
        let rbac = format!("http://{}/apis/rbac.authorization.k8s.io/v1", self.sandbox);
        let role = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "e2e-operator"}, "rules": rules
        });
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "e2e-operator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole", "name": "e2e-operator"},
            "subjects": [{"kind": "Group", "name": "system:unauthenticated"}]
        });
        let http = reqwest::Client::new();
        // Replaced whole (delete, create): rules are a list, and the sandbox's apply
        // merges rather than replaces.
        let old = http
            .delete(format!("{rbac}/clusterroles/e2e-operator"))
            .bearer_auth(KUBE_ADMIN_TOKEN)
            .send()
            .await?;
        anyhow::ensure!(
            old.status().is_success() || old.status() == reqwest::StatusCode::NOT_FOUND,
            "deleting the e2e operator's ClusterRole: {}",
            old.status()
        );
        for (plural, body) in [("clusterroles", role), ("clusterrolebindings", binding)] {
            let created = http
                .post(format!("{rbac}/{plural}"))
                .bearer_auth(KUBE_ADMIN_TOKEN)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                created.status().is_success() || created.status() == reqwest::StatusCode::CONFLICT,
                "creating the e2e operator's {plural}: {}",
                created.status()
            );
        }
        Ok(())
    }

    async fn add_api(&mut self, i: usize, opts: &StackOptions) -> anyhow::Result<()> {
        let addrs = ApiAddrs {
            grpc: free_addr()?,
            admin: free_addr()?,
        };
        let d = self.dir().to_path_buf();
        let mut args: Vec<String> = vec!["api".into()];
        let path = |p: &str| d.join(p).display().to_string();
        let fixed = [
            ("--grpc-addr", addrs.grpc.to_string()),
            ("--admin-addr", addrs.admin.to_string()),
            ("--caller-tokens-file", path("tokens/callers")),
            ("--agent-tokens-file", path("tokens/agents")),
            ("--audit-file", path(&format!("audit-{i}.jsonl"))),
            ("--instance-id", format!("workflow-api-{i}")),
        ];
        for (k, v) in fixed
            .into_iter()
            .chain(opts.api_flags.iter().map(|(k, v)| (k.as_str(), v.clone())))
        {
            args.extend([k.to_owned(), v]);
        }
        self.apis.push(addrs);
        self.add(Component::Api(i), args, Some(addrs.admin)).await
    }

    async fn add_agent(&mut self, c: Component, spec: &AgentSpec) -> anyhow::Result<()> {
        let (exe, args) = self.agent_cmd(c, spec)?;
        let admin = self.admin_of(&args)?;
        let identity = format!("{}-agent", spec.engine);
        let env = self.env(&identity, spec.kubeconfig.as_deref());
        self.add_exe(c, &exe, args, env, Some(admin)).await
    }

    /// `wfe <engine>-agent …`, or the standalone `<engine>-agent` when a stuck grace is
    /// asked.
    fn agent_cmd(&self, c: Component, spec: &AgentSpec) -> anyhow::Result<(PathBuf, Vec<String>)> {
        let mut args = self.agent_args(c, spec)?;
        args.insert(0, format!("{}-agent", spec.engine));
        if let Some(s) = spec.stuck_grace_seconds {
            args.extend(["--stuck-grace-seconds".into(), s.to_string()]);
        }
        Ok((self.wfe.clone(), args))
    }

    fn agent_args(&self, c: Component, spec: &AgentSpec) -> anyhow::Result<Vec<String>> {
        let token = self.dir().join(format!("tokens/{c:?}.token"));
        std::fs::write(&token, format!("{}\n", spec.token)).context("writing a token file")?;
        Ok(vec![
            "--api-url".into(),
            format!("http://{}", self.apis[spec.api].grpc),
            "--token-file".into(),
            token.display().to_string(),
            "--admin-addr".into(),
            free_addr()?.to_string(),
            "--agent-id".into(),
            agent_id(c),
            "--cluster-id".into(),
            spec.cluster_id.clone(),
            "--drain-timeout-seconds".into(),
            "2".into(),
        ])
    }

    fn admin_of(&self, args: &[String]) -> anyhow::Result<SocketAddr> {
        let i = args
            .iter()
            .position(|a| a == "--admin-addr")
            .context("agent args without --admin-addr")?;
        args[i + 1].parse().context("parsing the admin address")
    }

    /// Spawns the process and waits until it is ready: the sandbox serves the
    /// stack's namespaces, others answer 200 on `/readyz`.
    async fn add(
        &mut self,
        c: Component,
        args: Vec<String>,
        admin: Option<SocketAddr>,
    ) -> anyhow::Result<()> {
        let wfe = self.wfe.clone();
        let identity = match c {
            Component::Api(_) => "workflow-api",
            _ => "sandbox",
        };
        let env = self.env(identity, None);
        self.add_exe(c, &wfe, args, env, admin).await
    }

    async fn add_exe(
        &mut self,
        c: Component,
        exe: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        admin: Option<SocketAddr>,
    ) -> anyhow::Result<()> {
        let mut p = Proc::new(&format!("{c:?}"), exe, args, env, self.log_path(c));
        p.spawn()?;
        self.procs.insert(c, p);
        if let Some(a) = admin {
            self.admin.insert(c, a);
        }
        self.wait_ready(c).await
    }

    /// A name for one more agent started by a test.
    fn next_extra(&mut self) -> Component {
        self.extra += 1;
        Component::Extra(self.extra - 1)
    }

    /// Starts an agent with `spec` (any token, any cluster) without waiting for it
    /// to be ready; see [`Stack::readyz`].
    pub async fn spawn_agent(&mut self, spec: AgentSpec) -> anyhow::Result<Component> {
        let c = self.next_extra();
        let (exe, args) = self.agent_cmd(c, &spec)?;
        let admin = self.admin_of(&args)?;
        let env = self.env(
            &format!("{}-agent", spec.engine),
            spec.kubeconfig.as_deref(),
        );
        let mut p = Proc::new(&format!("{c:?}"), &exe, args, env, self.log_path(c));
        p.spawn()?;
        self.procs.insert(c, p);
        self.admin.insert(c, admin);
        Ok(c)
    }

    /// SIGKILLs a component (no drain). A real cluster goes whole: its etcd,
    /// kube-apiserver and kube-controller-manager with it, at once.
    pub fn kill(&mut self, c: Component) -> anyhow::Result<()> {
        self.proc(c)?.kill()?;
        self.kill_control_plane_of(c)
    }

    fn kill_control_plane_of(&self, c: Component) -> anyhow::Result<()> {
        match self.sandboxes.get(&c) {
            Some((_, cluster)) if cluster.backend() == Backend::Real => {
                wfe_control_plane::kill_leftovers(cluster.data_dir())
            }
            _ => Ok(()),
        }
    }

    /// Starts a killed component again with the same arguments and waits until it is ready.
    pub async fn restart(&mut self, c: Component) -> anyhow::Result<()> {
        self.kill(c)?;
        let p = self.proc(c)?;
        p.spawn()?;
        self.wait_ready(c).await
    }

    fn proc(&mut self, c: Component) -> anyhow::Result<&mut Proc> {
        self.procs
            .get_mut(&c)
            .with_context(|| format!("no component {c:?}"))
    }

    /// The log of a component so far.
    pub fn log(&self, c: Component) -> String {
        self.procs.get(&c).map(Proc::log).unwrap_or_default()
    }

    /// `/readyz` of an API or agent: status code and body.
    pub async fn readyz(&self, c: Component) -> anyhow::Result<(u16, String)> {
        let admin = self
            .admin
            .get(&c)
            .with_context(|| format!("{c:?} has no admin port"))?;
        let r = reqwest::get(format!("http://{admin}/readyz")).await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    async fn wait_ready(&mut self, c: Component) -> anyhow::Result<()> {
        let what = format!("{c:?} to become ready");
        // A cluster is ready once the execution namespace has the service account its
        // pods run as (on the real backend, kube-controller-manager creates it).
        let (url, timeout, client) = match (self.sandboxes.get(&c), self.admin.get(&c)) {
            (Some((addr, cluster)), _) => {
                let url = format!(
                    "{}/api/v1/namespaces/kubernaut-workflows/serviceaccounts/default",
                    cluster.url(*addr)
                );
                let timeout = match self.backend {
                    Backend::Sandbox => START_TIMEOUT,
                    Backend::Real => REAL_CLUSTER_START_TIMEOUT,
                };
                (url, timeout, cluster.http_client()?)
            }
            (_, Some(a)) => (
                format!("http://{a}/readyz"),
                START_TIMEOUT,
                reqwest::Client::new(),
            ),
            (_, None) => anyhow::bail!("{c:?} has no admin port"),
        };
        // A component that exits (a bad flag, a port in use) fails the start at once,
        // with its log, instead of after the whole timeout.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.proc(c)?.check_alive()?;
            let ready = client
                .get(&url)
                .bearer_auth(KUBE_ADMIN_TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // A failing test shows what every component said: the only way to debug
        // an end-to-end failure after the fact.
        if std::thread::panicking() {
            for p in self.procs.values() {
                eprintln!(
                    "----- {} (last 60 lines) -----\n{}",
                    p.name(),
                    p.log_tail(60)
                );
            }
        }
        // Before the temp dir goes: the sandbox must not outlive its data dir.
        for p in self.procs.values_mut() {
            let _ = p.kill();
        }
    }
}

/// The `--agent-id` the stack gives component `c` (`jobagent-0`, `extra-1`, …).
pub fn agent_id(c: Component) -> String {
    let id = format!("{c:?}").to_lowercase().replace(['(', ')'], "-");
    id.trim_end_matches('-').to_owned()
}

/// kubeconfig and token files, as `wfe dev` writes them.
fn write_files(dir: &Path, url: &str, cluster: &ClusterFiles) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("tokens"))?;
    std::fs::write(
        dir.join("kubeconfig"),
        cluster.kubeconfig(url, KUBE_ADMIN_TOKEN),
    )?;
    std::fs::write(
        dir.join("tokens/callers"),
        format!("{OPERATOR_TOKEN} {OPERATOR_IDENTITY}\n"),
    )?;
    std::fs::write(dir.join("tokens/agents"), AGENT_TOKENS)?;
    Ok(())
}

/// The cluster's token file (the superuser and one service account per component) and
/// a kubeconfig per component.
fn write_kube_identities(dir: &Path, cluster: &ClusterFiles, url: &str) -> anyhow::Result<()> {
    let mut csv = admin_token_line();
    for (identity, token) in KUBE_IDENTITIES {
        // The groups a real service account token carries.
        csv += &format!(
            "{token},system:serviceaccount:kubernaut-system:{identity},{identity},\
             \"system:serviceaccounts,system:serviceaccounts:kubernaut-system\"\n"
        );
        std::fs::write(
            dir.join(format!("kubeconfig-{identity}")),
            cluster.kubeconfig(url, token),
        )?;
    }
    std::fs::write(dir.join("tokens/kube.csv"), csv)?;
    Ok(())
}
