//! Admin HTTP: `/livez`, `/readyz` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::store::Index;

/// What readiness depends on.
#[derive(Debug)]
pub struct Readiness {
    /// The index.
    pub index: Arc<Index>,
    /// Set once the gRPC listener is bound.
    pub bound: AtomicBool,
    /// Set when shutdown starts.
    pub draining: AtomicBool,
}

impl Readiness {
    /// Ready: synced, bound and not draining.
    pub fn ready(&self) -> bool {
        self.index.is_synced()
            && self.bound.load(Ordering::Relaxed)
            && !self.draining.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AdminState {
    ready: Arc<Readiness>,
    metrics: Arc<Metrics>,
}

/// The admin router.
pub fn router(ready: Arc<Readiness>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(AdminState { ready, metrics })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the Prometheus text format
/// 0.0.4 otherwise (promtool, curl, older scrapers): [`wfe_process::metrics`].
async fn metrics_handler(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    wfe_process::metrics::negotiated(&headers, s.metrics.encode())
}
