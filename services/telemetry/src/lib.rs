//! Logs and traces of every binary of the project.
//!
//! ```text
//!  init(json) ─► registry ─┬─ EnvFilter (RUST_LOG, default info)
//!                          ├─ fmt (text or JSON lines)
//!                          └─ OpenTelemetry layer, dormant ──export(endpoint, service)──► OTLP/gRPC
//! ```
//!
//! [`init`] installs the subscriber once per process. The OpenTelemetry layer sees nothing
//! until [`export`] is called with an endpoint, so a process without `--otlp-endpoint` runs
//! no exporter and builds no OpenTelemetry span. Trace context crosses process boundaries
//! as W3C `traceparent` ([`propagation`]).

mod lazy;
pub mod propagation;

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use propagation::{current_traceparent, set_parent_from_map, set_parent_from_metadata};

/// Longest wait for the last spans to reach the collector at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the process-wide subscriber: `RUST_LOG` filter (default `info`), text or JSON
/// lines on stdout, and the dormant OpenTelemetry layer. Returns false when another
/// subscriber was already installed (then [`export`] cannot attach).
pub fn init(json: bool) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let otel = tracing_opentelemetry::layer()
        .with_tracer(lazy::LazyTracer)
        .with_filter(filter_fn(|_| lazy::is_active()));
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok();
    if installed {
        lazy::mark_installed();
    }
    installed
}

/// Exports spans to the OTLP/gRPC collector at `endpoint` (e.g. `http://otel-collector:4317`)
/// as service `service`, in batches. Installs the subscriber ([`init`], text) if none is.
/// Must run inside a Tokio runtime; keep the returned [`Exporter`] and shut it down last.
pub fn export(endpoint: &str, service: &str) -> anyhow::Result<Exporter> {
    if !lazy::is_installed() && !init(false) {
        anyhow::bail!("another tracing subscriber is installed: cannot export spans over OTLP");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("building the OTLP span exporter for {endpoint}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    lazy::activate(provider.tracer(service.to_owned()))?;
    tracing::info!(endpoint, service, "exporting spans over OTLP");
    Ok(Exporter {
        provider: Some(provider),
    })
}

/// A running span export; [`Exporter::shutdown`] flushes what is buffered. Dropping it
/// stops the export too (the provider flushes on drop, blocking).
#[derive(Debug)]
pub struct Exporter {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        lazy::deactivate();
    }
}

impl Exporter {
    /// Stops creating OpenTelemetry spans, then flushes and stops the batch exporter
    /// (bounded by [`FLUSH_TIMEOUT`]).
    pub async fn shutdown(mut self) {
        lazy::deactivate();
        let Some(provider) = self.provider.take() else {
            return;
        };
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing spans failed"),
            Err(e) => tracing::warn!(error = %e, "the span flush task failed"),
        }
    }
}
