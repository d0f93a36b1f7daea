//! The one writer of execution status.
//!
//! Every status change goes through [`update_status`]: serialized per execution inside this
//! process, written to the status subresource with the resourceVersion it was computed from
//! (optimistic concurrency across replicas), retried on conflict from a fresh read. Only the
//! write that commits a phase change hands it, after the commit, to the audit recorder
//! through a bounded channel ([`Transition`]): its events, the AuditRecorded condition and
//! the terminal metrics happen there. So each transition is audited once, and the writer
//! never calls back into what calls it.
//!
//! ```text
//!  callers ──update(key, edit)──► StatusWriter ──replace_status (rv)──► kube-apiserver
//!                                      │ phase changed
//!                                      ▼ bounded channel
//!                               crate::audit::recorder (events, AuditRecorded, metrics)
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::mpsc;
use wfe_core::Phase;
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use crate::audit::AuditKind;
use crate::audit::events::{kinds_between, list_recorded};
use crate::audit::intents::{IntentGuard, IntentJournal};
use crate::error::{Error, Result, is_conflict, is_not_found};
use crate::store::{ExecKey, Index, phase_of};
use deferred::{Deferred, DeferredEdit};

pub mod deferred;
pub mod report;
pub mod transitions;

/// The one writer of execution status of an API instance.
pub struct StatusWriter {
    client: kube::Client,
    index: Arc<Index>,
    /// Edits waiting to ride along with an execution's next write.
    deferred: Deferred,
    /// Where a terminal transition's events are promised before its write.
    intents: Arc<IntentJournal>,
    /// Committed phase changes, to the audit recorder.
    transitions: mpsc::Sender<Transition>,
    /// Executions with a transition handed over and not yet recorded.
    unaudited: Arc<parking_lot::Mutex<HashMap<ExecKey, usize>>>,
    /// Per-execution write serialization inside this process.
    locks: parking_lot::Mutex<HashMap<ExecKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter")
            .field("deferred", &self.deferred)
            .finish_non_exhaustive()
    }
}

/// A committed phase change on its way to the audit recorder. The intent (if the write
/// listed its events) and the unaudited mark are held until the recorder drops it.
#[derive(Debug)]
pub struct Transition {
    /// The write.
    pub committed: Committed,
    /// Outstanding until the events are recorded (see [`crate::audit::intents`]).
    pub intent: Option<IntentGuard>,
    _unaudited: UnauditedMark,
}

#[derive(Debug)]
struct UnauditedMark {
    marks: Arc<parking_lot::Mutex<HashMap<ExecKey, usize>>>,
    key: ExecKey,
}

impl UnauditedMark {
    fn new(marks: &Arc<parking_lot::Mutex<HashMap<ExecKey, usize>>>, key: ExecKey) -> Self {
        *marks.lock().entry(key.clone()).or_default() += 1;
        Self {
            marks: marks.clone(),
            key,
        }
    }
}

impl Drop for UnauditedMark {
    fn drop(&mut self) {
        let mut marks = self.marks.lock();
        if let Some(n) = marks.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                marks.remove(&self.key);
            }
        }
    }
}

/// How many committed transitions may wait for the recorder before writers wait too.
pub const TRANSITIONS_QUEUED: usize = 1024;

impl StatusWriter {
    /// A writer over `index`, promising events in `intents`; committed phase changes go to
    /// the returned receiver (the audit recorder's).
    pub fn new(
        client: kube::Client,
        index: Arc<Index>,
        intents: Arc<IntentJournal>,
    ) -> (Arc<Self>, mpsc::Receiver<Transition>) {
        let (transitions, rx) = mpsc::channel(TRANSITIONS_QUEUED);
        let me = Self {
            client,
            index,
            deferred: Deferred::default(),
            intents,
            transitions,
            unaudited: Arc::default(),
            locks: parking_lot::Mutex::default(),
        };
        (Arc::new(me), rx)
    }

    /// Holds `edit` for `key` until its next write or `window` from now.
    pub fn defer(&self, key: &ExecKey, edit: DeferredEdit, window: std::time::Duration) {
        self.deferred.defer(key, edit, window);
    }

    /// Whether an edit of `key` waits for a write, or one of its transitions for the
    /// recorder: its AuditRecorded condition is about to change.
    pub fn audit_pending(&self, key: &ExecKey) -> bool {
        self.deferred.holds(key) || self.unaudited.lock().contains_key(key)
    }

    /// Reads, edits and writes the status of one execution, retrying on conflict. `edit`
    /// gets the current object, the status to edit and `now`; it may be called more than once.
    pub async fn update<F>(&self, key: &ExecKey, edit: F) -> Result<Option<Committed>>
    where
        F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
    {
        self.write(key, edit, false).await
    }

    /// Writes the deferred edits of `key` on their own (their window ended).
    pub async fn flush_deferred(&self, key: &ExecKey) -> Result<Option<Committed>> {
        self.write(key, |_, _, _| Edit::Skip, true).await
    }

    fn lock_for(&self, key: &ExecKey) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(key.clone()).or_default().clone()
    }

    fn tidy(&self, key: &ExecKey) {
        let mut locks = self.locks.lock();
        // Only this map and no waiter hold it: nobody else is writing this execution.
        if locks.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(key);
        }
    }

    fn api(&self, namespace: &str) -> Api<WorkflowExecution> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// A committed status write.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The object as stored.
    pub obj: WorkflowExecution,
    /// Phase before.
    pub from: Phase,
    /// Phase after.
    pub to: Phase,
    /// The write listed the transition's events in AuditRecorded (an intent covers them
    /// until they are recorded, see [`intents`]).
    pub audit_listed: bool,
}

/// What an update closure decided.
pub enum Edit {
    /// Write the edited status.
    Write,
    /// Nothing to change.
    Skip,
}

const MAX_ATTEMPTS: usize = 8;

impl StatusWriter {
    /// [`Self::update`]; with `flush`, the deferred edits are written even when `edit` skips
    /// (otherwise they only ride along with a write `edit` asks for).
    async fn write<F>(&self, key: &ExecKey, mut edit: F, flush: bool) -> Result<Option<Committed>>
    where
        F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
    {
        let lock = self.lock_for(key);
        let result = {
            let _guard = lock.lock().await;
            self.write_loop(key, &mut edit, flush).await
        };
        drop(lock);
        self.tidy(key);
        let Some((committed, intent)) = result? else {
            return Ok(None);
        };
        if committed.from != committed.to {
            self.hand_over(&committed, intent).await;
        }
        Ok(Some(committed))
    }

    /// Hands a committed phase change to the audit recorder (waiting while its queue is
    /// full: what is committed is never dropped unaudited).
    async fn hand_over(&self, committed: &Committed, intent: Option<IntentGuard>) {
        let key = ExecKey::of(&committed.obj);
        tracing::info!(execution = %key, from = %committed.from, to = %committed.to, "phase transition");
        let transition = Transition {
            committed: committed.clone(),
            intent,
            _unaudited: UnauditedMark::new(&self.unaudited, key.clone()),
        };
        if self.transitions.send(transition).await.is_err() {
            // Shutting down: the sweep of the next start records what this leaves.
            tracing::warn!(execution = %key, "the audit recorder has stopped; the transition is audited at the next start");
        }
    }

    async fn write_loop<F>(
        &self,
        key: &ExecKey,
        edit: &mut F,
        flush: bool,
    ) -> Result<Option<(Committed, Option<IntentGuard>)>>
    where
        F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
    {
        let api = self.api(&key.namespace);
        let mut current = match self.index.get(key) {
            Some(obj) => (*obj).clone(),
            None => self.fetch(key).await?,
        };
        // Edits waiting for a write of this execution ride along with this one.
        let deferred = self.deferred.snapshot(key);
        for _ in 0..MAX_ATTEMPTS {
            let now = Timestamp::now();
            let mut base = current.status.clone().unwrap_or_default();
            let mut deferred_changed = false;
            for d in &deferred {
                deferred_changed |= d(&current, &mut base, now);
            }
            let mut status = base.clone();
            let status = match edit(&current, &mut status, now) {
                Edit::Write => status,
                Edit::Skip if flush && deferred_changed => base,
                Edit::Skip => {
                    if flush {
                        self.deferred.committed(key, deferred.len()); // they change nothing now
                    }
                    return Ok(None);
                }
            };
            let from = phase_of(&current);
            let to = status.phase.unwrap_or(Phase::Pending);
            // The phase machine of wfe-core is the only judge of a phase change: this is
            // the one path to the status subresource, so no edit can skip it.
            if let Err(refused) = wfe_core::phase::transition(from, to) {
                tracing::error!(execution = %key, %refused, "a status edit broke the phase machine; not written");
                return Err(Error::Internal(format!("{key}: {refused}")));
            }
            let mut next = current.clone();
            next.status = Some(status);
            let intent = self.list_audit(key, &current, &mut next, from, now).await;
            match api
                .replace_status(&key.name, &PostParams::default(), &next)
                .await
            {
                Ok(stored) => {
                    self.deferred.committed(key, deferred.len());
                    let to = phase_of(&stored);
                    self.index.apply(stored.clone());
                    let committed = Committed {
                        obj: stored,
                        from,
                        to,
                        audit_listed: intent.is_some(),
                    };
                    return Ok(Some((committed, intent)));
                }
                Err(e) if is_conflict(&e) => current = self.fetch(key).await?,
                Err(e) if is_not_found(&e) => {
                    self.deferred.forget(key);
                    return Err(Error::NotFound {
                        namespace: key.namespace.clone(),
                        name: key.name.clone(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Aborted(format!(
            "status of {key} kept conflicting; retry"
        )))
    }

    async fn fetch(&self, key: &ExecKey) -> Result<WorkflowExecution> {
        match self.api(&key.namespace).get(&key.name).await {
            Ok(obj) => {
                self.index.apply(obj.clone());
                Ok(obj)
            }
            Err(e) if is_not_found(&e) => Err(Error::NotFound {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// The audit events of a committed transition, in order.
pub fn audit_kinds(c: &Committed) -> Vec<AuditKind> {
    kinds_between(c.obj.status.as_ref(), c.from, c.to)
}

impl StatusWriter {
    /// Lists a terminal transition's events in the AuditRecorded condition of the write that
    /// makes it, behind a synced intent. Without the intent (the journal failed) the condition
    /// is left alone and written after the events are recorded, as upstream does.
    ///
    /// Only terminal writes: the sync can stall on a busy disk, and Running must not wait for
    /// it (the started event's condition rides along with a later write, see [`deferred`]).
    async fn list_audit(
        &self,
        key: &ExecKey,
        current: &WorkflowExecution,
        next: &mut WorkflowExecution,
        from: Phase,
        now: Timestamp,
    ) -> Option<IntentGuard> {
        let to = phase_of(next);
        if !to.is_terminal() {
            return None;
        }
        let kinds = kinds_between(next.status.as_ref(), from, to);
        if kinds.is_empty() {
            return None;
        }
        let types: Vec<&'static str> = kinds.iter().map(AuditKind::event_type).collect();
        let intent = match self.intents.begin(key, &types).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(execution = %key, error = %e, "audit intent journal failed; AuditRecorded follows the events");
                return None;
            }
        };
        let status = next.status.get_or_insert_with(Default::default);
        list_recorded(current, status, &types, None, now);
        Some(intent)
    }
}
