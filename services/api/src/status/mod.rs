//! The one writer of execution status.
//!
//! Every status change goes through [`update_status`]: serialized per execution inside this
//! process, written to the status subresource with the resourceVersion it was computed from
//! (optimistic concurrency across replicas), retried on conflict from a fresh read. Only the
//! write that commits a phase change runs its effects, after the commit: the audit event,
//! and the metrics. So each transition is audited once.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use kube::api::PostParams;
use wfe_core::{FailureReason, Phase};
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use crate::audit::AuditKind;
use crate::ctx::Ctx;
use crate::error::{Error, Result, is_conflict, is_not_found};
use crate::store::{ExecKey, phase_of};

pub mod audit_sync;
pub mod deferred;
pub mod intents;
pub mod report;
pub mod transitions;

/// Per-execution write serialization inside one process.
#[derive(Debug, Default)]
pub struct StatusWriter {
    locks: parking_lot::Mutex<HashMap<ExecKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl StatusWriter {
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

/// Reads, edits and writes the status of one execution, retrying on conflict. `edit` gets
/// the current object, the status to edit and `now`; it may be called more than once.
pub async fn update_status<F>(ctx: &Ctx, key: &ExecKey, edit: F) -> Result<Option<Committed>>
where
    F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
{
    update(ctx, key, edit, false).await
}

/// Writes the deferred edits of `key` on their own (their window ended).
pub async fn flush_deferred(ctx: &Ctx, key: &ExecKey) -> Result<Option<Committed>> {
    update(ctx, key, |_, _, _| Edit::Skip, true).await
}

/// [`update_status`]; with `flush`, the deferred edits are written even when `edit` skips
/// (otherwise they only ride along with a write `edit` asks for).
async fn update<F>(ctx: &Ctx, key: &ExecKey, mut edit: F, flush: bool) -> Result<Option<Committed>>
where
    F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
{
    let lock = ctx.writer.lock_for(key);
    let result = {
        let _guard = lock.lock().await;
        write_loop(ctx, key, &mut edit, flush).await
    };
    drop(lock);
    ctx.writer.tidy(key);
    let Some((committed, intent)) = result? else {
        return Ok(None);
    };
    if committed.from != committed.to {
        after_transition(ctx, &committed).await;
    }
    drop(intent); // its events are recorded (or the failure is written)
    Ok(Some(committed))
}

async fn write_loop<F>(
    ctx: &Ctx,
    key: &ExecKey,
    edit: &mut F,
    flush: bool,
) -> Result<Option<(Committed, Option<intents::IntentGuard>)>>
where
    F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
{
    let api = ctx.api(&key.namespace);
    let mut current = match ctx.index.get(key) {
        Some(obj) => (*obj).clone(),
        None => fetch(ctx, key).await?,
    };
    // Edits waiting for a write of this execution ride along with this one.
    let deferred = ctx.deferred.snapshot(key);
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
                    ctx.deferred.committed(key, deferred.len()); // they change nothing now
                }
                return Ok(None);
            }
        };
        let from = phase_of(&current);
        let mut next = current.clone();
        next.status = Some(status);
        let intent = list_audit(ctx, key, &current, &mut next, from, now).await;
        match api
            .replace_status(&key.name, &PostParams::default(), &next)
            .await
        {
            Ok(stored) => {
                ctx.deferred.committed(key, deferred.len());
                let to = phase_of(&stored);
                ctx.index.apply(stored.clone());
                let committed = Committed {
                    obj: stored,
                    from,
                    to,
                    audit_listed: intent.is_some(),
                };
                return Ok(Some((committed, intent)));
            }
            Err(e) if is_conflict(&e) => current = fetch(ctx, key).await?,
            Err(e) if is_not_found(&e) => {
                ctx.deferred.forget(key);
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

async fn fetch(ctx: &Ctx, key: &ExecKey) -> Result<WorkflowExecution> {
    match ctx.api(&key.namespace).get(&key.name).await {
        Ok(obj) => {
            ctx.index.apply(obj.clone());
            Ok(obj)
        }
        Err(e) if is_not_found(&e) => Err(Error::NotFound {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The audit events of a committed transition, in order.
pub fn audit_kinds(c: &Committed) -> Vec<AuditKind> {
    audit_kinds_between(c.obj.status.as_ref(), c.from, c.to)
}

/// The audit events of a transition from `from` to `to` ending in `status`, in order.
fn audit_kinds_between(
    status: Option<&WorkflowExecutionStatus>,
    from: Phase,
    to: Phase,
) -> Vec<AuditKind> {
    let Some(status) = status else {
        return Vec::new();
    };
    if from == to {
        return Vec::new();
    }
    let mut kinds = Vec::new();
    let started = status.start_time.is_some();
    if from == Phase::Pending
        && started
        && matches!(to, Phase::Running | Phase::Completed | Phase::Failed)
    {
        kinds.push(AuditKind::Started);
    }
    kinds.extend(audit_sync::terminal_kind(status, to));
    kinds
}

/// Lists a terminal transition's events in the AuditRecorded condition of the write that
/// makes it, behind a synced intent. Without the intent (the journal failed) the condition
/// is left alone and written after the events are recorded, as upstream does.
///
/// Only terminal writes: the sync can stall on a busy disk, and Running must not wait for
/// it (the started event's condition rides along with a later write, see [`deferred`]).
async fn list_audit(
    ctx: &Ctx,
    key: &ExecKey,
    current: &WorkflowExecution,
    next: &mut WorkflowExecution,
    from: Phase,
    now: Timestamp,
) -> Option<intents::IntentGuard> {
    let to = phase_of(next);
    if !to.is_terminal() {
        return None;
    }
    let kinds = audit_kinds_between(next.status.as_ref(), from, to);
    if kinds.is_empty() {
        return None;
    }
    let types: Vec<&'static str> = kinds.iter().map(AuditKind::event_type).collect();
    let intent = match ctx.audit.intents().begin(key, &types).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(execution = %key, error = %e, "audit intent journal failed; AuditRecorded follows the events");
            return None;
        }
    };
    let status = next.status.get_or_insert_with(Default::default);
    audit_sync::list_recorded(current, status, &types, None, now);
    Some(intent)
}

/// Effects of a committed phase change: audit and metrics (a terminal holder frees its
/// target lock by being terminal, see [`crate::lock`]). Boxed: it writes the
/// AuditRecorded condition through [`update_status`] again.
fn after_transition<'a>(
    ctx: &'a Ctx,
    c: &'a Committed,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    Box::pin(after_transition_inner(ctx, c))
}

async fn after_transition_inner(ctx: &Ctx, c: &Committed) {
    let key = ExecKey::of(&c.obj);
    tracing::info!(execution = %key, from = %c.from, to = %c.to, "phase transition");
    let kinds = audit_kinds(c);
    if c.to.is_terminal() {
        record_terminal_metrics(ctx, c);
    }
    if c.audit_listed {
        audit_sync::record_listed(ctx, &c.obj, &kinds).await;
    } else {
        audit_sync::record(ctx, &c.obj, &kinds).await;
    }
}

fn record_terminal_metrics(ctx: &Ctx, c: &Committed) {
    let status = c.obj.status.clone().unwrap_or_default();
    let cancelled = status
        .failure_details
        .as_ref()
        .is_some_and(|f| f.reason == FailureReason::Cancelled.as_str());
    let outcome = if cancelled {
        "Cancelled"
    } else {
        c.to.as_str()
    };
    let secs = status
        .duration
        .as_deref()
        .and_then(crate::convert::parse_go)
        .map(|d| d.as_secs_f64());
    ctx.metrics
        .terminal(&c.obj.spec.execution_engine, outcome, secs);
}
