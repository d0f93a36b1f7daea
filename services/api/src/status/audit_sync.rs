//! Audit after a crash. A transition is committed first and audited after; a process that
//! dies in between leaves an execution whose AuditRecorded condition does not list every
//! event its status implies. This task finds those at start-up and then periodically, and
//! regenerates the missing events. Their ids are stable, so a sink or receiver that already
//! has one drops it.
//!
//! The AuditRecorded condition lists the event types recorded so far (its message names
//! them), so the check needs no other status field.

use tokio_util::sync::CancellationToken;
use wfe_core::conditions::{self, ConditionStatus};
use wfe_core::{FailureReason, Phase};
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use super::{Edit, transitions, update_status};
use crate::audit::{AuditKind, EVENT_TYPES};
use crate::ctx::Ctx;
use crate::ctx::SharedCtx;
use crate::store::{ExecKey, phase_of};

/// The terminal event of a phase, if it has one.
pub fn terminal_kind(status: &WorkflowExecutionStatus, phase: Phase) -> Option<AuditKind> {
    match phase {
        Phase::Completed => Some(AuditKind::Completed),
        Phase::Skipped => Some(AuditKind::Skipped),
        Phase::Failed => {
            let cancelled = status
                .failure_details
                .as_ref()
                .is_some_and(|f| f.reason == FailureReason::Cancelled.as_str());
            Some(match (cancelled, status.cancel_request.clone()) {
                (true, Some(r)) => AuditKind::Cancelled {
                    by: r.requested_by,
                    reason: r.reason,
                },
                (true, None) => AuditKind::Cancelled {
                    by: "unknown".into(),
                    reason: String::new(),
                },
                (false, _) => AuditKind::Failed,
            })
        }
        Phase::Pending | Phase::Running => None,
    }
}

/// Every event the execution's status implies, in the order they happened.
pub fn expected_kinds(obj: &WorkflowExecution) -> Vec<AuditKind> {
    let Some(st) = &obj.status else {
        return Vec::new();
    };
    let phase = phase_of(obj);
    let mut kinds = Vec::new();
    if st.start_time.is_some() && matches!(phase, Phase::Running | Phase::Completed | Phase::Failed)
    {
        kinds.push(AuditKind::Started);
    }
    kinds.extend(terminal_kind(st, phase));
    if let Some(b) = st
        .block_clearance
        .as_ref()
        .filter(|b| !b.cleared_by.is_empty())
    {
        kinds.push(AuditKind::BlockCleared {
            by: b.cleared_by.clone(),
            reason: b.clear_reason.clone(),
        });
    }
    kinds
}

/// The event types the AuditRecorded condition lists as recorded.
pub fn recorded_types(status: &WorkflowExecutionStatus) -> Vec<&'static str> {
    let Some(c) = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::types::AUDIT_RECORDED)
    else {
        return Vec::new();
    };
    EVENT_TYPES
        .into_iter()
        .filter(|t| c.message.contains(t))
        .collect()
}

/// The implied events the condition does not list yet.
pub fn missing_kinds(obj: &WorkflowExecution) -> Vec<AuditKind> {
    let recorded = obj.status.as_ref().map(recorded_types).unwrap_or_default();
    expected_kinds(obj)
        .into_iter()
        .filter(|k| !recorded.contains(&k.event_type()))
        .collect()
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

/// Sets AuditRecorded in `status` to the union of what it lists and `done`, or to False
/// with the error; returns whether it changed.
pub fn list_recorded(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    done: &[&'static str],
    error: Option<&str>,
    now: jiff::Timestamp,
) -> bool {
    let mut types = recorded_types(status);
    types.extend(
        done.iter()
            .filter(|t| !types.contains(t))
            .collect::<Vec<_>>(),
    );
    let listed: Vec<&str> = EVENT_TYPES
        .into_iter()
        .filter(|t| types.contains(t))
        .collect();
    let listed = listed.join(", ");
    let update = match error {
        None => conditions::audit_recorded(&listed),
        Some(e) => conditions::audit_failed(&format!("{e} (recorded: {listed})")),
    };
    transitions::set_condition(obj, status, update, now)
}

/// Sets AuditRecorded to the union of what the stored condition lists and `done`, or to
/// False with the error. Upstream writes it on its own after each event; here it rides
/// along with the execution's next write (see [`super::deferred`]), unless the coalescing
/// window is zero.
async fn set_condition(ctx: &Ctx, key: &ExecKey, done: &[&'static str], error: Option<&str>) {
    let done = done.to_vec();
    let error = error.map(str::to_owned);
    let edit = move |obj: &WorkflowExecution, status: &mut WorkflowExecutionStatus, now| {
        list_recorded(obj, status, &done, error.as_deref(), now)
    };
    let window = ctx.config.status_coalesce_window;
    if !window.is_zero() {
        ctx.deferred.defer(key, std::sync::Arc::new(edit), window);
        return;
    }
    let res = update_status(ctx, key, |obj, status, now| {
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
        let res = update_status(ctx, &key, |obj, status, now| {
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

/// Whether every event the execution implies is recorded (and AuditRecorded is True).
pub fn audit_complete(obj: &WorkflowExecution) -> bool {
    let ok = obj.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == conditions::types::AUDIT_RECORDED
                && c.status == ConditionStatus::True.as_str()
        })
    });
    ok && missing_kinds(obj).is_empty()
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
        if ctx.auditing.lock().contains(&key) || ctx.deferred.holds(&key) {
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
