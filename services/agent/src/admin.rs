//! The admin port: `/livez`, `/readyz`, `/metrics` (axum) and gRPC health (tonic-health)
//! on one listener; gRPC requests are told apart by path. `/metrics` negotiates
//! OpenMetrics or the Prometheus text format; the routes are [`wfe_process::admin`]'s,
//! as workflow-api's are.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

use crate::health::Health;

/// The admin port's view of an agent: its readiness and its registry.
struct Probe {
    health: Health,
    registry: Arc<Registry>,
}

impl wfe_process::admin::Probe for Probe {
    fn readiness(&self) -> (bool, String) {
        let r = self.health.get();
        (r.is_ready(), r.explain())
    }

    fn openmetrics(&self) -> Result<String, String> {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &self.registry)
            .map_err(|e| e.to_string())?;
        Ok(body)
    }
}

/// Serves the admin port until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let grpc = tonic::service::Routes::new(health_service).into_axum_router();
    let http = wfe_process::admin::router(Arc::new(Probe {
        health: health.clone(),
        registry,
    }));
    tokio::spawn(mirror_readiness(health, reporter, shutdown.clone()));
    axum::serve(listener, http.merge(grpc))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
/// Keeps gRPC health ("" service) in step with readiness.
async fn mirror_readiness(
    health: Health,
    reporter: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) {
    let mut rx = health.subscribe();
    loop {
        let status = if rx.borrow_and_update().is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}
