//! Delivery guarantees: durable before `record` returns, delivered at least
//! once after DataStorage outages and restarts, duplicates dropped by id.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use jiff::Timestamp;
use tokio::sync::watch;
use wfe_audit::{AuditConfig, AuditEvent, Auditor, ExecutionFacts, SinkConfig};

/// A DataStorage stand-in whose answer the test switches.
#[derive(Clone, Default)]
struct FakeDataStorage {
    status: Arc<AtomicU16>,
    received: Arc<Mutex<Vec<AuditEvent>>>,
}

async fn batch(
    State(ds): State<FakeDataStorage>,
    Json(events): Json<Vec<AuditEvent>>,
) -> StatusCode {
    let status = StatusCode::from_u16(ds.status.load(Ordering::SeqCst)).expect("valid status");
    if status.is_success() {
        ds.received.lock().expect("lock").extend(events);
    }
    status
}

async fn start_datastorage(initial: u16) -> (FakeDataStorage, SocketAddr) {
    let ds = FakeDataStorage::default();
    ds.status.store(initial, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/api/v1/audit/events/batch", post(batch))
        .with_state(ds.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (ds, addr)
}

fn event(uid: &str) -> AuditEvent {
    let facts = ExecutionFacts {
        name: format!("wfe-{uid}"),
        namespace: "ns".into(),
        uid: uid.into(),
        remediation_request: "rr".into(),
        phase: "Completed".into(),
        ..Default::default()
    };
    facts.completed(Timestamp::from_second(1).expect("valid"))
}

fn config(addr: SocketAddr, dir: &std::path::Path) -> AuditConfig {
    let mut c = AuditConfig::new(SinkConfig::DataStorage {
        url: format!("http://{addr}"),
        outbox_dir: dir.to_path_buf(),
    });
    c.initial_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(100);
    c
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn outbox_survives_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ds, addr) = start_datastorage(503).await;

    // First process: DataStorage is down; events wait in the outbox.
    let (tx, rx) = watch::channel(false);
    let (auditor, worker) = Auditor::open(config(addr, dir.path()), rx)
        .await
        .expect("open");
    let worker = tokio::spawn(worker.expect("outbox worker").run());
    for uid in ["a", "b", "c"] {
        assert!(auditor.record(&event(uid)).await.expect("record"));
    }
    let stats = auditor.stats();
    wait_for("a failed delivery", || {
        stats.delivery_failures.load(Ordering::SeqCst) > 0
    })
    .await;
    tx.send(true).expect("shutdown");
    worker.await.expect("worker ends");
    assert!(ds.received.lock().expect("lock").is_empty());

    // Second process on the same directory, DataStorage back: all delivered, in order.
    ds.status.store(201, Ordering::SeqCst);
    let (_tx, rx) = watch::channel(false);
    let (auditor, worker) = Auditor::open(config(addr, dir.path()), rx)
        .await
        .expect("reopen");
    assert_eq!(auditor.stats().outbox_depth.load(Ordering::SeqCst), 3);
    tokio::spawn(worker.expect("outbox worker").run());
    wait_for("delivery", || ds.received.lock().expect("lock").len() == 3).await;
    let ids: Vec<String> = ds
        .received
        .lock()
        .expect("lock")
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    let want: Vec<String> = ["a", "b", "c"].iter().map(|u| event(u).event_id).collect();
    assert_eq!(ids, want);
    wait_for("empty outbox", || {
        auditor.stats().outbox_depth.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn a_rejected_batch_is_kept_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ds, addr) = start_datastorage(400).await;
    let (_tx, rx) = watch::channel(false);
    let (auditor, worker) = Auditor::open(config(addr, dir.path()), rx)
        .await
        .expect("open");
    tokio::spawn(worker.expect("worker").run());
    auditor.record(&event("x")).await.expect("record");
    let stats = auditor.stats();
    wait_for("rejection", || stats.rejected.load(Ordering::SeqCst) == 1).await;
    // The event file; beside it, its `.reason` file.
    let kept = std::fs::read_dir(dir.path().join("rejected"))
        .expect("rejected dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
        })
        .count();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_waiting_duplicate_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ds, addr) = start_datastorage(503).await;
    let (_tx, rx) = watch::channel(false);
    let (auditor, _worker) = Auditor::open(config(addr, dir.path()), rx)
        .await
        .expect("open");
    assert!(auditor.record(&event("dup")).await.expect("record"));
    assert!(!auditor.record(&event("dup")).await.expect("record again"));
    assert_eq!(auditor.stats().duplicates.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn jsonl_sink_writes_each_event_once_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    for _ in 0..2 {
        let (_tx, rx) = watch::channel(false);
        let (auditor, worker) =
            Auditor::open(AuditConfig::new(SinkConfig::JsonlFile(path.clone())), rx)
                .await
                .expect("open");
        assert!(worker.is_none());
        auditor.record(&event("one")).await.expect("record");
        auditor.record(&event("two")).await.expect("record");
    }
    let text = std::fs::read_to_string(&path).expect("file");
    let lines: Vec<AuditEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0].event_type, "workflowexecution.workflow.completed");
}
