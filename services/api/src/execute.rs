//! ExecuteWorkflow: validate → idempotency → target lock → admission → persist.
//!
//! The call answers only after the resource and its initial status are stored. Concurrent
//! calls on one target are arbitrated by the target's Lease ([`crate::lock`]): exactly one
//! holds it, the others see the holder and are Skipped with ResourceBusy naming it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{ObjectMeta, PostParams};
use sha2::{Digest, Sha256};
use wfe_core::admission::{self, SeededJitter};
use wfe_core::conditions::DispatchState;
use wfe_core::{
    AdmissionDecision, Engine, ExecutionRecord, ExecutionRequest, Phase, ValidatedRequest, naming,
};
use wfe_k8s::WorkflowExecution;
use wfe_k8s::labels;
use wfe_proto::v1::{self, Disposition};

use crate::convert::{
    execution_to_proto, record_of, request_from_proto, skip_to_proto, spec_to_k8s,
};
use crate::ctx::Ctx;
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result, is_already_exists};
use crate::lock::Acquire;
use crate::metrics::Reason;
use crate::status::{Edit, transitions};
use crate::store::ExecKey;

/// A validated request with its namespace.
pub struct Accepted {
    /// The domain request.
    pub req: ExecutionRequest,
    /// Parsed engine and target.
    pub valid: ValidatedRequest,
}

/// Validates the wire request (every violation at once).
pub fn validate(
    ctx: &Ctx,
    namespace: &str,
    key: String,
    spec: Option<v1::ExecutionSpec>,
    now: Timestamp,
) -> Result<Accepted> {
    let ns = ctx.namespace_of(namespace)?;
    let req = request_from_proto(ns, key, spec).map_err(Error::InvalidArgument)?;
    let valid = wfe_core::validate_request(&req, now).map_err(Error::InvalidArgument)?;
    Ok(Accepted { req, valid })
}

/// Label value of an idempotency key (label values are at most 63 characters).
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..32].to_owned()
}

/// The admission history of a cluster-qualified target, from the index.
///
/// Executions whose initial status is not written yet are left out: a concurrent call is
/// still deciding about them, and the one among them that holds the target lock is added by
/// the caller from the lease ([`add_holder`]).
pub fn history(ctx: &Ctx, target: &str) -> Vec<ExecutionRecord> {
    ctx.index
        .by_target(target)
        .iter()
        .filter(|o| o.status.as_ref().is_some_and(|s| s.phase.is_some()))
        .map(|o| record_of(o))
        .collect()
}

/// Admission at `now` for a target, given its history.
pub fn decide(
    ctx: &Ctx,
    target: &str,
    workflow_id: &str,
    history: &[ExecutionRecord],
    now: Timestamp,
) -> AdmissionDecision {
    // Seeded by the target: Preflight and ExecuteWorkflow promise the same clear time.
    let mut jitter = SeededJitter::new(target);
    admission::decide(&ctx.policy, target, workflow_id, history, now, &mut jitter)
}

/// Whether an agent could take work of this engine and cluster, and the Dispatched state.
pub fn dispatch_state(ctx: &Ctx, engine: Engine, cluster: &str) -> (DispatchState, String) {
    crate::dispatch::availability(&ctx.agents, &ctx.liveness, engine, cluster)
}

/// Handles ExecuteWorkflow.
pub async fn execute(
    ctx: &Ctx,
    dispatcher: &Dispatcher,
    r: v1::ExecuteWorkflowRequest,
    traceparent: Option<String>,
) -> Result<v1::ExecuteWorkflowResponse> {
    ctx.ensure_synced()?;
    let now = Timestamp::now();
    let Accepted { req, valid } = validate(ctx, &r.namespace, r.idempotency_key, r.spec, now)?;
    let ns = req.namespace.clone();
    let name = match req.idempotency_key.as_str() {
        "" => naming::execution_name(&uuid::Uuid::new_v4().to_string()),
        key => {
            if let Some(existing) = find_by_key(ctx, &ns, key) {
                if existing.status.is_none() {
                    // The call that created it never wrote its status: finish it now.
                    return Ok(already_existed(&resume(ctx, dispatcher, &existing).await?));
                }
                return Ok(already_existed(&existing));
            }
            naming::execution_name(key)
        }
    };
    let me = ExecKey {
        namespace: ns.clone(),
        name: name.clone(),
    };
    // Looked up before the lock is taken: a GET, when the caller named the request's uid.
    let owner = crate::owner::of_request(&ctx.client, &req.remediation_request_ref, &ns).await;
    let target = naming::qualified_target(&req.cluster_id, &req.target);
    let held = ctx.locks.acquire(&target, &me).await?;
    let mut hist = history(ctx, &target);
    if let Acquire::Held(holder) = &held {
        add_holder(&mut hist, holder, &target, now);
    }
    let decision = decide(ctx, &target, &req.workflow_ref.workflow_id, &hist, now);
    let mut obj = build(&req, &valid, &name, now);
    obj.metadata.owner_references = owner.map(|o| vec![o]);
    if let (Some(t), Some(a)) = (traceparent, obj.metadata.annotations.as_mut()) {
        a.insert(crate::TRACEPARENT_ANNOTATION.to_owned(), t);
    }
    let created = match ctx.api(&ns).create(&PostParams::default(), &obj).await {
        Ok(c) => c,
        Err(e) if is_already_exists(&e) && !req.idempotency_key.is_empty() => {
            // A concurrent call with the same key won; it owns the lock and the execution.
            let existing = ctx.api(&ns).get(&name).await?;
            ctx.index.apply(existing.clone());
            return Ok(already_existed(&existing));
        }
        Err(e) => {
            release_if_acquired(ctx, &held, &target, &me).await;
            return Err(e.into());
        }
    };
    ctx.index.apply(created.clone());
    if decision.allowed {
        dispatcher.note_accepted(&me, std::time::Instant::now());
    }
    let committed = initialize(
        ctx,
        dispatcher,
        &me,
        valid.engine,
        &req.cluster_id,
        &decision,
    )
    .await;
    let stored = match committed {
        Ok(c) => c,
        Err(e) => {
            release_if_acquired(ctx, &held, &target, &me).await;
            return Err(e);
        }
    };
    respond(ctx, stored, &decision)
}

/// Finishes accepting an execution whose initial status was never written: the call that
/// created it died, or its status write failed, in between. Without this the resource would
/// hold its target's lock for ever with no phase. It takes the lock and decides as
/// ExecuteWorkflow would have, now. A status written meanwhile (by the original call or
/// another replica) wins: the write is skipped and the stored execution returned.
pub async fn resume(
    ctx: &Ctx,
    dispatcher: &Dispatcher,
    obj: &WorkflowExecution,
) -> Result<WorkflowExecution> {
    let key = ExecKey::of(obj);
    let spec = &obj.spec;
    let engine = Engine::parse(&spec.execution_engine).map_err(|e| {
        Error::Internal(format!(
            "{key}: stored spec.executionEngine is invalid: {e}"
        ))
    })?;
    let target = &crate::store::target_of(obj);
    let now = Timestamp::now();
    let held = ctx.locks.acquire(target, &key).await?;
    let mut hist = history(ctx, target);
    if let Acquire::Held(holder) = &held {
        add_holder(&mut hist, holder, target, now);
    }
    let decision = decide(ctx, target, &spec.workflow_ref.workflow_id, &hist, now);
    tracing::warn!(execution = %key, target_resource = %target, allowed = decision.allowed,
        "finishing the acceptance of an execution left without its initial status");
    initialize(ctx, dispatcher, &key, engine, &spec.cluster_id, &decision).await
}

/// Finishes accepting the executions the dispatcher finds without their initial status
/// for `--accept-recovery-grace` (see [`resume`]), one at a time, until `shutdown`.
pub async fn admit_abandoned(
    ctx: crate::ctx::SharedCtx,
    dispatcher: std::sync::Arc<Dispatcher>,
    mut abandoned: tokio::sync::mpsc::Receiver<std::sync::Arc<WorkflowExecution>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let obj = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = abandoned.recv() => match next {
                Some(obj) => obj,
                None => return,
            },
        };
        let key = ExecKey::of(&obj);
        // Handed over more than once (every pass until admitted): only the first counts.
        if ctx.index.get(&key).is_none_or(|o| o.status.is_some()) {
            continue;
        }
        if let Err(e) = resume(&ctx, &dispatcher, &obj).await {
            tracing::warn!(execution = %key, error = %e, "admitting an execution left without status failed; retrying");
        }
    }
}

fn find_by_key(ctx: &Ctx, ns: &str, key: &str) -> Option<std::sync::Arc<WorkflowExecution>> {
    ctx.index.by_idempotency(ns, &key_hash(key)).or_else(|| {
        ctx.index.get(&ExecKey {
            namespace: ns.to_owned(),
            name: naming::execution_name(key),
        })
    })
}

fn already_existed(obj: &WorkflowExecution) -> v1::ExecuteWorkflowResponse {
    let skip = obj
        .status
        .as_ref()
        .and_then(|s| s.skip_details.as_ref())
        .map(skip_to_proto);
    v1::ExecuteWorkflowResponse {
        execution: Some(execution_to_proto(obj)),
        disposition: Disposition::AlreadyExisted as i32,
        skip_details: skip,
    }
}

/// A lock holder the index does not show yet (its resource is being created) still holds
/// the target: admission must see it as busy.
fn add_holder(hist: &mut Vec<ExecutionRecord>, holder: &ExecKey, target: &str, now: Timestamp) {
    let known_active = hist.iter().any(|r| {
        r.name == holder.name && r.namespace == holder.namespace && !r.phase.is_terminal()
    });
    if !known_active {
        hist.retain(|r| !(r.name == holder.name && r.namespace == holder.namespace));
        hist.push(ExecutionRecord {
            name: holder.name.clone(),
            namespace: holder.namespace.clone(),
            target: target.to_owned(),
            workflow_id: String::new(),
            phase: Phase::Pending,
            created_at: now,
            completed_at: None,
            failure_reason: None,
            was_execution_failure: false,
            block_cleared: false,
            sequence: u64::MAX,
        });
    }
}

async fn release_if_acquired(ctx: &Ctx, held: &Acquire, target: &str, me: &ExecKey) {
    if *held == Acquire::Acquired
        && let Err(e) = ctx.locks.release(target, &me.to_string()).await
    {
        tracing::warn!(error = %e, target_resource = %target, "releasing the target lock failed");
    }
}

/// The resource ExecuteWorkflow creates for a validated request (no status: the
/// initial status is a second write, through the status subresource).
pub fn build(
    req: &ExecutionRequest,
    valid: &ValidatedRequest,
    name: &str,
    now: Timestamp,
) -> WorkflowExecution {
    let mut labels_map = BTreeMap::from([
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
        (
            labels::EXECUTION_ENGINE.to_owned(),
            valid.engine.as_str().to_owned(),
        ),
        (
            labels::TARGET_RESOURCE.to_owned(),
            naming::sanitize_label_value(&req.target),
        ),
    ]);
    let mut annotations = BTreeMap::from([(
        labels::TARGET_RESOURCE_ANNOTATION.to_owned(),
        req.target.clone(),
    )]);
    if !req.idempotency_key.is_empty() {
        labels_map.insert(
            labels::IDEMPOTENCY_KEY_HASH.to_owned(),
            key_hash(&req.idempotency_key),
        );
        annotations.insert(
            labels::IDEMPOTENCY_KEY_ANNOTATION.to_owned(),
            req.idempotency_key.clone(),
        );
    }
    WorkflowExecution {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(req.namespace.clone()),
            labels: Some(labels_map),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: spec_to_k8s(req, valid, now),
        status: None,
    }
}

/// Writes the initial status: Pending, or Skipped with every blocker. When an agent here
/// has a free slot, Pending carries its assignment in the same write and the Assign is sent
/// before the call answers: one write less, and no wait for a dispatcher pass.
async fn initialize(
    ctx: &Ctx,
    dispatcher: &Dispatcher,
    key: &ExecKey,
    engine: Engine,
    cluster: &str,
    decision: &AdmissionDecision,
) -> Result<WorkflowExecution> {
    let dispatch = dispatch_state(ctx, engine, cluster);
    let reservation = decision
        .allowed
        .then(|| dispatcher.reserve(engine, cluster, None))
        .flatten();
    if reservation.is_some() {
        dispatcher.expect_first_assign(key);
    }
    let committed = ctx
        .writer
        .update(key, |obj, status, now| {
            if status.phase.is_some() {
                return Edit::Skip;
            }
            match (&reservation, decision.allowed) {
                (Some(r), _) => transitions::init_assigned(obj, status, r.assignment(now), now),
                (None, true) => transitions::init_pending(obj, status, dispatch.clone(), now),
                (None, false) => transitions::init_skipped(obj, status, decision, now),
            }
            Edit::Write
        })
        .await?;
    if let (Some(r), Some(c)) = (&reservation, &committed) {
        dispatcher.assigned_at_accept(&c.obj, r);
    }
    if let Some(first) = decision.blockers.first() {
        ctx.metrics
            .skips
            .get_or_create(&Reason {
                reason: first.reason.as_str().to_owned(),
            })
            .inc();
    }
    match committed {
        Some(c) => Ok(c.obj),
        None => ctx
            .index
            .get(key)
            .map(|o| (*o).clone())
            .ok_or_else(|| Error::Internal(format!("{key} vanished"))),
    }
}

fn respond(
    ctx: &Ctx,
    stored: WorkflowExecution,
    decision: &AdmissionDecision,
) -> Result<v1::ExecuteWorkflowResponse> {
    // The AuditRecorded write after a Skipped transition may already be newer.
    let latest = ctx
        .index
        .get(&ExecKey::of(&stored))
        .map(|o| (*o).clone())
        .unwrap_or(stored);
    let skip = latest
        .status
        .as_ref()
        .and_then(|s| s.skip_details.as_ref())
        .map(skip_to_proto);
    let disposition = if decision.allowed {
        Disposition::Created
    } else {
        Disposition::Skipped
    };
    tracing::info!(execution = %latest.name_any(), disposition = ?disposition, target_resource = %latest.spec.target_resource, "execution accepted");
    Ok(v1::ExecuteWorkflowResponse {
        execution: Some(execution_to_proto(&latest)),
        disposition: disposition as i32,
        skip_details: skip,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_holder_not_yet_indexed_makes_the_target_busy() {
        let mut hist = Vec::new();
        let holder = ExecKey {
            namespace: "ns".into(),
            name: "we-1".into(),
        };
        let now = Timestamp::from_second(10).unwrap();
        add_holder(&mut hist, &holder, "ns/Deployment/a", now);
        let mut j = wfe_core::admission::FixedJitter(0.0);
        let d = admission::decide(
            &Default::default(),
            "ns/Deployment/a",
            "wf",
            &hist,
            now,
            &mut j,
        );
        assert!(!d.allowed);
        assert_eq!(d.blockers[0].execution, "we-1");
        assert_eq!(key_hash("k").len(), 32);
    }
}
