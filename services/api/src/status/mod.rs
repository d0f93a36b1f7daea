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
pub async fn update_status<F>(ctx: &Ctx, key: &ExecKey, mut edit: F) -> Result<Option<Committed>>
where
    F: FnMut(&WorkflowExecution, &mut WorkflowExecutionStatus, Timestamp) -> Edit,
{
    let lock = ctx.writer.lock_for(key);
    let result = {
        let _guard = lock.lock().await;
        write_loop(ctx, key, &mut edit).await
    };
    drop(lock);
    ctx.writer.tidy(key);
    let committed = result?;
    if let Some(c) = &committed
        && c.from != c.to
    {
        after_transition(ctx, c).await;
    }
    Ok(committed)
}

async fn write_loop<F>(ctx: &Ctx, key: &ExecKey, edit: &mut F) -> Result<Option<Committed>>
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
            Edit::Skip if deferred_changed => base,
            Edit::Skip => {
                ctx.deferred.committed(key, deferred.len()); // they change nothing now
                return Ok(None);
            }
        };
        let from = phase_of(&current);
        let mut next = current.clone();
        next.status = Some(status);
        match api
            .replace_status(&key.name, &PostParams::default(), &next)
            .await
        {
            Ok(stored) => {
                ctx.deferred.committed(key, deferred.len());
                let to = phase_of(&stored);
                ctx.index.apply(stored.clone());
                return Ok(Some(Committed {
                    obj: stored,
                    from,
                    to,
                }));
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
    let status = c.obj.status.clone().unwrap_or_default();
    let mut kinds = Vec::new();
    let started = status.start_time.is_some();
    if c.from == Phase::Pending
        && started
        && matches!(c.to, Phase::Running | Phase::Completed | Phase::Failed)
    {
        kinds.push(AuditKind::Started);
    }
    kinds.extend(audit_sync::terminal_kind(&status, c.to));
    kinds
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
    audit_sync::record(ctx, &c.obj, &kinds).await;
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
