//! Starting and stopping a sandbox instance.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http::{self, App};
use crate::registry::Backend;
use crate::registry::resources::Registry;
use crate::storage::persist::{PersistError, Persistence};
use crate::storage::{ObjKey, ResKey, Store};

/// How a sandbox instance is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port (the default, for tests).
    pub listen: SocketAddr,
    /// Keep objects across restarts in this directory; in memory when None.
    pub data_dir: Option<PathBuf>,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    pub history_size: usize,
    /// How often idle watches that allow bookmarks receive a BOOKMARK.
    pub bookmark_interval: Duration,
    /// CustomResourceDefinition objects installed at start (replacing same-named ones).
    pub crds: Vec<Value>,
    /// Run the simulated Job controller and kubelet.
    pub job_controller: bool,
    /// Run the simulated Tekton controller.
    pub tekton_controller: bool,
    /// Install the Tekton PipelineRun/TaskRun CRDs at start when the Tekton controller runs
    /// (off: test the "Tekton CRDs missing" path).
    pub install_tekton_crds: bool,
    /// Multiplies every simulated controller delay, `SANDBOX_DURATION` included (0 = instant).
    pub time_scale: f64,
    /// Bearer tokens and RBAC; None serves every request (the default).
    pub access: Option<crate::http::access::Access>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            history_size: 10_000,
            bookmark_interval: Duration::from_secs(10),
            crds: Vec::new(),
            job_controller: true,
            tekton_controller: true,
            install_tekton_crds: true,
            time_scale: 1.0,
            access: None,
        }
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The data directory could not be loaded or written.
    #[error("persistence: {0}")]
    Persistence(#[from] PersistError),
    /// A pre-installed CRD was rejected.
    #[error("invalid CRD: {0}")]
    Crd(String),
}

/// A running sandbox: an API server on a local port plus its background tasks.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    app: Arc<App>,
    server: JoinHandle<()>,
    gc: JoinHandle<()>,
    persistence: Option<Persistence>,
    controllers: Option<crate::controllers::ControllerHandle>,
    /// The token in-process clients (controllers, [`Sandbox::kube_client`]) send when
    /// access is checked: a member of `system:masters`, like kube-apiserver's loopback.
    loopback_token: Option<String>,
}

impl Sandbox {
    /// Bind, load persisted state, install CRDs and start serving.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let store = Arc::new(Store::new(config.history_size));
        let persistence = match &config.data_dir {
            Some(dir) => Some(Persistence::open(dir, &store)?),
            None => None,
        };
        let loopback_token = config
            .access
            .as_ref()
            .map(|_| format!("loopback-{}", uuid::Uuid::new_v4().simple()));
        let access = config.access.clone().map(|mut access| {
            if let Some(token) = &loopback_token {
                access.add_token(token, "system:apiserver", &[crate::http::access::MASTERS]);
            }
            access
        });
        let backend = Arc::new(Backend {
            store: store.clone(),
            registry: Arc::new(Registry::with_builtins()),
            quota: Default::default(),
        });
        let app = Arc::new(App {
            backend: backend.clone(),
            bookmark_interval: config.bookmark_interval,
            shutdown: CancellationToken::new(),
            access,
        });
        restore_registry(&backend);
        bootstrap(&backend, &config.crds)?;
        // kube-apiserver's watch caches start when it does: a resourceVersion from
        // before this start (its bootstrap writes included) is 410 Gone.
        app.backend.store.start_watch_window();
        if config.tekton_controller && config.install_tekton_crds {
            for crd in crate::controllers::tekton_crds() {
                let crd =
                    serde_json::to_value(crd).map_err(|e| SandboxError::Crd(e.to_string()))?;
                install_crd(&backend, crd)?;
            }
        }
        let (gc_tx, gc_rx) = tokio::sync::mpsc::unbounded_channel();
        store.add_sink(gc_tx);
        let gc = tokio::spawn(crate::registry::gc::run(
            backend,
            gc_rx,
            app.shutdown.clone(),
        ));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.listen,
            source,
        })?;
        let router = http::router(app.clone());
        let token = app.shutdown.clone();
        let server = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            // Nagle off, as a real API server: small watch events and responses must not
            // wait for the client's delayed ACK.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { token.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        tracing::info!(%addr, "sandbox API server listening");
        let controllers = start_controllers(&config, addr, loopback_token.as_deref());
        Ok(Self {
            addr,
            app,
            server,
            gc,
            persistence,
            controllers,
            loopback_token,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube-rs client for this sandbox (plain HTTP, default namespace `default`); a
    /// superuser when access is checked.
    pub fn kube_client(&self) -> Result<kube::Client, kube::Error> {
        client_for(self.addr, self.loopback_token.as_deref())
    }

    /// The superuser token in-process clients use, when access is checked.
    pub fn loopback_token(&self) -> Option<&str> {
        self.loopback_token.as_deref()
    }

    /// The object store (for tests and in-process tooling).
    pub fn store(&self) -> &Arc<Store> {
        &self.app.backend.store
    }

    /// Shared server state (for in-process controllers).
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Test hook: forget the watch history and end open watches with 410 Gone, forcing clients
    /// to relist as after a real API server's watch cache compaction.
    pub fn expire_watches(&self) {
        self.app.backend.store.expire_watches();
    }

    /// Stop serving, end watches, and flush persistence. Nothing acknowledged is lost.
    pub async fn shutdown(mut self) {
        if let Some(controllers) = self.controllers.take() {
            controllers.shutdown().await;
        }
        self.app.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.gc.await;
        self.app.backend.store.close_sinks();
        if let Some(p) = self.persistence {
            let _ = tokio::task::spawn_blocking(move || p.finish()).await;
        }
    }
}

/// Start the simulated controllers enabled in `config`, as kube-rs clients of this server.
fn start_controllers(
    config: &SandboxConfig,
    addr: SocketAddr,
    token: Option<&str>,
) -> Option<crate::controllers::ControllerHandle> {
    if !config.job_controller && !config.tekton_controller {
        return None;
    }
    let client = match client_for(addr, token) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build a client for the simulated controllers");
            return None;
        }
    };
    let cfg = crate::controllers::ControllerConfig {
        job_controller: config.job_controller,
        kubelet: config.job_controller,
        tekton: config.tekton_controller,
        time_scale: config.time_scale,
        ..Default::default()
    };
    Some(crate::controllers::start(client, cfg))
}

fn client_for(addr: SocketAddr, token: Option<&str>) -> Result<kube::Client, kube::Error> {
    let bad = |e: Box<dyn std::error::Error + Send + Sync>| kube::Error::Service(e);
    let uri: ::http::Uri = format!("http://{addr}")
        .parse()
        .map_err(|e| bad(Box::new(e)))?;
    let mut config = kube::Config::new(uri);
    if let Some(token) = token {
        let value = ::http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| bad(Box::new(e)))?;
        config.headers.push((::http::header::AUTHORIZATION, value));
    }
    kube::Client::try_from(config)
}

/// Serve the CRDs found in a restored store.
fn restore_registry(backend: &Backend) {
    let res = ResKey::new("apiextensions.k8s.io", "customresourcedefinitions");
    let (items, _, _) = backend.store.list(&res, None, None, None, &|_| true);
    for crd in items {
        let name = crate::machinery::meta::meta_str(&crd, "name").unwrap_or_default();
        backend
            .registry
            .set_crd(name, crate::registry::resources::crd::resources(&crd));
    }
}

/// Default namespaces and pre-installed CRDs.
fn bootstrap(backend: &Backend, crds: &[Value]) -> Result<(), SandboxError> {
    let ns_info = backend
        .registry
        .lookup("", "v1", "namespaces")
        .ok_or_else(|| SandboxError::Crd("namespaces not served".into()))?;
    for ns in ["default", "kube-system", "kube-public"] {
        if backend
            .store
            .get(&ns_info.storage(), &ObjKey::new("", ns))
            .is_some()
        {
            continue;
        }
        let obj =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let obj = crate::registry::objects::prepare_create(backend, &ns_info, None, obj)
            .map_err(|e| SandboxError::Crd(e.message))?;
        if let Ok(stored) = backend
            .store
            .create(&ns_info.storage(), &ObjKey::new("", ns), obj)
        {
            crate::registry::objects::after_write(backend, &ns_info, &stored);
        }
    }
    for crd in crds {
        install_crd(backend, crd.clone())?;
    }
    Ok(())
}

/// Create or replace one CRD.
pub fn install_crd(backend: &Backend, crd: Value) -> Result<(), SandboxError> {
    let info = backend
        .registry
        .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| SandboxError::Crd("CRDs not served".into()))?;
    let name = crate::machinery::meta::meta_str(&crd, "name")
        .unwrap_or_default()
        .to_string();
    let key = ObjKey::new("", &name);
    let stored = match backend.store.get(&info.storage(), &key) {
        Some(cur) => {
            let next = crate::registry::objects::prepare_update(&info, None, &cur, crd)
                .map_err(|e| SandboxError::Crd(e.message))?;
            backend
                .store
                .update(&info.storage(), &key, crate::storage::object_rv(&cur), next)
        }
        None => {
            let obj = crate::registry::objects::prepare_create(backend, &info, None, crd)
                .map_err(|e| SandboxError::Crd(e.message))?;
            backend.store.create(&info.storage(), &key, obj)
        }
    }
    .map_err(|e| SandboxError::Crd(format!("{name}: {e}")))?;
    crate::registry::objects::after_write(backend, &info, &stored);
    Ok(())
}
