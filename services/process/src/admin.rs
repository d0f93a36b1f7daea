//! The admin port every binary serves: `/livez`, `/readyz` and `/metrics`.
//!
//! ```text
//!  GET /livez   ─► "ok" (the process answers)
//!  GET /readyz  ─► Probe::readiness() ─► 200 | 503, with why as the body
//!  GET /metrics ─► Probe::openmetrics() ─► metrics::negotiated(Accept)
//! ```
//!
//! Each binary says what ready means and what its metrics are through a [`Probe`];
//! the routes, status codes and format negotiation are the same everywhere. A binary
//! with more to serve on the port (the agents' gRPC health) merges its routes in.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the admin port reports about a process.
pub trait Probe: Send + Sync + 'static {
    /// Whether the process should receive traffic, and a line saying why (the
    /// `/readyz` body).
    fn readiness(&self) -> (bool, String);

    /// The metrics as an OpenMetrics exposition, or why they could not be encoded.
    fn openmetrics(&self) -> Result<String, String>;
}

/// The admin routes, answering from `probe`.
pub fn router(probe: Arc<dyn Probe>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probe)
}

async fn readyz(State(probe): State<Arc<dyn Probe>>) -> impl IntoResponse {
    let (ready, why) = probe.readiness();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, why)
}

async fn metrics(State(probe): State<Arc<dyn Probe>>, headers: HeaderMap) -> Response {
    match probe.openmetrics() {
        Ok(body) => crate::metrics::negotiated(&headers, body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt as _;

    use super::*;

    struct Fake {
        ready: AtomicBool,
    }

    impl Probe for Fake {
        fn readiness(&self) -> (bool, String) {
            let ready = self.ready.load(Ordering::Relaxed);
            (
                ready,
                if ready { "ready" } else { "index not synced" }.into(),
            )
        }
        fn openmetrics(&self) -> Result<String, String> {
            Ok("# HELP x_runs Runs.\n# TYPE x_runs counter\nx_runs_total 3\n# EOF\n".into())
        }
    }

    async fn get(app: &Router, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut req = Request::get(path);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_the_probe_and_says_why() {
        let fake = Arc::new(Fake {
            ready: AtomicBool::new(false),
        });
        let app = router(fake.clone());
        assert_eq!(
            get(&app, "/readyz", None).await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                text(),
                "index not synced".into()
            )
        );
        fake.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(&app, "/readyz", None).await.0, StatusCode::OK);
        assert_eq!(get(&app, "/livez", None).await.2, "ok");
    }

    fn text() -> String {
        "text/plain; charset=utf-8".into()
    }

    #[tokio::test]
    async fn metrics_negotiate_the_format() {
        let app = router(Arc::new(Fake {
            ready: AtomicBool::new(true),
        }));
        let (_, ct, body) = get(&app, "/metrics", None).await;
        assert_eq!(ct, crate::metrics::PROMETHEUS_TEXT);
        assert!(body.contains("# TYPE x_runs_total counter"), "{body}");
        let (_, ct, body) = get(&app, "/metrics", Some("application/openmetrics-text")).await;
        assert_eq!(ct, crate::metrics::OPENMETRICS);
        assert!(body.ends_with("# EOF\n"), "{body}");
    }
}
