//! W3C trace context (`traceparent`) in and out of gRPC metadata and string maps.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{KeyRef, MetadataMap};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header (and map key) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Reads string entries of gRPC metadata.
struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Makes the trace context in `carrier` the parent of `span` (call before it is entered).
/// Nothing happens without a valid context or while spans are not exported.
fn set_parent(span: &tracing::Span, carrier: &dyn Extractor) {
    let cx = TraceContextPropagator::new().extract(carrier);
    if !cx.span().span_context().is_valid() {
        return;
    }
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "trace context not applied");
    }
}

/// Parents `span` on the caller's `traceparent` gRPC metadata.
pub fn set_parent_from_metadata(span: &tracing::Span, metadata: &MetadataMap) {
    set_parent(span, &MetadataExtractor(metadata));
}

/// Parents `span` on a `traceparent` entry of `map` (e.g. `Assign.trace_context`).
pub fn set_parent_from_map(span: &tracing::Span, map: &HashMap<String, String>) {
    set_parent(span, map);
}

/// The current span's `traceparent`, when spans are exported and the span is valid.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut map);
    map.remove(TRACEPARENT)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
