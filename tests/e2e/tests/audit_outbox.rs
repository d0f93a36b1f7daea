//! The DataStorage audit sink behind its on-disk outbox: events recorded while DataStorage
//! is down survive a SIGKILL of workflow-api and are delivered once it is back.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use wfe_e2e::clients::condition;
use wfe_e2e::v1::Phase;
use wfe_e2e::{Component, Req, Stack, StackOptions, eventually};

/// A DataStorage stand-in: `POST /api/v1/audit/events/batch`, 503 while down.
#[derive(Default)]
struct DataStorage {
    up: AtomicBool,
    refused: AtomicUsize,
    received: Mutex<Vec<Value>>,
}

async fn batch(State(ds): State<Arc<DataStorage>>, Json(events): Json<Vec<Value>>) -> StatusCode {
    if !ds.up.load(Ordering::SeqCst) {
        ds.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    ds.received.lock().unwrap().extend(events);
    StatusCode::CREATED
}

async fn start_datastorage() -> (Arc<DataStorage>, String) {
    let ds = Arc::new(DataStorage::default());
    let app = Router::new()
        .route("/api/v1/audit/events/batch", post(batch))
        .with_state(ds.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (ds, url)
}

/// Distinct event ids per event type among the events about `execution`.
fn ids_by_type(events: &[Value], execution: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.to_string().contains(execution)) {
        let ids = out
            .entry(e["event_type"].as_str().unwrap().to_owned())
            .or_default();
        let id = e["event_id"].as_str().unwrap().to_owned();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_survives_a_sigkill_and_a_datastorage_outage() {
    let (ds, url) = start_datastorage().await;
    let outbox = tempfile::tempdir().unwrap();
    let opts = StackOptions::default()
        .counts(1, 1, 0)
        .api_flag("--audit-sink", "datastorage")
        .api_flag("--datastorage-url", &url)
        .api_flag("--audit-outbox-dir", outbox.path().to_str().unwrap())
        .api_flag("--audit-retry-base", "200ms");
    let mut stack = Stack::start(opts).await.expect("stack");

    let exec = stack
        .run(&Req::job("default/Deployment/audited").duration("0s"))
        .await
        .expect("execute");
    stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed");
    // Recorded means in the outbox: DataStorage refused every delivery so far.
    eventually(
        Duration::from_secs(20),
        "AuditRecorded listing both events",
        || async {
            let e = stack.get(&exec.name).await?;
            let c = condition(&e, "AuditRecorded").map(|c| (c.status.clone(), c.message.clone()));
            Ok(c.filter(|(s, m)| s == "True" && m.contains("started") && m.contains("completed")))
        },
    )
    .await
    .expect("AuditRecorded");
    eventually(Duration::from_secs(10), "a refused delivery", || async {
        Ok((ds.refused.load(Ordering::SeqCst) > 0).then_some(()))
    })
    .await
    .expect("DataStorage was asked");
    assert!(ds.received.lock().unwrap().is_empty());

    stack.kill(Component::Api(0)).expect("SIGKILL");
    ds.up.store(true, Ordering::SeqCst);
    stack.restart(Component::Api(0)).await.expect("restart");

    // DataStorage's contract and upstream: a started run is sent as selection.completed
    // and execution.started (wfe_audit::wire); the file sink keeps workflow.started.
    let delivered = eventually(Duration::from_secs(20), "both events delivered", || async {
        let got = ids_by_type(&ds.received.lock().unwrap(), &exec.name);
        Ok((got.len() >= 3).then_some(got))
    })
    .await
    .expect("delivery after the outage");
    let types: Vec<&str> = delivered.keys().map(String::as_str).collect();
    assert_eq!(
        types,
        [
            "workflowexecution.execution.started",
            "workflowexecution.selection.completed",
            "workflowexecution.workflow.completed",
        ]
    );
    assert!(
        delivered.values().all(|ids| ids.len() == 1),
        "each event generated once, with one id: {delivered:?}"
    );
}
