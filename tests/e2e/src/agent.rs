//! The agent protocol spoken by a test itself: a session with any token and Hello, that
//! heartbeats and sends the status reports the test writes (what a confused or stale
//! agent process could send; the real agents are `wfe job-agent` / `wfe tekton-agent`).

use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use wfe_proto::agent::agent_session_service_client::AgentSessionServiceClient;
use wfe_proto::agent::{
    self, Heartbeat, Hello, SessionRequest, SessionResponse, StatusReport, session_request,
    session_response,
};

use crate::clients::Bearer;
use crate::stack::Stack;

/// An open agent session.
#[derive(Debug)]
pub struct Session {
    /// The session id the API gave it (Welcome).
    pub session_id: String,
    tx: mpsc::Sender<SessionRequest>,
    /// Kept open: the API's side of the stream ends when this drops.
    _inbound: tonic::Streaming<SessionResponse>,
    beat: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.beat.abort();
    }
}

/// A Hello of the local cluster with no inventory.
pub fn hello(agent_id: &str, engine: &str, capacity: u32) -> Hello {
    Hello {
        agent_id: agent_id.to_owned(),
        cluster_id: String::new(),
        engine: engine.to_owned(),
        version: "e2e".to_owned(),
        capacity,
        inventory: Vec::new(),
        available: true,
        unavailable_reason: String::new(),
    }
}

fn msg(m: session_request::Message) -> SessionRequest {
    SessionRequest { message: Some(m) }
}

impl Stack {
    /// Opens a session with API replica `api`, sending `token` and `hello`; returns once
    /// the API welcomed it. It heartbeats every 500 ms (the stack's interval).
    pub async fn agent_session(
        &self,
        api: usize,
        token: &str,
        hello: Hello,
    ) -> anyhow::Result<Session> {
        let ch = Channel::from_shared(format!("http://{}", self.apis[api].grpc))?
            .connect()
            .await
            .context("connecting to workflow-api")?;
        let bearer = Bearer(format!("Bearer {token}").parse()?);
        let mut client = AgentSessionServiceClient::with_interceptor(ch, bearer);
        let (tx, rx) = mpsc::channel(64);
        tx.send(msg(session_request::Message::Hello(hello))).await?;
        let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        let first = inbound.message().await?.context("no Welcome")?;
        let Some(session_response::Message::Welcome(welcome)) = first.message else {
            anyhow::bail!("expected Welcome, got {first:?}");
        };
        let beat_tx = tx.clone();
        let beat = tokio::spawn(async move {
            let hb = || Heartbeat {
                free_slots: 0,
                running: 0,
                sent_at: None,
            };
            while beat_tx
                .send(msg(session_request::Message::Heartbeat(hb())))
                .await
                .is_ok()
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Ok(Session {
            session_id: welcome.session_id,
            tx,
            _inbound: inbound,
            beat,
        })
    }
}

impl Session {
    /// Sends a status report.
    pub async fn report(&self, r: StatusReport) -> anyhow::Result<()> {
        self.tx
            .send(msg(session_request::Message::Status(r)))
            .await
            .context("the session is closed")
    }
}

/// A report on `execution` of `phase` under `fencing_token`.
pub fn report(
    execution: &wfe_proto::v1::WorkflowExecution,
    fencing_token: u64,
    phase: agent::PrimitivePhase,
) -> StatusReport {
    StatusReport {
        execution: Some(agent::ExecutionKey {
            name: execution.name.clone(),
            namespace: execution.namespace.clone(),
            uid: execution.uid.clone(),
        }),
        attempt: 1,
        fencing_token,
        phase: phase as i32,
        ..Default::default()
    }
}
