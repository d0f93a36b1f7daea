//! A fake agent that speaks the session protocol with the generated client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use wfe_proto::agent::agent_session_service_client::AgentSessionServiceClient;
use wfe_proto::agent::{
    self, PrimitivePhase, SessionRequest, SessionResponse, session_request, session_response,
};
use wfe_proto::v1;

use super::{Bearer, channel};

pub struct FakeAgent {
    pub agent_id: String,
    tx: mpsc::Sender<SessionRequest>,
    inbound: Streaming<SessionResponse>,
    pub welcome: agent::Welcome,
    beat: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.beat.abort();
    }
}

pub fn hello(
    agent_id: &str,
    cluster: &str,
    engine: &str,
    inventory: Vec<agent::StatusReport>,
) -> agent::Hello {
    agent::Hello {
        agent_id: agent_id.into(),
        cluster_id: cluster.into(),
        engine: engine.into(),
        version: "test".into(),
        capacity: 10,
        inventory,
        available: true,
        unavailable_reason: String::new(),
    }
}

/// A job agent of the local cluster, connected with the local job agents' token.
pub async fn job_agent(
    running: &wfe_api::Running,
    id: &str,
    inventory: Vec<agent::StatusReport>,
) -> FakeAgent {
    connect(running, "job-local", hello(id, "", "job", inventory))
        .await
        .unwrap()
}

fn msg(m: session_request::Message) -> SessionRequest {
    SessionRequest { message: Some(m) }
}

/// Connects; returns the gRPC error when the API refuses the session.
pub async fn connect(
    running: &wfe_api::Running,
    token: &str,
    hello: agent::Hello,
) -> Result<FakeAgent, tonic::Status> {
    let mut client = AgentSessionServiceClient::with_interceptor(
        channel(running).await,
        Bearer(token.to_owned()),
    );
    let (tx, rx) = mpsc::channel(64);
    let agent_id = hello.agent_id.clone();
    tx.send(msg(session_request::Message::Hello(hello)))
        .await
        .unwrap();
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    let first = inbound.message().await?.expect("welcome");
    let Some(session_response::Message::Welcome(welcome)) = first.message else {
        panic!("expected Welcome, got {first:?}")
    };
    let beat_tx = tx.clone();
    let beat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let hb = agent::Heartbeat {
                free_slots: 10,
                running: 0,
                sent_at: None,
            };
            if beat_tx
                .send(msg(session_request::Message::Heartbeat(hb)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(FakeAgent {
        agent_id,
        tx,
        inbound,
        welcome,
        beat,
    })
}

impl FakeAgent {
    /// The next message from the API (panics after 10 s).
    pub async fn next(&mut self) -> session_response::Message {
        let m = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
            .await
            .expect("a message from the API within 10 s")
            .expect("stream ok")
            .expect("stream open");
        m.message.expect("a message")
    }

    /// The next Assign, skipping other messages.
    pub async fn next_assign(&mut self) -> agent::Assign {
        loop {
            if let session_response::Message::Assign(a) = self.next().await {
                return a;
            }
        }
    }

    /// The next message within `within`, or None.
    pub async fn try_next(&mut self, within: Duration) -> Option<session_response::Message> {
        let m = tokio::time::timeout(within, self.inbound.message())
            .await
            .ok()?;
        m.expect("stream ok").and_then(|m| m.message)
    }

    /// The next message within `within`: `Ok(None)` on timeout, `Err(())` once the stream ended.
    pub async fn next_within(
        &mut self,
        within: Duration,
    ) -> Result<Option<session_response::Message>, ()> {
        match tokio::time::timeout(within, self.inbound.message()).await {
            Err(_) => Ok(None),
            Ok(Ok(Some(m))) => Ok(m.message),
            Ok(_) => Err(()),
        }
    }

    /// The next Release, skipping other messages.
    pub async fn next_release(&mut self) -> agent::Release {
        loop {
            if let session_response::Message::Release(r) = self.next().await {
                return r;
            }
        }
    }

    /// The next Cancel, skipping other messages.
    pub async fn next_cancel(&mut self) -> agent::Cancel {
        loop {
            if let session_response::Message::Cancel(c) = self.next().await {
                return c;
            }
        }
    }

    /// After a reconnect: the API assigns the execution of `was` anew to this session (the
    /// next fencing token; the same attempt and primitive, adopted). Acknowledged.
    pub async fn resumed(&mut self, was: &agent::Assign) -> agent::Assign {
        let a = self.next_assign().await;
        assert_eq!(a.execution, was.execution);
        assert!(a.adopt, "the agent adopts its own primitive");
        assert_eq!(a.fencing_token, was.fencing_token + 1);
        assert_eq!(a.attempt, was.attempt, "the work stays with the same agent");
        assert_eq!(a.primitive_name, was.primitive_name);
        self.ack(&a.assignment_id).await;
        a
    }

    pub async fn ack(&self, id: &str) {
        let ack = agent::Ack {
            command_id: id.into(),
            accepted: true,
            reason: String::new(),
        };
        self.tx
            .send(msg(session_request::Message::Ack(ack)))
            .await
            .unwrap();
    }

    pub async fn report(&self, r: agent::StatusReport) {
        self.tx
            .send(msg(session_request::Message::Status(r)))
            .await
            .unwrap();
    }

    /// Stops heartbeats and closes the stream (as if the agent died).
    pub fn kill(self) {}

    /// Stops the heartbeats but keeps the stream open: a hung agent, not a closed one.
    pub fn go_silent(&self) {
        self.beat.abort();
    }
}

/// A report for an assignment.
pub fn report(a: &agent::Assign, phase: PrimitivePhase) -> agent::StatusReport {
    let now = jiff::Timestamp::now();
    let ts = prost_types::Timestamp {
        seconds: now.as_second(),
        nanos: 0,
    };
    agent::StatusReport {
        execution: a.execution.clone(),
        attempt: a.attempt,
        fencing_token: a.fencing_token,
        phase: phase as i32,
        reason: "Running".into(),
        message: String::new(),
        primitive: Some(v1::PrimitiveReference {
            cluster_id: String::new(),
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            namespace: a.primitive_namespace.clone(),
            name: a.primitive_name.clone(),
            uid: "job-uid".into(),
        }),
        progress: Some(v1::ExecutionSummary {
            completed_tasks: u32::from(phase == PrimitivePhase::Succeeded),
            total_tasks: 1,
            retry_count: 0,
        }),
        failure: None,
        started_at: Some(ts),
        completed_at: matches!(phase, PrimitivePhase::Succeeded | PrimitivePhase::Failed)
            .then_some(ts),
        observed_at: Some(ts),
    }
}

/// A FAILED report with a failure reason; `started` says whether the workflow ran.
pub fn failed(a: &agent::Assign, reason: v1::FailureReason, started: bool) -> agent::StatusReport {
    let mut r = report(a, PrimitivePhase::Failed);
    if !started {
        r.started_at = None;
    }
    r.failure = Some(v1::FailureDetails {
        reason: reason as i32,
        message: "the workflow failed".into(),
        was_execution_failure: started,
        ..Default::default()
    });
    r
}
