//! Wiring: start every task of one API instance, and stop them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use wfe_proto::agent::agent_session_service_server::AgentSessionServiceServer;
use wfe_proto::v1::workflow_execution_service_server::WorkflowExecutionServiceServer;

use crate::admin::{self, Readiness};
use crate::audit::Audit;
use crate::auth::{AgentAuth, CallerAuth};
use crate::config::Config;
use crate::ctx::{Ctx, SharedCtx};
use crate::dispatch::Dispatcher;
use crate::dispatch::liveness::{self, Liveness};
use crate::dispatch::registry::AgentRegistry;
use crate::dispatch::session::SessionService;
use crate::grpc::ExecutionService;
use crate::grpc::codec_errors::CodecErrorsLayer;
use crate::metrics::{GrpcMetricsLayer, Metrics};
use crate::status::StatusWriter;
use crate::store::{Index, run_watcher};

/// A running API instance.
#[derive(Debug)]
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Shared state (tests inspect the index and the registry).
    pub ctx: SharedCtx,
    readiness: Arc<Readiness>,
    health: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
    grpc: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
    telemetry: Option<wfe_telemetry::Exporter>,
}

/// The OpenTelemetry service name of workflow-api's spans.
pub const SERVICE_NAME: &str = "workflow-api";

/// Starts an instance: span export (with `--otlp-endpoint`), watchers, dispatcher, audit
/// (and its outbox delivery), gRPC and admin listeners.
pub async fn start(config: Config, client: kube::Client) -> anyhow::Result<Running> {
    let telemetry = config
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| wfe_telemetry::export(endpoint, SERVICE_NAME))
        .transpose()?;
    let mut running = start_serving(config, client).await?;
    running.telemetry = telemetry;
    Ok(running)
}

/// [`start`] after the span export.
async fn start_serving(config: Config, client: kube::Client) -> anyhow::Result<Running> {
    let caller_auth = CallerAuth::load(config.caller_tokens_file.as_deref())?;
    let agent_auth = AgentAuth::load(config.agent_tokens_file.as_deref())?;
    if !caller_auth.enabled() {
        tracing::warn!("no --caller-tokens-file: callers are NOT authenticated");
    }
    let shutdown = CancellationToken::new();
    let (audit, audit_tasks) = Audit::open(&config, &shutdown).await?;
    let metrics = Metrics::new();
    metrics.watch_audit(audit.stats());
    let index = Index::new(10_000);
    let (liveness, lease_reflector) = Liveness::new(
        client.clone(),
        &config.namespace,
        &replica_id(&config),
        config.lease_duration,
    );
    let (locks, lock_reflector) = crate::lock::TargetLocks::new(
        client.clone(),
        &config.namespace,
        index.clone(),
        config.lock_grace,
        config.lock_idle_ttl,
    );
    let (writer, transitions) =
        StatusWriter::new(client.clone(), index.clone(), audit.intents().clone());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        policy: config.admission_policy(),
        config: config.clone(),
        index: index.clone(),
        metrics,
        audit,
        auditing: Default::default(),
        writer,
        agents: AgentRegistry::default(),
        liveness,
        locks,
        lease_poke: tokio::sync::Notify::new(),
        caller_auth,
        agent_auth,
    });
    let readiness = Arc::new(Readiness {
        index: index.clone(),
        bound: false.into(),
        draining: false.into(),
    });
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_not_serving::<WorkflowExecutionServiceServer<ExecutionService>>()
        .await;
    let mut tasks = spawn_watchers(&ctx, &shutdown, health.clone());
    tasks.extend(audit_tasks);
    tasks.push(tokio::spawn(lease_reflector.run(shutdown.clone())));
    tasks.push(tokio::spawn(lock_reflector.run(shutdown.clone())));
    tasks.push(tokio::spawn(crate::status::deferred::run(
        ctx.writer.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(
        ctx.locks.clone().collect_idle(shutdown.clone()),
    ));
    tasks.push(tokio::spawn({
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        let renewal = liveness::Renewal {
            namespace: ctx.config.namespace.clone(),
            heartbeat_interval: ctx.config.heartbeat_interval,
        };
        async move {
            let connected = || ctx.agents.all();
            liveness::renew(
                ctx.client.clone(),
                ctx.liveness.clone(),
                renewal,
                connected,
                &ctx.lease_poke,
                shutdown,
            )
            .await
        }
    }));
    // Abandoned acceptances waiting to be finished; a pass finds each again if this is full.
    let (abandoned_tx, abandoned) = tokio::sync::mpsc::channel(64);
    let dispatcher = Dispatcher::new(ctx.clone(), abandoned_tx);
    tasks.push(tokio::spawn(dispatcher.clone().run(shutdown.clone())));
    tasks.push(tokio::spawn(crate::execute::admit_abandoned(
        ctx.clone(),
        dispatcher.clone(),
        abandoned,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(crate::audit::recorder::record_transitions(
        ctx.clone(),
        transitions,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(crate::audit::recorder::run(
        ctx.clone(),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(crate::retention::run(
        ctx.clone(),
        shutdown.clone(),
    )));

    let listener = tokio::net::TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC {}", config.grpc_addr))?;
    let grpc_addr = listener.local_addr()?;
    let mut builder = Server::builder();
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let identity = Identity::from_pem(
            std::fs::read(cert).context("reading --tls-cert")?,
            std::fs::read(key).context("reading --tls-key")?,
        );
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .context("configuring TLS")?;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wfe_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wfe_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    // Metrics outside: they count the code the caller gets.
    let router = builder
        .layer(GrpcMetricsLayer(ctx.metrics.clone()))
        .layer(CodecErrorsLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(WorkflowExecutionServiceServer::new(ExecutionService::new(
            ctx.clone(),
            dispatcher.clone(),
            shutdown.clone(),
        )))
        .add_service(AgentSessionServiceServer::new(SessionService::new(
            ctx.clone(),
            dispatcher,
            shutdown.clone(),
        )));
    let stop = shutdown.clone();
    let grpc = tokio::spawn(async move {
        // Nagle off: with many calls multiplexed on one HTTP/2 connection, small response
        // frames otherwise wait for the peer's delayed ACK (measured: accept p50 2.8 ms at
        // 5 calls/s but 20 ms at 50/s).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    readiness.bound.store(true, Ordering::Relaxed);

    let admin_listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("binding admin {}", config.admin_addr))?;
    let admin_addr = admin_listener.local_addr()?;
    let app = wfe_process::admin::router(Arc::new(admin::Probe {
        ready: readiness.clone(),
        metrics: ctx.metrics.clone(),
    }));
    let stop = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "admin server failed");
        }
    }));
    tracing::info!(%grpc_addr, %admin_addr, namespace = %config.namespace, "workflow-api started");
    Ok(Running {
        grpc_addr,
        admin_addr,
        ctx,
        readiness,
        health,
        shutdown,
        grpc,
        tasks,
        telemetry: None,
    })
}

/// This replica's id: `--instance-id`, else the host name, plus a random suffix so two
/// processes (or a restarted one) never share an identity.
fn replica_id(config: &Config) -> String {
    let base = if config.instance_id.is_empty() {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "workflow-api".to_owned())
    } else {
        config.instance_id.clone()
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{base}-{}", &suffix[..8])
}

/// One watcher per namespace; the index (and health) turn ready when all listed once.
fn spawn_watchers(
    ctx: &SharedCtx,
    shutdown: &CancellationToken,
    health: tonic_health::server::HealthReporter,
) -> Vec<JoinHandle<()>> {
    let namespaces = ctx.config.namespaces();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(namespaces.len() * 4 + 4);
    let mut tasks: Vec<JoinHandle<()>> = namespaces
        .iter()
        .map(|ns| {
            tokio::spawn(run_watcher(
                ctx.api(ns),
                ns.clone(),
                ctx.index.clone(),
                ready_tx.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    let index = ctx.index.clone();
    tasks.push(tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        while let Some(ns) = ready_rx.recv().await {
            seen.insert(ns);
            if seen.len() == namespaces.len() && !index.is_synced() {
                index.set_synced();
                health.set_service_status("", ServingStatus::Serving).await;
                health
                    .set_serving::<WorkflowExecutionServiceServer<ExecutionService>>()
                    .await;
                tracing::info!("execution index synced; serving");
            }
        }
    }));
    tasks
}

impl Running {
    /// Waits until the index synced (health SERVING, /readyz true).
    pub async fn wait_ready(&self) {
        self.ctx.index.wait_synced().await;
    }

    /// Graceful stop: not ready, streams end, in-flight calls finish (bounded by the grace).
    pub async fn shutdown(self) {
        self.readiness.draining.store(true, Ordering::Relaxed);
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.shutdown.cancel();
        let grace = self.ctx.config.shutdown_grace;
        if tokio::time::timeout(grace, self.grpc).await.is_err() {
            tracing::warn!("gRPC server did not stop within the grace period");
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(grace, t).await;
        }
        tracing::info!("workflow-api stopped");
        if let Some(telemetry) = self.telemetry {
            telemetry.shutdown().await;
        }
    }

    /// Hard stop, as close to SIGKILL as one process allows: nothing is drained.
    pub fn abort(self) {
        // Abort first: a task that saw the cancellation first could drain or flush.
        self.grpc.abort();
        for t in self.tasks {
            t.abort();
        }
        // Then end what was spawned outside `tasks` (per-stream tasks hold the token).
        self.shutdown.cancel();
    }
}

/// Runs until `shutdown` with a kube client from the environment (in-cluster or kubeconfig).
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("creating the Kubernetes client")?;
    let running = start(config, client).await?;
    shutdown.cancelled().await;
    running.shutdown().await;
    Ok(())
}

/// Installs the tracing subscriber (`RUST_LOG`, default `info`); `json` for JSON lines.
/// Spans reach a collector only once [`start`] sees `--otlp-endpoint`.
pub fn init_tracing(format: &str) {
    wfe_telemetry::init(format == "json");
}
