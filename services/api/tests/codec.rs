//! What tonic's codec refuses gets the caller's codes, on every service: a request with a
//! string field that is not UTF-8 is INVALID_ARGUMENT naming the field (not INTERNAL), one
//! over the 4 MiB decoding limit RESOURCE_EXHAUSTED (not OUT_OF_RANGE). Sent as raw bytes
//! over a real HTTP/2 gRPC client (tonic with a bytes codec), as a buggy or hostile client
//! would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{Buf, BufMut};
use common::*;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tonic_types::StatusExt;
use wfe_proto::agent::{SessionRequest, StatusReport, session_request};
use wfe_proto::v1;

/// Bytes as they are: the message is whatever the test wrote.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

const GET: &str = "/kubernaut.workflowexecution.v1.WorkflowExecutionService/GetWorkflowExecution";
const EXECUTE: &str = "/kubernaut.workflowexecution.v1.WorkflowExecutionService/ExecuteWorkflow";
const SESSION: &str = "/kubernaut.workflowexecution.agent.v1.AgentSessionService/Session";

/// 5 MiB: over tonic's default 4 MiB decoding limit.
const HUGE: usize = 5 << 20;

fn request<T>(body: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    let value = format!("Bearer {token}").parse().unwrap();
    req.metadata_mut().insert("authorization", value);
    req
}

async fn unary(api: &wfe_api::Running, path: &'static str, body: Vec<u8>) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel(api).await);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(request(body, CALLER_TOKEN), path, Raw)
        .await
        .expect_err("refused")
}

/// `msg` encoded, with the bytes of `marker` (a string field's value) made invalid UTF-8.
fn not_utf8(msg: &impl Message, marker: &str) -> Vec<u8> {
    let mut bytes = msg.encode_to_vec();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("the marker is in the encoding");
    bytes[at..at + marker.len()].fill(0xff);
    bytes
}

fn field(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    let bad = details.bad_request()?;
    bad.field_violations.first().map(|v| v.field.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_api_bad_bytes_are_invalid_argument_and_huge_ones_resource_exhausted() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;

    let get = v1::GetWorkflowExecutionRequest {
        name: "XMARKX".into(),
        namespace: String::new(),
    };
    let s = unary(&api, GET, not_utf8(&get, "XMARKX")).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert_eq!(field(&s).as_deref(), Some("name"), "{s:?}");

    let execute = execute_req("default/Deployment/web", "XMARKX", "");
    let s = unary(&api, EXECUTE, not_utf8(&execute, "XMARKX")).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert_eq!(
        field(&s).as_deref(),
        Some("spec.workflow_ref.workflow_id"),
        "{s:?}"
    );

    let huge = v1::GetWorkflowExecutionRequest {
        name: "x".repeat(HUGE),
        namespace: String::new(),
    };
    let s = unary(&api, GET, huge.encode_to_vec()).await;
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");

    // The request metrics count the code the caller got.
    let m = metrics(&api).await;
    assert!(
        m.contains("method=\"GetWorkflowExecution\",code=\"InvalidArgument\""),
        "{m}"
    );
    assert!(
        m.contains("method=\"GetWorkflowExecution\",code=\"ResourceExhausted\""),
        "{m}"
    );
    api.shutdown().await;
}

fn hello_msg(agent_id: &str, version: String) -> SessionRequest {
    let mut hello = common::agent::hello(agent_id, "", "job", vec![]);
    hello.version = version;
    SessionRequest {
        message: Some(session_request::Message::Hello(hello)),
    }
}

/// Opens a session sending `first`; the status the API ends it with.
async fn session_refused(api: &wfe_api::Running, first: Vec<u8>) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel(api).await);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(SESSION);
    let inbound = futures::stream::iter([first]);
    grpc.streaming(request(inbound, "job-local"), path, Raw)
        .await
        .expect_err("refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_api_bad_bytes_are_invalid_argument_and_huge_ones_resource_exhausted() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;

    let s = session_refused(&api, not_utf8(&hello_msg("XMARKX", "1".into()), "XMARKX")).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    // prost names a oneof member by the oneof (`message`), not by its case.
    assert_eq!(field(&s).as_deref(), Some("message.agent_id"), "{s:?}");

    let huge = hello_msg("job-1", "x".repeat(HUGE)).encode_to_vec();
    let s = session_refused(&api, huge).await;
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");

    // Mid-session: the stream ends with the code, instead of a plain end.
    let mut grpc = tonic::client::Grpc::new(channel(&api).await);
    grpc.ready().await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello_msg("job-2", "1".into()).encode_to_vec())
        .await
        .unwrap();
    let path = http::uri::PathAndQuery::from_static(SESSION);
    let mut inbound = grpc
        .streaming(request(ReceiverStream::new(rx), "job-local"), path, Raw)
        .await
        .expect("session")
        .into_inner();
    inbound.message().await.unwrap().expect("Welcome");
    let report = SessionRequest {
        message: Some(session_request::Message::Status(StatusReport {
            reason: "XMARKX".into(),
            ..Default::default()
        })),
    };
    tx.send(not_utf8(&report, "XMARKX")).await.unwrap();
    let end = loop {
        match inbound.message().await {
            Ok(Some(_)) => continue, // anything the API sent before it read the report
            Ok(None) => panic!("the session ended without a status"),
            Err(s) => break s,
        }
    };
    assert_eq!(end.code(), Code::InvalidArgument, "{end:?}");
    api.shutdown().await;
}
