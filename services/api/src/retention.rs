//! Execution retention carried out: terminal WorkflowExecutions are deleted once
//! `--execution-retention` has passed since they ended, their audit events are delivered
//! (the audit trail is the long-term record), no agent session of this replica still
//! holds their primitive, and deleting them lifts no block of their target
//! ([`wfe_core::retention`] decides that, with the target's history from the index).
//!
//! ```text
//!  every pass:  index (terminal) ─► due? audited? released? verdict(history) ─► DELETE
//!                                                     (preconditions: uid, resourceVersion)
//! ```
//!
//! Every replica runs it; the preconditions make a deletion happen once, and a replica
//! that loses the race sees NotFound or Conflict, which are fine. An idempotency key is
//! remembered as long as its execution is kept: after the deletion the same key starts a
//! new execution.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions};
use tokio_util::sync::CancellationToken;
use wfe_core::Phase;
use wfe_core::retention::{Keep, verdict};
use wfe_k8s::WorkflowExecution;

use crate::audit::events::audit_complete;
use crate::convert::record_of;
use crate::ctx::{Ctx, SharedCtx};
use crate::error::{is_conflict, is_not_found};
use crate::store::{ExecKey, target_of};

/// Runs retention passes until `shutdown`; nothing when retention is off.
pub async fn run(ctx: SharedCtx, shutdown: CancellationToken) {
    let retention = ctx.config.execution_retention;
    if retention.is_zero() {
        tracing::info!("execution retention is off (0): executions are kept for ever");
        return;
    }
    let every = pass_interval(retention);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if ctx.index.is_synced() {
            pass(&ctx, Timestamp::now()).await;
        }
    }
}

/// A tenth of the retention, between a second and a minute: deletions are due days after
/// the end, so a minute late costs nothing, and a short test retention is kept closely.
fn pass_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Deletes every execution whose retention ended by `now`.
async fn pass(ctx: &Ctx, now: Timestamp) {
    let terminal = [Phase::Completed, Phase::Failed, Phase::Skipped]
        .into_iter()
        .flat_map(|p| ctx.index.by_phase(p));
    for obj in terminal {
        if deletable(ctx, &obj, now) {
            delete(ctx, &obj).await;
        }
    }
}

/// Whether `obj` may be deleted at `now` (see the module doc).
fn deletable(ctx: &Ctx, obj: &WorkflowExecution, now: Timestamp) -> bool {
    // Never before the primitive's own retention (its release waits for it), nor before
    // the target lock's grace (a lock whose holder is gone counts as held that long).
    let retention = ctx
        .config
        .execution_retention
        .max(ctx.config.primitive_retention)
        .max(ctx.config.lock_grace);
    let me = record_of(obj);
    let ended = me.ended_at();
    if ended.checked_add(retention).is_ok_and(|due| now < due) {
        return false; // the common case, decided before any other look
    }
    if !audit_complete(obj) || held_here(ctx, &ExecKey::of(obj)) {
        return false;
    }
    let history = crate::execute::history(ctx, &target_of(obj));
    match verdict(&ctx.policy, retention, &me, &history, now) {
        Ok(()) => true,
        Err(Keep::StillBlocks(reason)) => {
            tracing::debug!(execution = %ExecKey::of(obj), reason = reason.as_str(), "retention ended, kept: it still blocks its target");
            false
        }
        Err(_) => false,
    }
}

/// Whether an agent session of this replica still reports the execution's primitive.
fn held_here(ctx: &Ctx, key: &ExecKey) -> bool {
    ctx.agents
        .all()
        .iter()
        .any(|s| s.held.lock().contains_key(key))
}

async fn delete(ctx: &Ctx, obj: &Arc<WorkflowExecution>) {
    let key = ExecKey::of(obj);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: obj.uid(),
            resource_version: obj.resource_version(),
        }),
        ..DeleteParams::background()
    };
    match ctx.api(&key.namespace).delete(&key.name, &params).await {
        Ok(_) => {
            ctx.metrics.executions_deleted.inc();
            let phase = obj.status.as_ref().and_then(|s| s.phase);
            tracing::info!(execution = %key, phase = ?phase, "execution deleted: its retention ended");
        }
        Err(e) if is_not_found(&e) || is_conflict(&e) => {
            tracing::debug!(execution = %key, error = %e, "execution changed or gone before its deletion; looked at again next pass");
        }
        Err(e) => {
            tracing::warn!(execution = %key, error = %e, "deleting an execution at the end of its retention failed; retried next pass")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_follow_the_retention_within_bounds() {
        let cases = [
            (Duration::from_secs(2), Duration::from_secs(1)),
            (Duration::from_secs(300), Duration::from_secs(30)),
            (Duration::from_secs(7 * 24 * 3600), Duration::from_secs(60)),
        ];
        for (retention, want) in cases {
            assert_eq!(pass_interval(retention), want, "{retention:?}");
        }
    }
}
