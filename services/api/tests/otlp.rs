//! Spans over OTLP: with `--otlp-endpoint`, ExecuteWorkflow and the dispatch of its execution
//! reach a collector as spans of `workflow-api` in the caller's trace. Its own test binary:
//! the tracing subscriber and the span export are process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::agent;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio_stream::wrappers::TcpListenerStream;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A fake OTLP collector keeping every export request.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    parent_span_id: String,
}

impl Collector {
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<Exported> {
        let requests = self.0.lock().unwrap();
        let mut out = Vec::new();
        for rs in requests.iter().flat_map(|r| &r.resource_spans) {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                out.push(Exported {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex::encode(&span.trace_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                });
            }
        }
        out
    }
}

fn find<'a>(spans: &'a [Exported], name: &str, trace_id: &str) -> Option<&'a Exported> {
    spans
        .iter()
        .find(|s| s.name == name && s.trace_id == trace_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_join_the_callers_trace_and_reach_the_collector() {
    wfe_api::server::init_tracing("text");
    let collector = Collector::default();
    let addr = collector.start().await;
    let env = Env::new().await;
    let mut config = env.config();
    config.otlp_endpoint = Some(format!("http://{addr}"));
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::connect(&api, "job-local", agent::hello("a-1", "", "job", vec![]))
        .await
        .unwrap();

    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let mut req = tonic::Request::new(execute_req("default/Deployment/traced", "wf-1", ""));
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    c.execute_workflow(req).await.unwrap();
    let traced = ag.next_assign().await;
    assert_eq!(traced.trace_context["traceparent"], traceparent);

    // Without the caller's context, the agent is handed the ExecuteWorkflow span's trace.
    c.execute_workflow(execute_req("default/Deployment/untraced", "wf-1", ""))
        .await
        .unwrap();
    let untraced = ag.next_assign().await;
    let own = untraced.trace_context["traceparent"].clone();
    let own_trace = own.split('-').nth(1).unwrap().to_owned();
    assert_ne!(own_trace, CALLER_TRACE);

    api.shutdown().await; // flushes the batch
    let spans = collector.spans();
    let execute = find(&spans, "ExecuteWorkflow", CALLER_TRACE)
        .unwrap_or_else(|| panic!("ExecuteWorkflow in the caller's trace: {spans:#?}"));
    assert_eq!(execute.service, "workflow-api");
    assert_eq!(execute.parent_span_id, CALLER_SPAN);
    let dispatch = find(&spans, "dispatch", CALLER_TRACE)
        .unwrap_or_else(|| panic!("dispatch in the caller's trace: {spans:#?}"));
    assert_eq!(dispatch.service, "workflow-api");
    assert!(
        find(&spans, "ExecuteWorkflow", &own_trace).is_some(),
        "the untraced call's span is the trace handed to the agent: {spans:#?}"
    );
    assert!(find(&spans, "dispatch", &own_trace).is_some(), "{spans:#?}");
}
