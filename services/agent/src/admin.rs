//! The admin port: `/livez`, `/readyz`, `/metrics` (axum) and gRPC health (tonic-health)
//! on one listener; gRPC requests are told apart by path. `/metrics` negotiates
//! OpenMetrics or the Prometheus text format as workflow-api's does (`wfe_process`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

use crate::health::Health;

#[derive(Clone)]
struct AdminState {
    health: Health,
    registry: Arc<Registry>,
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
    let http = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AdminState {
            health: health.clone(),
            registry,
        });
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

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let r = s.health.get();
    let code = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, r.explain())
}

/// The registry in the format the scraper asks for (see [`wfe_process::metrics`]).
async fn metrics(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => wfe_process::metrics::negotiated(&headers, body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
