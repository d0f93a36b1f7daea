//! A fake DataStorage: `POST /api/v1/audit/events/batch`, answering 503 while "down". Like
//! the real one it validates every event of a batch (against DataStorage's contract as
//! `wfe_audit::contract` transcribes it, and against an `event_action` a test refuses) and
//! refuses the whole batch with 400 when one fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::Value;

#[derive(Default)]
struct Inner {
    up: AtomicBool,
    received: Mutex<Vec<Value>>,
    refused: Mutex<usize>,
    refuse_action: Mutex<Option<String>>,
    invalid: Mutex<usize>,
}

/// The fake server; dropping it stops nothing (the runtime ends with the test).
#[derive(Clone)]
pub struct FakeDataStorage {
    pub url: String,
    inner: Arc<Inner>,
}

async fn batch(State(s): State<Arc<Inner>>, Json(events): Json<Vec<Value>>) -> StatusCode {
    if !s.up.load(Ordering::SeqCst) {
        *s.refused.lock() += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let refuse = s.refuse_action.lock().clone();
    let bad = |e: &Value| {
        wfe_audit::contract::validate(e).is_err()
            || refuse.as_deref().is_some_and(|a| e["event_action"] == a)
    };
    if events.iter().any(bad) {
        *s.invalid.lock() += 1;
        return StatusCode::BAD_REQUEST;
    }
    s.received.lock().extend(events);
    StatusCode::CREATED
}

impl FakeDataStorage {
    /// Starts it, down (503) or up.
    pub async fn start(up: bool) -> Self {
        let inner = Arc::new(Inner::default());
        inner.up.store(up, Ordering::SeqCst);
        let app = Router::new()
            .route("/api/v1/audit/events/batch", post(batch))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    pub fn set_up(&self, up: bool) {
        self.inner.up.store(up, Ordering::SeqCst);
    }

    /// Refuses (400) every batch holding an event with this `event_action`.
    pub fn refuse_action(&self, action: &str) {
        *self.inner.refuse_action.lock() = Some(action.to_owned());
    }

    /// Batches refused with 400 (an invalid or refused event in them).
    pub fn invalid_batches(&self) -> usize {
        *self.inner.invalid.lock()
    }

    /// Batches refused while down.
    pub fn refused(&self) -> usize {
        *self.inner.refused.lock()
    }

    /// Every event received, in order, redeliveries included.
    pub fn events(&self) -> Vec<Value> {
        self.inner.received.lock().clone()
    }

    /// How often each event id was received.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for e in self.events() {
            *m.entry(e["event_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        m
    }

    /// Event types received for an execution name (resource_id), in order.
    pub fn types_for(&self, name: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["resource_id"] == name)
            .map(|e| e["event_type"].as_str().unwrap().to_owned())
            .collect()
    }
}
