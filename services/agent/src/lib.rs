//! The runtime both executor agents share.
//!
//! ```text
//!            SIGTERM ─► shutdown token
//!                           │
//!  workflow-api ◄══ Session stream ══► runtime actor (ledger: slots + fencing,
//!   (Assign/Cancel/Release ▼            book: latest/sent reports, backoff)
//!    Hello/Ack/Status/Heartbeat ▲          │ spawn start/cancel/release    ▲ reports
//!                                          ▼                               │
//!                                     Executor (job / tekton) ── reflectors (kube-rs)
//!                                       └─ owned: create/adopt/collide/cancel/release
//!  admin port: /livez /readyz /metrics + grpc.health.v1
//! ```
//!
//! The launcher calls [`run`] with the parsed [`AgentArgs`], an [`Executor`] and a shutdown
//! token (`wfe_process::shutdown::on_signals`); the first cancellation of the token starts
//! the drain.

pub mod admin;
pub mod args;
pub mod backoff;
pub mod book;
pub mod executor;
pub mod health;
pub mod index;
pub mod kube_errors;
pub mod ledger;
pub mod metrics;
pub mod owned;
pub mod primitive;
mod runtime;
pub mod session;

use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use args::AgentArgs;
pub use executor::{Availability, Executor, ExecutorError};
pub use health::{Health, Readiness};
pub use runtime::AgentConfig;

/// Capacity of the executor → runtime report channel.
const REPORT_CHANNEL: usize = 1024;

impl AgentConfig {
    /// The configuration the flags describe.
    pub fn from_args(args: &AgentArgs) -> Self {
        Self {
            dial: session::Dial {
                url: args.api_url.clone(),
                token_file: args.token_file.clone(),
                tls_ca: args.tls_ca.clone(),
            },
            agent_id: args.resolved_agent_id(),
            cluster_id: args.cluster_id.clone(),
            capacity: args.capacity,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            drain_timeout: args.drain_timeout(),
            backoff: backoff::Backoff::default(),
        }
    }
}

/// Runs an agent: span export with `--otlp-endpoint` (service `<engine>-agent`, flushed
/// at the end), admin port on `args.admin_addr`, then [`run_with`].
pub async fn run(
    args: &AgentArgs,
    executor: Arc<dyn Executor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let telemetry = args
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| wfe_telemetry::export(endpoint, &service_name(executor.engine())))
        .transpose()?;
    let result = bind_and_run(args, executor, shutdown).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    result
}

/// The OpenTelemetry service name of an engine's agent (`job-agent`, `tekton-agent`).
pub fn service_name(engine: &str) -> String {
    format!("{engine}-agent")
}

async fn bind_and_run(
    args: &AgentArgs,
    executor: Arc<dyn Executor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding admin port {}", args.admin_addr))?;
    run_with(AgentConfig::from_args(args), executor, listener, shutdown).await
}

/// Runs an agent with an already bound admin listener (tests and in-process launchers
/// bind port 0). Returns after the drain that follows `shutdown`.
pub async fn run_with(
    cfg: AgentConfig,
    executor: Arc<dyn Executor>,
    admin_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    let health = Health::default();
    let admin_stop = CancellationToken::new();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        health.clone(),
        Arc::new(registry),
        admin_stop.clone(),
    ));
    let result = run_agent(cfg, executor, health, metrics, shutdown).await;
    admin_stop.cancel();
    match admin.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "admin port failed"),
        Err(e) => tracing::warn!(error = %e, "admin task failed"),
        Ok(Ok(())) => {}
    }
    result
}

async fn run_agent(
    cfg: AgentConfig,
    executor: Arc<dyn Executor>,
    health: Health,
    metrics: metrics::Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let availability = probe_availability(executor.as_ref(), &health, &shutdown).await;
    if let Availability::Unavailable(why) = &availability {
        tracing::warn!(reason = %why, engine = executor.engine(), "engine unavailable");
        let why = why.clone();
        health.update(|r| r.unavailable = Some(why));
    }
    let (reports_tx, reports_rx) = mpsc::channel(REPORT_CHANNEL);
    let observe_stop = CancellationToken::new();
    let observer = (availability == Availability::Available)
        .then(|| tokio::spawn(executor.clone().observe(reports_tx, observe_stop.clone())));
    if observer.is_some() {
        tokio::select! {
            () = executor.synced() => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    health.update(|r| r.synced = true);
    tracing::info!(agent = %cfg.agent_id, engine = executor.engine(), "watches synced");
    runtime::Agent::new(cfg, executor, availability, reports_rx, health, metrics)
        .run(shutdown)
        .await;
    observe_stop.cancel();
    if let Some(observer) = observer {
        match observer.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "observer ended with an error"),
            Err(e) => tracing::warn!(error = %e, "observer task failed"),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// Asks the executor whether its engine is available, asking again for about half a
/// minute while it is not: the answer is taken once per process, and a probe made while
/// the API server restarts (connection refused, CRDs not yet served again) would
/// otherwise leave the agent unavailable until its next restart.
/// `/readyz` says why while it asks.
async fn probe_availability(
    executor: &dyn Executor,
    health: &Health,
    shutdown: &CancellationToken,
) -> Availability {
    let mut delay = std::time::Duration::from_millis(500);
    for _ in 0..8 {
        let availability = executor.availability().await;
        let Availability::Unavailable(why) = &availability else {
            health.update(|r| r.unavailable = None);
            return availability;
        };
        let reason = why.clone();
        health.update(|r| r.unavailable = Some(reason));
        tracing::info!(reason = %why, engine = executor.engine(), retry_in = ?delay, "engine not available yet");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return availability,
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(8));
    }
    executor.availability().await
}

/// Installs a tracing subscriber reading `RUST_LOG` (default `info`); spans reach a
/// collector once [`run`] sees `--otlp-endpoint`.
pub fn init_tracing() {
    wfe_telemetry::init(false);
}
