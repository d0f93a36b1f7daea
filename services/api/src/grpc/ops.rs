//! CancelWorkflowExecution, PreflightWorkflow and ClearBlock.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use wfe_core::{AdmissionDecision, FailureDetails, FailureReason, Phase, TargetResource};
use wfe_k8s::workflow_execution as k8s;
use wfe_proto::v1;

use super::exec_key;
use crate::audit::AuditKind;
use crate::auth::CallerIdentity;
use crate::convert::{blocker_to_k8s, blocker_to_proto, execution_to_proto, ts};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::execute::{decide, dispatch_state, history, validate};
use crate::status::{Edit, transitions};
use crate::store::{ExecKey, phase_of};

/// Upstream's minimum for a block-clearing reason (SOC2 CC7.4 audit trail).
pub const MIN_CLEAR_REASON_WORDS: usize = 10;

/// Handles CancelWorkflowExecution.
pub async fn cancel(
    ctx: &Ctx,
    who: &CallerIdentity,
    r: v1::CancelWorkflowExecutionRequest,
) -> Result<v1::CancelWorkflowExecutionResponse> {
    let key = exec_key(ctx, &r.namespace, &r.name)?;
    let obj = ctx.index.get(&key).ok_or_else(|| Error::NotFound {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    })?;
    if phase_of(&obj).is_terminal() {
        return Ok(v1::CancelWorkflowExecutionResponse {
            execution: Some(execution_to_proto(&obj)),
        });
    }
    let reason = if r.reason.is_empty() {
        "cancelled by request".to_owned()
    } else {
        r.reason.clone()
    };
    let committed = ctx
        .writer
        .update(&key, |obj, st, now| {
            if phase_of(obj).is_terminal() {
                return Edit::Skip;
            }
            if st.cancel_request.is_none() {
                st.cancel_request = Some(k8s::CancelRequest {
                    requested_by: who.0.clone(),
                    reason: reason.clone(),
                    requested_at: Time(now),
                });
            }
            if phase_of(obj) == Phase::Pending {
                let msg = format!("cancelled by {}: {reason}", who.0);
                transitions::mark_failed(
                    obj,
                    st,
                    FailureDetails::new(FailureReason::Cancelled, msg, false, now),
                    now,
                );
            }
            Edit::Write
        })
        .await?;
    let latest = ctx
        .index
        .get(&key)
        .map(|o| (*o).clone())
        .or(committed.map(|c| c.obj));
    if let Some(o) = &latest {
        // A Pending execution may already be assigned: tell the agent in case it started.
        if let Some(a) = o.status.as_ref().and_then(|s| s.assignment.as_ref())
            && let Some(session) = ctx.agents.by_agent(&a.agent_id)
        {
            crate::dispatch::dispatcher::send_cancel(&session, o, &key, a.fencing_token, &reason);
        }
    }
    Ok(v1::CancelWorkflowExecutionResponse {
        execution: latest.as_ref().map(execution_to_proto),
    })
}

fn blockers_to_proto(d: &AdmissionDecision) -> Vec<v1::Blocker> {
    d.blockers
        .iter()
        .map(|b| blocker_to_proto(&blocker_to_k8s(b)))
        .collect()
}

/// Handles PreflightWorkflow: the same checks as ExecuteWorkflow, without side effects.
pub fn preflight(
    ctx: &Ctx,
    r: v1::PreflightWorkflowRequest,
) -> Result<v1::PreflightWorkflowResponse> {
    let now = Timestamp::now();
    let acc = validate(ctx, &r.namespace, String::new(), r.spec, now)?;
    let target = wfe_core::naming::qualified_target(&acc.req.cluster_id, &acc.req.target);
    let hist = history(ctx, &target);
    let decision = decide(ctx, &target, &acc.req.workflow_ref.workflow_id, &hist, now);
    let (state, _) = dispatch_state(ctx, acc.valid.engine, &acc.req.cluster_id);
    Ok(v1::PreflightWorkflowResponse {
        would_start: decision.allowed,
        blockers: blockers_to_proto(&decision),
        execution_engine: acc.valid.engine.to_string(),
        agent_available: state != wfe_core::conditions::DispatchState::NoAgentAvailable,
        earliest_start: decision.retry_at().map(ts),
    })
}

fn check_clear(r: &v1::ClearBlockRequest) -> Result<()> {
    let mut v = Vec::new();
    if let Err(e) = r.target_resource.parse::<TargetResource>() {
        v.push(wfe_core::FieldViolation::new(
            "target_resource",
            e.to_string(),
        ));
    }
    let words = r.reason.split_whitespace().count();
    if words < MIN_CLEAR_REASON_WORDS {
        v.push(wfe_core::FieldViolation::new(
            "reason",
            format!("reason must be at least {MIN_CLEAR_REASON_WORDS} words for proper audit trail (SOC2 CC7.4), got {words} words"),
        ));
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidArgument(v))
    }
}

/// Handles ClearBlock: records blockClearance on the execution that raised the block.
pub async fn clear_block(
    ctx: &Ctx,
    who: &CallerIdentity,
    r: v1::ClearBlockRequest,
) -> Result<v1::ClearBlockResponse> {
    check_clear(&r)?;
    let ns = ctx.namespace_of(&r.namespace)?;
    let now = Timestamp::now();
    let target = wfe_core::naming::qualified_target(&r.cluster_id, &r.target_resource);
    let hist = history(ctx, &target);
    // Any workflow: the failure rules do not depend on it.
    let decision = decide(ctx, &target, "", &hist, now);
    let blocker = decision
        .blockers
        .iter()
        .find(|b| b.clearable && b.execution_namespace == ns)
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "target {target} has no block that ClearBlock can lift"
            ))
        })?;
    let key = ExecKey {
        namespace: blocker.execution_namespace.clone(),
        name: blocker.execution.clone(),
    };
    let reason = r.reason.clone();
    let committed = ctx
        .writer
        .update(&key, |_, st, now| {
            // The first attribution wins, as upstream's webhook keeps the old clearedBy.
            if st
                .block_clearance
                .as_ref()
                .is_some_and(|b| !b.cleared_by.is_empty())
            {
                return Edit::Skip;
            }
            st.block_clearance = Some(k8s::BlockClearance {
                cleared_by: who.0.clone(),
                clear_reason: reason.clone(),
                cleared_at: Time(now),
                clear_method: "APIEndpoint".to_owned(),
            });
            Edit::Write
        })
        .await?;
    if let Some(c) = &committed {
        let kind = AuditKind::BlockCleared {
            by: who.0.clone(),
            reason: reason.clone(),
        };
        crate::audit::recorder::record(ctx, &c.obj, &[kind]).await;
        tracing::info!(execution = %key, cleared_by = %who.0, target_resource = %target, "block cleared");
    }
    let obj = ctx.index.get(&key).ok_or_else(|| Error::NotFound {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    })?;
    let remaining = decide(ctx, &target, "", &history(ctx, &target), Timestamp::now());
    Ok(v1::ClearBlockResponse {
        execution: Some(execution_to_proto(&obj)),
        remaining_blockers: blockers_to_proto(&remaining),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn clear_reason_needs_ten_words() {
        let short = v1::ClearBlockRequest {
            target_resource: "ns/Deployment/a".into(),
            reason: "fixed it".into(),
            ..Default::default()
        };
        let Err(Error::InvalidArgument(v)) = check_clear(&short) else {
            panic!("accepted a short reason")
        };
        assert_eq!(v[0].field, "reason");
        let ok = v1::ClearBlockRequest {
            reason: "one two three four five six seven eight nine ten".into(),
            ..short
        };
        assert!(check_clear(&ok).is_ok());
    }
}
