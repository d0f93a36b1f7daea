//! DataStorage refuses a whole batch (400) when one of its events fails validation; the
//! delivery worker still delivers every other event and sets aside only the refused ones.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::watch;
use wfe_audit::{AuditConfig, AuditEvent, Auditor, ExecutionFacts, SinkConfig, contract};

/// A DataStorage stand-in that validates like the real one: every event of a batch is
/// checked (against the contract, and against `refuse`, an `event_action` it treats as
/// invalid), and one failure refuses the whole batch with an RFC 7807 400.
#[derive(Clone, Default)]
struct StrictDataStorage {
    refuse: Arc<Mutex<Option<String>>>,
    received: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<usize>>,
}

async fn batch(State(ds): State<StrictDataStorage>, Json(events): Json<Vec<Value>>) -> Response {
    *ds.requests.lock().expect("lock") += 1;
    let refuse = ds.refuse.lock().expect("lock").clone();
    for (i, e) in events.iter().enumerate() {
        let refused = refuse.as_deref().is_some_and(|a| e["event_action"] == a);
        if refused || contract::validate(e).is_err() {
            let problem = json!({
                "type": "https://kubernaut.ai/problems/validation-error",
                "title": "Validation Error",
                "status": 400,
                "detail": format!("event at index {i} failed validation"),
            });
            return (StatusCode::BAD_REQUEST, Json(problem)).into_response();
        }
    }
    ds.received.lock().expect("lock").extend(events);
    StatusCode::CREATED.into_response()
}

async fn start(refuse: Option<&str>) -> (StrictDataStorage, SocketAddr) {
    let ds = StrictDataStorage::default();
    *ds.refuse.lock().expect("lock") = refuse.map(str::to_owned);
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

fn facts(uid: &str, phase: &str) -> ExecutionFacts {
    ExecutionFacts {
        name: format!("wfe-{uid}"),
        namespace: "ns".into(),
        uid: uid.into(),
        remediation_request: format!("rr-{uid}"),
        execution_engine: "job".into(),
        workflow_id: "restart-pod".into(),
        workflow_version: "1.0.0".into(),
        container_image: "img".into(),
        target_resource: format!("default/Deployment/{uid}"),
        phase: phase.into(),
        ..Default::default()
    }
}

fn at() -> Timestamp {
    Timestamp::now()
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

/// Records `events` while no worker runs (so they form one batch), then starts the worker.
async fn deliver(
    addr: SocketAddr,
    dir: &std::path::Path,
    events: &[AuditEvent],
) -> (Auditor, watch::Sender<bool>) {
    let mut c = AuditConfig::new(SinkConfig::DataStorage {
        url: format!("http://{addr}"),
        outbox_dir: dir.to_path_buf(),
    });
    c.initial_backoff = Duration::from_millis(20);
    c.max_backoff = Duration::from_millis(100);
    let (tx, rx) = watch::channel(false);
    let (auditor, worker) = Auditor::open(c, rx).await.expect("open");
    for e in events {
        assert!(auditor.record(e).await.expect("record"));
    }
    tokio::spawn(worker.expect("outbox worker").run());
    (auditor, tx)
}

fn rejected_files(dir: &std::path::Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("rejected"))
        .expect("rejected dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn one_refused_kind_does_not_take_the_batch_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ds, addr) = start(Some("cancelled")).await;
    let cancelled = facts("b", "Failed").cancelled("alice", "wrong target", at());
    let events = vec![
        facts("a", "Running").started(at()),
        facts("a", "Completed").completed(at()),
        cancelled.clone(),
        facts("c", "Skipped").skipped(&[("ResourceBusy".into(), "busy".into())], at()),
        facts("d", "Failed").failed(None, at()),
    ];
    let (auditor, _stop) = deliver(addr, dir.path(), &events).await;
    let stats = auditor.stats();
    wait_for("the batch settled", || {
        stats.delivered.load(Ordering::SeqCst) + stats.rejected.load(Ordering::SeqCst) == 5
    })
    .await;

    let got: Vec<(String, String)> = ds
        .received
        .lock()
        .expect("lock")
        .iter()
        .map(|e| {
            (
                e["resource_id"].as_str().unwrap_or("").to_owned(),
                e["event_type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("wfe-a", "workflowexecution.selection.completed"),
        ("wfe-a", "workflowexecution.execution.started"),
        ("wfe-a", "workflowexecution.workflow.completed"),
        ("wfe-c", "workflowexecution.workflow.failed"),
        ("wfe-d", "workflowexecution.workflow.failed"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, want, "every other event delivered, in order");
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 4);
    assert_eq!(stats.rejected.load(Ordering::SeqCst), 1);
    assert_eq!(stats.invalid.load(Ordering::SeqCst), 0);
    assert!(stats.split_batches.load(Ordering::SeqCst) >= 1);
    assert_eq!(stats.outbox_depth.load(Ordering::SeqCst), 0);

    let kept = rejected_files(dir.path(), ".json");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].ends_with(&format!("-{}.json", cancelled.event_id)));
    let reason = std::fs::read_to_string(
        dir.path()
            .join("rejected")
            .join(format!("{}.reason", kept[0])),
    )
    .expect("reason file");
    assert!(
        reason.contains("refused by DataStorage") && reason.contains("400"),
        "{reason}"
    );
    let event: AuditEvent = serde_json::from_slice(
        &std::fs::read(dir.path().join("rejected").join(&kept[0])).expect("event file"),
    )
    .expect("the recorded event, unchanged");
    assert_eq!(event, cancelled);
}

#[tokio::test]
async fn skipped_and_cancelled_events_are_accepted_by_a_validating_datastorage() {
    // Before the wire form, these two were refused and took their batch with them.
    let dir = tempfile::tempdir().expect("tempdir");
    let (ds, addr) = start(None).await;
    let events = vec![
        facts("a", "Skipped").skipped(&[("RecentlyRemediated".into(), "cooldown".into())], at()),
        facts("b", "Failed").cancelled("alice", "", at()),
        facts("c", "Completed").completed(at()),
    ];
    let (auditor, _stop) = deliver(addr, dir.path(), &events).await;
    let stats = auditor.stats();
    wait_for("delivery", || stats.delivered.load(Ordering::SeqCst) == 3).await;
    assert_eq!(
        *ds.requests.lock().expect("lock"),
        1,
        "one batch, accepted whole"
    );
    assert_eq!(stats.rejected.load(Ordering::SeqCst), 0);
    let actions: Vec<Value> = ds
        .received
        .lock()
        .expect("lock")
        .iter()
        .map(|e| e["event_action"].clone())
        .collect();
    assert_eq!(
        actions,
        [json!("skipped"), json!("cancelled"), json!("completed")]
    );
}

#[tokio::test]
async fn an_event_breaking_the_contract_is_set_aside_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ds, addr) = start(None).await;
    let mut broken = facts("a", "Completed");
    broken.remediation_request = String::new(); // correlation_id has minLength 1
    let events = vec![
        broken.completed(at()),
        facts("b", "Completed").completed(at()),
    ];
    let (auditor, _stop) = deliver(addr, dir.path(), &events).await;
    let stats = auditor.stats();
    wait_for("delivery", || stats.delivered.load(Ordering::SeqCst) == 1).await;
    assert_eq!(stats.invalid.load(Ordering::SeqCst), 1);
    assert_eq!(stats.rejected.load(Ordering::SeqCst), 1);
    assert_eq!(
        *ds.requests.lock().expect("lock"),
        1,
        "the broken event was never sent"
    );
    assert_eq!(ds.received.lock().expect("lock")[0]["resource_id"], "wfe-b");
    let reasons = rejected_files(dir.path(), ".reason");
    let reason =
        std::fs::read_to_string(dir.path().join("rejected").join(&reasons[0])).expect("reason");
    assert!(reason.contains("correlation_id"), "{reason}");
}
