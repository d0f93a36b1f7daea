use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;

use super::*;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Runs `f` under a subscriber with an OpenTelemetry layer (no export).
fn with_otel<T>(f: impl FnOnce() -> T) -> T {
    let tracer = SdkTracerProvider::builder().build().tracer("test");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, f)
}

fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

#[test]
fn a_span_joins_the_trace_in_a_map() {
    with_otel(|| {
        let span = tracing::info_span!("assign");
        set_parent_from_map(&span, &[(TRACEPARENT.to_owned(), CALLER.to_owned())].into());
        assert_eq!(trace_id(&span), TRACE_ID);
    });
}

#[test]
fn a_span_joins_the_trace_in_grpc_metadata() {
    with_otel(|| {
        let mut md = MetadataMap::new();
        md.insert(TRACEPARENT, CALLER.parse().unwrap());
        let span = tracing::info_span!("execute");
        set_parent_from_metadata(&span, &md);
        assert_eq!(trace_id(&span), TRACE_ID);
    });
}

#[test]
fn without_a_valid_context_the_span_starts_a_trace() {
    with_otel(|| {
        let span = tracing::info_span!("execute");
        set_parent_from_map(
            &span,
            &[(TRACEPARENT.to_owned(), "garbage".to_owned())].into(),
        );
        let id = trace_id(&span);
        assert_ne!(id, TRACE_ID);
        assert_ne!(id, "00000000000000000000000000000000");
    });
}

#[test]
fn the_current_traceparent_names_the_current_span() {
    with_otel(|| {
        let span = tracing::info_span!("execute");
        set_parent_from_map(&span, &[(TRACEPARENT.to_owned(), CALLER.to_owned())].into());
        let tp = span.in_scope(current_traceparent).expect("a valid span");
        assert!(tp.starts_with(&format!("00-{TRACE_ID}-")), "{tp}");
        assert_ne!(tp, CALLER, "the span's own id, not the caller's");
    });
}

#[test]
fn no_traceparent_without_an_otel_layer() {
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("execute");
        assert_eq!(span.in_scope(current_traceparent), None);
    });
}
