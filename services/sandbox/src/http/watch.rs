//! WATCH: a chunked stream of newline-delimited `{"type":..,"object":..}` events.
//!
//! Each watch runs in its own task reading the store's history ring from a cursor: it wakes on
//! the store's notify channel, renders what matches (turning selector transitions into
//! ADDED/DELETED as the real server does), and sends a batch per wake. A cursor that fell out
//! of the ring, or a [`crate::storage::Store::expire_watches`] call, ends the stream with an ERROR
//! event carrying `410 Expired`, which tells kube-rs and client-go to relist.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;

use super::read::Filter;
use super::{App, Req, Target, present, table};
use crate::machinery::error::{ApiError, ApiResult};
use crate::registry::resources::ResourceInfo;
use crate::storage::{EventType, Obj, ResKey, StoredEvent};

/// Default and maximum server-side watch duration (the real server uses 30–60 minutes).
const MAX_TIMEOUT: Duration = Duration::from_secs(1800);

struct Watch {
    app: Arc<App>,
    info: Arc<ResourceInfo>,
    res: ResKey,
    /// `info.api_version()`, computed once rather than per event.
    api_version: String,
    namespace: Option<String>,
    filter: Filter,
    bookmarks: bool,
    table: bool,
    metadata_only: bool,
    deadline: tokio::time::Instant,
}

/// Start a watch.
pub fn watch(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    let filter = Filter::from_req(&t.info, req)?;
    let timeout = match req.q("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        None => MAX_TIMEOUT,
    };
    let rv_param = req.q("resourceVersion").unwrap_or_default();
    let start_rv = match rv_param {
        "" | "0" => None,
        s => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}")))?,
        ),
    };
    let initial = start_rv.is_none() || req.q("sendInitialEvents") == Some("true");
    let w = Watch {
        app: app.clone(),
        info: t.info.clone(),
        res: t.info.storage(),
        api_version: t.info.api_version(),
        namespace: t.namespace.clone(),
        filter,
        bookmarks: req.q("allowWatchBookmarks") == Some("true"),
        table: req.wants_table(),
        metadata_only: req.wants_metadata(),
        deadline: tokio::time::Instant::now() + timeout.min(MAX_TIMEOUT),
    };
    let initial_end_marker = req.q("sendInitialEvents") == Some("true");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move { w.run(tx, start_rv, initial, initial_end_marker).await });
    let body = Body::from_stream(ReceiverStream::new(rx));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

impl Watch {
    async fn run(self, tx: Tx, start_rv: Option<u64>, initial: bool, end_marker: bool) {
        let store = self.app.backend.store.clone();
        let mut notify = store.subscribe();
        let mut epoch = store.subscribe_epoch();
        notify.borrow_and_update();
        epoch.borrow_and_update();
        let mut cursor = match start_rv {
            Some(rv) if !initial => rv,
            _ => {
                let (items, rv, _) =
                    store.list(&self.res, self.namespace.as_deref(), None, None, &|o| {
                        self.filter.matches(o)
                    });
                let mut buf = Vec::new();
                for obj in &items {
                    self.line(&mut buf, "ADDED", obj);
                }
                if end_marker {
                    self.bookmark(&mut buf, rv, true);
                }
                if !buf.is_empty() && tx.send(Ok(Bytes::from(buf))).await.is_err() {
                    return;
                }
                rv
            }
        };
        let mut tick = tokio::time::interval(self.app.bookmark_interval);
        tick.reset();
        loop {
            notify.borrow_and_update();
            let events = match store.events_since(cursor) {
                Ok(events) => events,
                Err(e) => {
                    let _ = tx.send(Ok(expired_line(e.requested, e.compacted))).await;
                    return;
                }
            };
            let mut buf = Vec::new();
            for e in &events {
                cursor = e.rv;
                self.render(&mut buf, e);
            }
            if !buf.is_empty() && tx.send(Ok(Bytes::from(buf))).await.is_err() {
                return;
            }
            tokio::select! {
                changed = notify.changed() => if changed.is_err() { return },
                _ = epoch.changed() => {
                    let _ = tx.send(Ok(expired_line(cursor, store.current_rv()))).await;
                    return;
                }
                _ = tick.tick(), if self.bookmarks => {
                    let mut buf = Vec::new();
                    self.bookmark(&mut buf, cursor, false);
                    if tx.send(Ok(Bytes::from(buf))).await.is_err() { return }
                }
                _ = tokio::time::sleep_until(self.deadline) => return,
                _ = self.app.shutdown.cancelled() => return,
                _ = tx.closed() => return,
            }
        }
    }

    /// Append the line for `e` if it concerns this watch, mapping selector transitions.
    fn render(&self, buf: &mut Vec<u8>, e: &StoredEvent) {
        if e.res != self.res
            || self
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != e.key.namespace)
        {
            return;
        }
        let now = self.filter.matches(&e.object);
        let before = e.old.as_ref().is_some_and(|o| self.filter.matches(o));
        let kind = match (e.kind, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Deleted, true, _) => "DELETED",
            (EventType::Modified, true, true) => "MODIFIED",
            (EventType::Modified, false, true) => "ADDED",
            (EventType::Modified, true, false) => "DELETED",
            _ => return,
        };
        if self.plain(&e.object) {
            write_line(buf, kind, e.encoded_object());
        } else {
            self.line(buf, kind, &e.object);
        }
    }

    /// Whether this watch sends the stored object unchanged, so its shared encoding fits.
    fn plain(&self, obj: &Obj) -> bool {
        !self.table
            && !self.metadata_only
            && obj.get("apiVersion").and_then(Value::as_str) == Some(self.api_version.as_str())
    }

    fn line(&self, buf: &mut Vec<u8>, kind: &str, obj: &Obj) {
        let object = if self.table {
            table::build(
                &self.info,
                std::slice::from_ref(obj),
                None,
                crate::storage::object_rv(obj),
                jiff::Timestamp::now(),
            )
        } else if self.metadata_only {
            super::metadata_only(obj)
        } else {
            present(obj, &self.info)
        };
        let line = json!({"type": kind, "object": object});
        if serde_json::to_writer(&mut *buf, &line).is_ok() {
            buf.push(b'\n');
        }
    }

    fn bookmark(&self, buf: &mut Vec<u8>, rv: u64, initial_end: bool) {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        let line = json!({"type": "BOOKMARK", "object": obj});
        if serde_json::to_writer(&mut *buf, &line).is_ok() {
            buf.push(b'\n');
        }
    }
}

/// `{"type":kind,"object":object}` and a newline, around an already encoded object.
fn write_line(buf: &mut Vec<u8>, kind: &str, object: &[u8]) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    buf.extend_from_slice(object);
    buf.extend_from_slice(b"}\n");
}

fn expired_line(requested: u64, compacted: u64) -> Bytes {
    let status: Value = ApiError::expired(requested, compacted).to_status();
    let mut out =
        serde_json::to_vec(&json!({"type": "ERROR", "object": status})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Minimal `Stream` over an mpsc receiver (avoids another dependency for one adapter).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    /// Stream of the receiver's items; ends when every sender is gone.
    pub struct ReceiverStream<T>(mpsc::Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub fn new(rx: mpsc::Receiver<T>) -> Self {
            Self(rx)
        }
    }

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
