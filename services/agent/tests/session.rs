//! The session runtime against a fake workflow-api (a tonic server written here) and a
//! fake executor: hello/inventory, heartbeats, acks, redelivery, stale fencing tokens,
//! reconnect + resync, drain.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use wfe_agent::backoff::Backoff;
use wfe_agent::session::Dial;
use wfe_agent::{AgentConfig, Availability, Executor, ExecutorError};
use wfe_proto::agent::agent_session_service_server::{
    AgentSessionService, AgentSessionServiceServer,
};
use wfe_proto::agent::session_request::Message as Up;
use wfe_proto::agent::session_response::Message as Down;
use wfe_proto::agent::*;

// ---------- fake workflow-api ----------

#[derive(Clone, Default)]
struct FakeApi {
    accepting: Arc<AtomicBool>,
    current: Arc<Mutex<Option<mpsc::Sender<Result<SessionResponse, Status>>>>>,
    seen: Arc<Mutex<Option<mpsc::UnboundedSender<(String, Up)>>>>,
}

#[async_trait]
impl AgentSessionService for FakeApi {
    type SessionStream = ReceiverStream<Result<SessionResponse, Status>>;

    async fn session(
        &self,
        req: Request<Streaming<SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if !self.accepting.load(Ordering::SeqCst) {
            return Err(Status::unavailable("restarting"));
        }
        let auth = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let welcome = Welcome {
            session_id: "s".into(),
            heartbeat_interval: Some(prost_types::Duration {
                seconds: 0,
                nanos: 50_000_000,
            }),
            lease_duration: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
        };
        let _ = tx.send(Ok(down(Down::Welcome(welcome)))).await;
        *self.current.lock().unwrap() = Some(tx.clone());
        let seen = self.seen.lock().unwrap().clone();
        let current = self.current.clone();
        tokio::spawn(async move {
            while let Ok(Some(m)) = inbound.message().await {
                if let (Some(seen), Some(m)) = (&seen, m.message) {
                    let _ = seen.send((auth.clone(), m));
                }
            }
            // The agent closed its half: end ours, like workflow-api.
            let mut cur = current.lock().unwrap();
            if cur.as_ref().is_some_and(|c| c.same_channel(&tx)) {
                *cur = None;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn down(m: Down) -> SessionResponse {
    SessionResponse { message: Some(m) }
}

impl FakeApi {
    async fn send(&self, m: Down) {
        let tx = self
            .current
            .lock()
            .unwrap()
            .clone()
            .expect("a session is open");
        tx.send(Ok(down(m))).await.expect("session open");
    }

    /// Ends the current stream with an error and refuses new sessions (a restart).
    async fn go_down(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let tx = self.current.lock().unwrap().take();
        if let Some(tx) = tx {
            let _ = tx.send(Err(Status::unavailable("server restarting"))).await;
        }
    }
}

// ---------- fake executor ----------

#[derive(Default)]
struct FakeExec {
    inventory: Mutex<Vec<StatusReport>>,
    starts: AtomicU32,
    gate: Option<Arc<Notify>>,
    observer: Mutex<Option<mpsc::Sender<StatusReport>>>,
}

fn report(uid: &str, token: u64, phase: PrimitivePhase, reason: &str) -> StatusReport {
    StatusReport {
        execution: Some(ExecutionKey {
            name: format!("we-{uid}"),
            namespace: "ns".into(),
            uid: uid.into(),
        }),
        attempt: 1,
        fencing_token: token,
        phase: phase as i32,
        reason: reason.into(),
        ..Default::default()
    }
}

#[async_trait]
impl Executor for FakeExec {
    fn engine(&self) -> &'static str {
        "job"
    }
    async fn availability(&self) -> Availability {
        Availability::Available
    }
    async fn observe(
        self: Arc<Self>,
        tx: mpsc::Sender<StatusReport>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        *self.observer.lock().unwrap() = Some(tx);
        shutdown.cancelled().await;
        Ok(())
    }
    async fn synced(&self) {}
    fn inventory(&self) -> Vec<StatusReport> {
        self.inventory.lock().unwrap().clone()
    }
    async fn start(&self, a: &Assign) -> StatusReport {
        if let Some(g) = &self.gate {
            g.notified().await;
        }
        self.starts.fetch_add(1, Ordering::SeqCst);
        let uid = a.execution.clone().unwrap_or_default().uid;
        let r = report(&uid, a.fencing_token, PrimitivePhase::Pending, "Created");
        self.inventory.lock().unwrap().push(r.clone());
        r
    }
    async fn cancel(&self, c: &Cancel) -> Result<StatusReport, ExecutorError> {
        let uid = c.execution.clone().unwrap_or_default().uid;
        Ok(report(
            &uid,
            c.fencing_token,
            PrimitivePhase::Failed,
            "Cancelled",
        ))
    }
    async fn release(&self, _: &Release) -> Result<(), ExecutorError> {
        Ok(())
    }
}

// ---------- harness ----------

struct Harness {
    api: FakeApi,
    seen: mpsc::UnboundedReceiver<(String, Up)>,
    exec: Arc<FakeExec>,
    shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<anyhow::Result<()>>,
    admin: String,
}

async fn start(exec: FakeExec, capacity: u32) -> Harness {
    let api = FakeApi::default();
    api.accepting.store(true, Ordering::SeqCst);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    *api.seen.lock().unwrap() = Some(seen_tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let svc = AgentSessionServiceServer::new(api.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let token = std::env::temp_dir().join(format!("wfe-agent-token-{}", uuid::Uuid::new_v4()));
    std::fs::write(&token, "t0k\n").unwrap();
    let cfg = AgentConfig {
        dial: Dial {
            url,
            token_file: Some(token),
            tls_ca: None,
        },
        agent_id: "agent-1".into(),
        cluster_id: "c1".into(),
        capacity,
        version: "test".into(),
        drain_timeout: Duration::from_secs(10),
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
    };
    let exec = Arc::new(exec);
    let shutdown = CancellationToken::new();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", admin_listener.local_addr().unwrap());
    let agent = tokio::spawn(wfe_agent::run_with(
        cfg,
        exec.clone(),
        admin_listener,
        shutdown.clone(),
    ));
    Harness {
        api,
        seen,
        exec,
        shutdown,
        agent,
        admin,
    }
}

impl Harness {
    /// The next message matching `f`, within 10 s.
    async fn next<T>(&mut self, mut f: impl FnMut(&Up) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, m) = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .expect("message in time")
                .expect("open");
            if let Some(t) = f(&m) {
                return t;
            }
        }
    }
    async fn hello(&mut self) -> Hello {
        self.next(|m| match m {
            Up::Hello(h) => Some(h.clone()),
            _ => None,
        })
        .await
    }
    async fn ack(&mut self, id: &str) -> Ack {
        let id = id.to_owned();
        self.next(move |m| match m {
            Up::Ack(a) if a.command_id == id => Some(a.clone()),
            _ => None,
        })
        .await
    }
    async fn status(&mut self, uid: &str) -> StatusReport {
        let uid = uid.to_owned();
        self.next(move |m| match m {
            Up::Status(s) if s.execution.as_ref().is_some_and(|k| k.uid == uid) => Some(s.clone()),
            _ => None,
        })
        .await
    }
    async fn readyz(&self) -> u16 {
        reqwest::get(format!("{}/readyz", self.admin))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
    /// Polls `/readyz` until it answers `code` (10 s).
    async fn wait_ready(&self, code: u16) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.readyz().await != code {
            assert!(
                tokio::time::Instant::now() < deadline,
                "readyz never became {code}"
            );
            tokio::task::yield_now().await;
        }
    }
}

fn assign(id: &str, uid: &str, token: u64) -> Down {
    Down::Assign(Assign {
        assignment_id: id.into(),
        execution: Some(ExecutionKey {
            name: format!("we-{uid}"),
            namespace: "ns".into(),
            uid: uid.into(),
        }),
        attempt: 1,
        fencing_token: token,
        primitive_name: format!("wfe-{uid}-a1"),
        ..Default::default()
    })
}

// ---------- tests ----------

#[tokio::test]
async fn hello_carries_identity_inventory_and_heartbeats_follow() {
    let exec = FakeExec::default();
    exec.inventory
        .lock()
        .unwrap()
        .push(report("old", 4, PrimitivePhase::Running, "Running"));
    let mut h = start(exec, 3).await;
    let (auth, first) = h.seen.recv().await.expect("hello");
    let Up::Hello(hello) = first else {
        panic!("first message must be Hello, got {first:?}")
    };
    assert_eq!(auth, "Bearer t0k");
    assert_eq!(
        (
            hello.agent_id.as_str(),
            hello.cluster_id.as_str(),
            hello.engine.as_str()
        ),
        ("agent-1", "c1", "job")
    );
    assert_eq!(hello.capacity, 3);
    assert!(hello.available);
    assert_eq!(hello.inventory.len(), 1);
    assert_eq!(hello.inventory[0].fencing_token, 4);
    let hb = h
        .next(|m| match m {
            Up::Heartbeat(hb) => Some(*hb),
            _ => None,
        })
        .await;
    assert_eq!(
        (hb.running, hb.free_slots),
        (1, 2),
        "the inventoried execution holds a slot"
    );
    h.wait_ready(200).await;
    let metrics = reqwest::get(format!("{}/metrics", h.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("wfe_agent_sessions_total 1"), "{metrics}");
    assert_eq!(
        reqwest::get(format!("{}/livez", h.admin))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn assign_is_acked_reported_and_redelivery_creates_nothing_new() {
    let mut h = start(FakeExec::default(), 1).await;
    h.hello().await;
    h.api.send(assign("as-1", "e1", 1)).await;
    assert!(h.ack("as-1").await.accepted);
    assert_eq!(h.status("e1").await.reason, "Created");
    h.api.send(assign("as-1", "e1", 1)).await;
    assert!(h.ack("as-1").await.accepted);
    assert_eq!(
        h.status("e1").await.reason,
        "Created",
        "redelivery answers with the current state"
    );
    assert_eq!(h.exec.starts.load(Ordering::SeqCst), 1);
    h.api.send(assign("as-2", "e2", 1)).await;
    let full = h.ack("as-2").await;
    assert!(!full.accepted);
    assert_eq!(full.reason, "no free slot");
}

#[tokio::test]
async fn stale_fencing_tokens_are_refused() {
    let mut h = start(FakeExec::default(), 2).await;
    h.hello().await;
    h.api.send(assign("as-5", "e1", 5)).await;
    assert!(h.ack("as-5").await.accepted);
    h.api.send(assign("as-4", "e1", 4)).await;
    let a = h.ack("as-4").await;
    assert_eq!(
        (a.accepted, a.reason.as_str()),
        (false, "stale fencing token")
    );
    let key = ExecutionKey {
        name: "we-e1".into(),
        namespace: "ns".into(),
        uid: "e1".into(),
    };
    h.api
        .send(Down::Cancel(Cancel {
            command_id: "c-1".into(),
            execution: Some(key.clone()),
            fencing_token: 3,
            reason: "x".into(),
        }))
        .await;
    let a = h.ack("c-1").await;
    assert_eq!(
        (a.accepted, a.reason.as_str()),
        (false, "stale fencing token")
    );
    h.api
        .send(Down::Cancel(Cancel {
            command_id: "c-2".into(),
            execution: Some(key),
            fencing_token: 5,
            reason: "x".into(),
        }))
        .await;
    assert!(h.ack("c-2").await.accepted);
    let s = h
        .next(|m| match m {
            Up::Status(s) if s.reason == "Cancelled" => Some(s.clone()),
            _ => None,
        })
        .await;
    assert_eq!(s.fencing_token, 5);
}

#[tokio::test]
async fn reconnect_resyncs_and_loses_no_status_change() {
    let mut h = start(FakeExec::default(), 2).await;
    h.hello().await;
    h.api.send(assign("as-1", "e1", 1)).await;
    h.status("e1").await;
    h.api.go_down().await;
    h.wait_ready(503).await;
    // A change observed while disconnected…
    let observer = h.exec.observer.lock().unwrap().clone().expect("observing");
    observer
        .send(report("e1", 1, PrimitivePhase::Succeeded, "Complete"))
        .await
        .unwrap();
    h.api.accepting.store(true, Ordering::SeqCst);
    // …is in the Hello of the next session.
    let hello = h
        .next(|m| match m {
            Up::Hello(h) if h.inventory.iter().any(|r| r.reason == "Complete") => Some(h.clone()),
            _ => None,
        })
        .await;
    assert_eq!(hello.inventory.len(), 1);
    assert_eq!(hello.inventory[0].phase, PrimitivePhase::Succeeded as i32);
    h.wait_ready(200).await;
    // And after the resync, the finished execution no longer holds a slot.
    let hb = h
        .next(|m| match m {
            Up::Heartbeat(hb) => Some(*hb),
            _ => None,
        })
        .await;
    assert_eq!(hb.free_slots, 2);
}

#[tokio::test]
async fn drain_refuses_new_work_and_finishes_in_flight_creates() {
    let gate = Arc::new(Notify::new());
    let exec = FakeExec {
        gate: Some(gate.clone()),
        ..Default::default()
    };
    let mut h = start(exec, 2).await;
    h.hello().await;
    h.api.send(assign("as-1", "e1", 1)).await;
    assert!(h.ack("as-1").await.accepted);
    h.shutdown.cancel();
    h.next(|m| matches!(m, Up::Draining(_)).then_some(())).await;
    h.wait_ready(503).await;
    h.api.send(assign("as-2", "e2", 1)).await;
    let a = h.ack("as-2").await;
    assert_eq!(
        (a.accepted, a.reason.as_str()),
        (false, "agent is draining")
    );
    assert!(
        !h.agent.is_finished(),
        "the in-flight create holds the drain"
    );
    gate.notify_one();
    assert_eq!(
        h.status("e1").await.reason,
        "Created",
        "final report sent before closing"
    );
    tokio::time::timeout(Duration::from_secs(10), h.agent)
        .await
        .expect("agent stops")
        .unwrap()
        .unwrap();
}
