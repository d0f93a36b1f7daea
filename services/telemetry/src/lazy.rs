//! The tracer behind the OpenTelemetry layer: dormant until [`activate`].
//!
//! The layer is installed with the subscriber, before flags may name an endpoint; its
//! per-layer filter lets no span through while no tracer is active, so a process that
//! never exports pays one atomic load per enabled callsite and builds no span.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, PoisonError, RwLock};

use opentelemetry::Context;
use opentelemetry::trace::{SpanBuilder, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, Span};

/// The exporting tracer, when one is active.
static TRACER: RwLock<Option<SdkTracer>> = RwLock::new(None);
/// Whether the layer lets spans through (a tracer is active).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether [`crate::init`] installed our subscriber.
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Builds non-recording spans should one slip past a deactivation.
static DORMANT: LazyLock<SdkTracer> = LazyLock::new(|| {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .build()
        .tracer("dormant")
});

/// Whether spans go to the OpenTelemetry layer.
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether our subscriber is the global one.
pub(crate) fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Records that our subscriber is the global one.
pub(crate) fn mark_installed() {
    INSTALLED.store(true, Ordering::Relaxed);
}

/// Makes `tracer` the exporting tracer; refused while another one is active.
pub(crate) fn activate(tracer: SdkTracer) -> anyhow::Result<()> {
    let mut slot = TRACER.write().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        anyhow::bail!("spans are already exported over OTLP in this process");
    }
    *slot = Some(tracer);
    ACTIVE.store(true, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

/// Stops handing spans to the layer and drops the exporting tracer.
pub(crate) fn deactivate() {
    ACTIVE.store(false, Ordering::Relaxed);
    tracing::callsite::rebuild_interest_cache();
    TRACER
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
}

/// The tracer given to `tracing_opentelemetry`: the active tracer, else a non-recording one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LazyTracer;

impl Tracer for LazyTracer {
    type Span = Span;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> Span {
        let slot = TRACER.read().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(tracer) => tracer.build_with_context(builder, parent_cx),
            None => DORMANT.build_with_context(builder, parent_cx),
        }
    }
}
