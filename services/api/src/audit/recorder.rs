//! The audit recorder: records the events of committed transitions, keeps the
//! AuditRecorded condition, and regenerates what a crash left unrecorded.
//!
//! The status writer hands every committed phase change over a bounded channel
//! ([`record_transitions`]); the events of one execution are recorded in the order of its
//! transitions, different executions concurrently. A transition is committed first and
//! audited after; a process that dies in between leaves an execution whose AuditRecorded
//! condition does not list every event its status implies. [`run`] finds those at start-up
//! and then periodically, and regenerates the missing events. Their ids are stable, so a
//! sink or receiver that already has one drops it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wfe_core::conditions;
use wfe_core::{FailureReason, Phase};
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use super::AuditKind;
use super::events::{expected_kinds, list_recorded, missing_kinds, recorded_types};
use crate::ctx::{Ctx, SharedCtx};
use crate::status::{Committed, Edit, Transition, audit_kinds};
use crate::store::ExecKey;

/// Transitions being recorded at once, at most.
const RECORDING_AT_ONCE: usize = 64;

/// Records the transitions the status writer hands over until `shutdown`, then those
/// already queued.
pub async fn record_transitions(
    ctx: SharedCtx,
    mut transitions: mpsc::Receiver<Transition>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(RECORDING_AT_ONCE));
    // The last recording of each execution: the next waits for it, so its events keep
    // the order of its transitions.
    let mut last: HashMap<ExecKey, JoinHandle<()>> = HashMap::new();
    loop {
        let next = tokio::select! {
            t = transitions.recv() => t,
            _ = shutdown.cancelled() => {
                transitions.close();
                transitions.recv().await
            }
        };
        let Some(t) = next else { break };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let key = ExecKey::of(&t.committed.obj);
        let before = last.remove(&key);
        let ctx = ctx.clone();
        let handle = tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            record_transition(&ctx, t).await;
            drop(slot);
        });
        last.insert(key, handle);
        if last.len() > RECORDING_AT_ONCE * 4 {
            last.retain(|_, h| !h.is_finished());
        }
    }
    futures::future::join_all(last.into_values()).await;
}

/// The effects of one committed phase change: terminal metrics, then its events (the
/// intent, if any, is done when `t` drops).
async fn record_transition(ctx: &Ctx, t: Transition) {
    let c = &t.committed;
    let kinds = audit_kinds(c);
    if c.to.is_terminal() {
        record_terminal_metrics(ctx, c);
    }
    if c.audit_listed {
        record_listed(ctx, &c.obj, &kinds).await;
    } else {
        record(ctx, &c.obj, &kinds).await;
    }
}

fn record_terminal_metrics(ctx: &Ctx, c: &Committed) {
    let status = c.obj.status.clone().unwrap_or_default();
    let cancelled = status
        .failure_details
        .as_ref()
        .is_some_and(|f| f.reason == FailureReason::Cancelled);
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

/// Marks an execution as being audited by this process; cleared on drop.
struct Auditing<'a> {
    ctx: &'a Ctx,
    key: ExecKey,
}

impl Drop for Auditing<'_> {
    fn drop(&mut self) {
        self.ctx.auditing.lock().remove(&self.key);
    }
}

/// Records `kinds` in order (stopping at the first failure) and writes the AuditRecorded
/// condition with what is now recorded.
pub async fn record(ctx: &Ctx, obj: &WorkflowExecution, kinds: &[AuditKind]) {
    if kinds.is_empty() {
        return;
    }
    let key = ExecKey::of(obj);
    ctx.auditing.lock().insert(key.clone());
    let _marker = Auditing {
        ctx,
        key: key.clone(),
    };
    let mut done = Vec::new();
    let mut error = None;
    for kind in kinds {
        match ctx.audit.record(obj, kind).await {
            Ok(()) => done.push(kind.event_type()),
            Err(e) => {
                ctx.metrics.audit_write_failed();
                tracing::error!(execution = %key, event = kind.event_type(), error = %e, "audit write failed");
                error = Some(e.to_string());
                break;
            }
        }
    }
    set_condition(ctx, &key, &done, error.as_deref()).await;
}

/// Sets AuditRecorded to the union of what the stored condition lists and `done`, or to
/// False with the error. Upstream writes it on its own after each event; here it rides
/// along with the execution's next write (see [`crate::status::deferred`]), unless the coalescing
/// window is zero.
async fn set_condition(ctx: &Ctx, key: &ExecKey, done: &[&'static str], error: Option<&str>) {
    let done = done.to_vec();
    let error = error.map(str::to_owned);
    let edit = move |obj: &WorkflowExecution, status: &mut WorkflowExecutionStatus, now| {
        list_recorded(obj, status, &done, error.as_deref(), now)
    };
    let window = ctx.config.status_coalesce_window;
    if !window.is_zero() {
        ctx.writer.defer(key, Arc::new(edit), window);
        return;
    }
    let res = ctx
        .writer
        .update(key, |obj, status, now| {
            if edit(obj, status, now) {
                Edit::Write
            } else {
                Edit::Skip
            }
        })
        .await;
    if let Err(e) = res {
        tracing::warn!(execution = %key, error = %e, "writing AuditRecorded failed");
    }
}

/// Records the events a transition's write already listed in AuditRecorded. A failure is
/// written at once: the condition turns False and lists only what was recorded, so the
/// sweep regenerates the rest.
pub async fn record_listed(ctx: &Ctx, obj: &WorkflowExecution, kinds: &[AuditKind]) {
    let key = ExecKey::of(obj);
    for (i, kind) in kinds.iter().enumerate() {
        let Err(e) = ctx.audit.record(obj, kind).await else {
            continue;
        };
        ctx.metrics.audit_write_failed();
        tracing::error!(execution = %key, event = kind.event_type(), error = %e, "audit write failed");
        let unrecorded: Vec<&'static str> = kinds[i..].iter().map(AuditKind::event_type).collect();
        let error = e.to_string();
        let res = ctx
            .writer
            .update(&key, |obj, status, now| {
                let mut listed = recorded_types(status);
                listed.retain(|t| !unrecorded.contains(t));
                // Rebuild the condition from what was really recorded.
                status
                    .conditions
                    .retain(|c| c.type_ != conditions::types::AUDIT_RECORDED);
                list_recorded(obj, status, &listed, Some(&error), now);
                Edit::Write
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(execution = %key, error = %e, "writing AuditRecorded=False failed");
        }
        return;
    }
}

/// Replays the intents an earlier process left (see [`super::intents`]): regenerates the
/// events their executions imply now. An intent whose write never committed implies none.
async fn replay_intents(ctx: &Ctx) {
    let left = ctx.audit.take_leftover_intents();
    if !left.is_empty() {
        tracing::info!(
            intents = left.len(),
            "replaying audit intents an earlier process left"
        );
    }
    for intent in left {
        let Some(obj) = ctx.index.get(&intent.key()) else {
            continue;
        };
        let kinds: Vec<AuditKind> = expected_kinds(&obj)
            .into_iter()
            .filter(|k| intent.types.iter().any(|t| t == k.event_type()))
            .collect();
        record(ctx, &obj, &kinds).await;
    }
    ctx.audit.intents().replayed();
}

/// Regenerates missing events: once the index synced, then every resync interval.
pub async fn run(ctx: SharedCtx, shutdown: CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = ctx.index.wait_synced() => {}
    }
    replay_intents(&ctx).await;
    let mut tick = tokio::time::interval(ctx.config.audit_resync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        sweep(&ctx).await;
    }
}

/// One pass over every execution.
async fn sweep(ctx: &Ctx) {
    let phases = [
        Phase::Running,
        Phase::Completed,
        Phase::Failed,
        Phase::Skipped,
    ];
    let all: Vec<_> = phases
        .into_iter()
        .flat_map(|p| ctx.index.by_phase(p))
        .collect();
    for obj in all {
        let key = ExecKey::of(&obj);
        if ctx.auditing.lock().contains(&key) || ctx.writer.audit_pending(&key) {
            continue; // this process is recording it, or its condition is about to be written
        }
        let missing = missing_kinds(&obj);
        if !missing.is_empty() {
            let types: Vec<_> = missing.iter().map(AuditKind::event_type).collect();
            tracing::info!(execution = %key, events = ?types, "regenerating audit events a crash left unrecorded");
            record(ctx, &obj, &missing).await;
        }
    }
}
