//! Status edits that may wait: the AuditRecorded condition and agent reports that change no
//! phase (the primitive was created). Each is held for at most the coalescing window and
//! goes out with the next write of its execution, or on its own when the window ends.
//!
//! A zero-duration run then costs one write for Running (with ExecutionCreated) and one
//! for Completed (with the started event's AuditRecorded) instead of four. What a crash
//! loses here is recovered: an agent reports its primitives again when it reconnects, and
//! the audit sweep regenerates unlisted events (stable ids) and lists them.
//!
//! ```text
//!  defer(key, edit) ──► pending[key] ──next update_status(key)──► applied in that write
//!                            └──window ends──► flush: a write of its own
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use super::StatusWriter;
use crate::store::ExecKey;

/// An edit that can be applied again to a fresher object; returns whether it changed the
/// status.
pub type DeferredEdit =
    Arc<dyn Fn(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> bool + Send + Sync>;

#[derive(Default)]
struct Pending {
    edits: Vec<DeferredEdit>,
    due: Option<Instant>,
}

/// The deferred edits of every execution.
#[derive(Default)]
pub struct Deferred {
    pending: parking_lot::Mutex<HashMap<ExecKey, Pending>>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("executions", &self.pending.lock().len())
            .finish()
    }
}

impl Deferred {
    /// Holds `edit` for `key` until its next write or `window` from now.
    pub fn defer(&self, key: &ExecKey, edit: DeferredEdit, window: Duration) {
        let mut pending = self.pending.lock();
        let p = pending.entry(key.clone()).or_default();
        p.edits.push(edit);
        if p.due.is_none() {
            p.due = Some(Instant::now() + window);
            self.wake.notify_one();
        }
    }

    /// The edits held for `key` now (applied by the next write, removed once it commits).
    pub fn snapshot(&self, key: &ExecKey) -> Vec<DeferredEdit> {
        self.pending
            .lock()
            .get(key)
            .map(|p| p.edits.clone())
            .unwrap_or_default()
    }

    /// Drops the first `n` edits of `key`: a write committed them.
    pub fn committed(&self, key: &ExecKey, n: usize) {
        if n == 0 {
            return;
        }
        let mut pending = self.pending.lock();
        if let Some(p) = pending.get_mut(key) {
            p.edits.drain(..n.min(p.edits.len()));
            if p.edits.is_empty() {
                pending.remove(key);
            }
        }
    }

    /// Drops everything held for `key` (it is gone).
    pub fn forget(&self, key: &ExecKey) {
        self.pending.lock().remove(key);
    }

    /// Whether something is held for `key`.
    pub fn holds(&self, key: &ExecKey) -> bool {
        self.pending.lock().contains_key(key)
    }

    /// Keys whose window ended by `now` (all of them when `now` is None), and the next due.
    fn due(&self, now: Option<Instant>) -> (Vec<ExecKey>, Option<Instant>) {
        let mut pending = self.pending.lock();
        let mut keys = Vec::new();
        let mut next: Option<Instant> = None;
        for (k, p) in pending.iter_mut() {
            match (p.due, now) {
                (Some(d), Some(now)) if d > now => next = Some(next.map_or(d, |n| n.min(d))),
                (Some(_), _) => {
                    p.due = None;
                    keys.push(k.clone());
                }
                (None, _) => {}
            }
        }
        (keys, next)
    }
}

impl Deferred {
    /// Hands each execution whose window ended to `flush` as the window ends, until
    /// `shutdown`; then returns every execution still waiting. Tokio's clock, so the
    /// windows can be tested in paused time.
    async fn flush_when_due(
        &self,
        shutdown: &CancellationToken,
        mut flush: impl FnMut(ExecKey),
    ) -> Vec<ExecKey> {
        loop {
            let (keys, next) = self.due(Some(Instant::now()));
            keys.into_iter().for_each(&mut flush);
            let sleep = next.map_or(Duration::from_secs(3600), |n| {
                n.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
            }
        }
        self.due(None).0
    }
}

/// Flushes edits whose window ended, and everything at shutdown.
pub async fn run(writer: Arc<StatusWriter>, shutdown: CancellationToken) {
    let flusher = writer.clone();
    let leftovers = writer
        .deferred
        .flush_when_due(&shutdown, move |key| {
            let writer = flusher.clone();
            tokio::spawn(async move { flush(&writer, &key).await });
        })
        .await;
    futures::future::join_all(leftovers.iter().map(|k| flush(&writer, k))).await;
}

/// A write carrying only the deferred edits of `key`.
async fn flush(writer: &StatusWriter, key: &ExecKey) {
    if let Err(e) = writer.flush_deferred(key).await {
        tracing::warn!(execution = %key, error = %e, "writing deferred status edits failed; they are recovered later");
        writer.deferred.forget(key);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    fn key(name: &str) -> ExecKey {
        ExecKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn edit() -> DeferredEdit {
        Arc::new(|_, _, _| true)
    }

    /// Runs the flush loop on `d`, sending every key it flushes to the returned receiver.
    fn flushing(
        d: &Arc<Deferred>,
        stop: &CancellationToken,
    ) -> (
        mpsc::UnboundedReceiver<ExecKey>,
        tokio::task::JoinHandle<Vec<ExecKey>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (d, stop) = (d.clone(), stop.clone());
        let task =
            tokio::spawn(
                async move { d.flush_when_due(&stop, move |k| tx.send(k).unwrap()).await },
            );
        (rx, task)
    }

    async fn advance(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_edit_is_flushed_when_its_first_window_ends_not_later() {
        let d = Arc::new(Deferred::default());
        let stop = CancellationToken::new();
        let (mut flushed, _task) = flushing(&d, &stop);
        d.defer(&key("a"), edit(), Duration::from_secs(1));
        advance(600).await;
        // A second edit rides in the first one's window; it does not extend it.
        d.defer(&key("a"), edit(), Duration::from_secs(1));
        advance(399).await;
        assert!(
            flushed.try_recv().is_err(),
            "flushed before its window ended"
        );
        advance(2).await;
        assert_eq!(flushed.try_recv().ok(), Some(key("a")));
        advance(5_000).await;
        assert!(flushed.try_recv().is_err(), "flushed twice");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_commits_the_edits_leaves_nothing_to_flush() {
        let d = Arc::new(Deferred::default());
        let stop = CancellationToken::new();
        let (mut flushed, _task) = flushing(&d, &stop);
        d.defer(&key("a"), edit(), Duration::from_secs(1));
        d.defer(&key("b"), edit(), Duration::from_secs(3));
        advance(500).await;
        d.committed(&key("a"), 1);
        advance(1_000).await;
        assert!(flushed.try_recv().is_err(), "a committed edit was flushed");
        advance(1_600).await;
        assert_eq!(flushed.try_recv().ok(), Some(key("b")));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_hands_back_what_still_waits() {
        let d = Arc::new(Deferred::default());
        let stop = CancellationToken::new();
        let (mut flushed, task) = flushing(&d, &stop);
        d.defer(&key("a"), edit(), Duration::from_secs(60));
        advance(10).await;
        stop.cancel();
        assert_eq!(task.await.unwrap(), vec![key("a")]);
        assert!(flushed.try_recv().is_err());
    }
}
