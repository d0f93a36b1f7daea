//! The one skeleton both executors run on the primitive they own:
//!
//! ```text
//!  start ── cached or (adopt) listed? ──yes──► adopt: record the newer fencing token
//!    │ no                                        on it, report its state
//!    ▼
//!  create ──AlreadyExists──► read it ── ours? ──yes──► adopt
//!    │                                  │ no
//!    ▼                                  ▼
//!  report its state          FAILED: "<Kind> <name> already exists and belongs to
//!                                      execution <other>"
//!  cancel  ── engine's stop (delete a Job, cancel a PipelineRun) ──► FAILED/Cancelled
//!  release ── delete, unless the cached object belongs to another execution
//! ```
//!
//! An engine implements [`OwnedPrimitive`]: what it builds, how it stops, how it reads
//! status, where its cache is. The fencing and ownership rules are the pure functions
//! here ([`collision`], [`adopted_owner`], [`may_release`]), table-tested in `tests.rs`.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wfe_core::failure::{FailureDetails, FailureReason};
use wfe_k8s::labels;
use wfe_proto::agent::{Assign, Cancel, Release, StatusReport};
use wfe_proto::v1::PrimitiveReference;

use crate::ExecutorError;
use crate::kube_errors::{create_failure, create_with_retries, is_already_exists, is_not_found};
use crate::primitive::{
    Observation, Owner, cancel_reason, execution_selector, owner_from_assign, owner_from_cancel,
    owner_of, report,
};

/// What an engine's primitive (Job, PipelineRun) needs to run on the shared skeleton.
#[async_trait]
pub trait OwnedPrimitive: Send + Sync {
    /// The Kubernetes object.
    type Object: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Serialize
        + Send
        + Sync
        + 'static;

    /// Kind, for messages: `Job`, `PipelineRun`.
    const KIND: &'static str;
    /// What [`OwnedPrimitive::stop`] did, for the cancel message: `deleted`, `cancelled`.
    const STOPPED: &'static str;

    /// `job` or `tekton`.
    fn engine(&self) -> &'static str;
    /// The namespace this agent runs primitives in.
    fn namespace(&self) -> &str;
    /// The API of the primitives, in [`OwnedPrimitive::namespace`].
    fn api(&self) -> Api<Self::Object>;
    /// A primitive by name, from the watch cache.
    fn cached(&self, name: &str) -> Option<Arc<Self::Object>>;
    /// Every cached primitive of an execution (any attempt).
    fn cached_of(&self, uid: &str) -> Vec<Arc<Self::Object>>;
    /// Builds the primitive of an assignment; the error is a ConfigurationError message.
    fn build(&self, a: &Assign, now: Timestamp) -> Result<Self::Object, String>;
    /// The engine's reading of a primitive's status.
    fn observation(&self, obj: &Self::Object, owner: &Owner, now: Timestamp) -> Observation;
    /// The reference sent in reports.
    fn reference(&self, obj: &Self::Object) -> PrimitiveReference;
    /// Stops a primitive; NotFound is success.
    async fn stop(&self, name: &str) -> Result<(), kube::Error>;

    /// Whether the workload had started (a cancel then is an execution failure).
    fn has_started(&self, obj: &Self::Object, owner: &Owner, now: Timestamp) -> bool {
        self.observation(obj, owner, now).started_at.is_some()
    }
}

/// What a name collision on create means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collision {
    /// The existing primitive is this execution's (another replica or attempt made it).
    Adopt,
    /// It belongs to another execution (`nobody` when it carries no owner).
    Foreign {
        /// UID of the other execution.
        other: String,
    },
}

/// Decides a name collision from the existing primitive's owner.
pub fn collision(existing: Option<&Owner>, uid: &str) -> Collision {
    match existing {
        Some(o) if o.key.uid == uid => Collision::Adopt,
        Some(o) => Collision::Foreign {
            other: o.key.uid.clone(),
        },
        None => Collision::Foreign {
            other: "nobody".into(),
        },
    }
}

/// The FAILED message of a collision with another execution's primitive.
pub fn collision_message(kind: &str, name: &str, other: &str) -> String {
    format!("{kind} {name} already exists and belongs to execution {other}")
}

/// The owner after an adoption: the primitive's (or the Assign's when it has none), with
/// the newer fencing token and the adopting attempt.
pub fn adopted_owner(existing: Option<Owner>, a: &Assign) -> Owner {
    let mut owner = existing.unwrap_or_else(|| owner_from_assign(a));
    owner.fencing_token = owner.fencing_token.max(a.fencing_token);
    owner.attempt = a.attempt;
    owner
}

/// Whether an adoption must write the Assign's token on the primitive: only a newer one
/// (an older assignment must never take a primitive back).
pub fn needs_fencing_patch(existing: Option<&Owner>, a: &Assign) -> bool {
    a.fencing_token > existing.map_or(0, |o| o.fencing_token)
}

/// Whether a Release for execution `uid` may delete the cached primitive: never one of
/// another execution (upstream #383); an unowned or uncached one may go.
pub fn may_release(cached_owner: Option<&Owner>, uid: &str) -> bool {
    cached_owner.is_none_or(|o| o.key.uid == uid)
}

/// The refusal of an Assign for another namespace than the agent's.
pub fn namespace_refusal(kind: &str, agent_ns: &str, requested: &str) -> Option<String> {
    (!requested.is_empty() && requested != agent_ns)
        .then(|| format!("this agent runs {kind}s in namespace {agent_ns}, not {requested}"))
}

/// The newest attempt among primitives of one execution.
pub fn newest<K: Resource>(objs: impl IntoIterator<Item = Arc<K>>) -> Option<Arc<K>> {
    objs.into_iter()
        .max_by_key(|o| owner_of(o.meta()).map_or(0, |o| o.attempt))
}

/// Deletes a primitive in the background; NotFound is success.
pub async fn delete<P: OwnedPrimitive>(p: &P, name: &str) -> Result<(), kube::Error> {
    match p.api().delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The report of a primitive's current state, and its owner; `None` when it has none.
pub fn current_report<P: OwnedPrimitive>(
    p: &P,
    obj: &P::Object,
    now: Timestamp,
) -> Option<StatusReport> {
    let owner = owner_of(obj.meta())?;
    let obs = p.observation(obj, &owner, now);
    Some(report(&owner, Some(p.reference(obj)), &obs, now))
}

/// A FAILED report with a fresh failure.
pub fn failed<P: OwnedPrimitive>(
    p: &P,
    owner: &Owner,
    reason: FailureReason,
    message: String,
    started: bool,
    obj: Option<&P::Object>,
) -> StatusReport {
    let now = Timestamp::now();
    let obs = Observation::failed(FailureDetails::new(reason, message, started, now), owner);
    report(owner, obj.map(|o| p.reference(o)), &obs, now)
}

/// Creates the primitive of an Assign, or adopts the existing one of this execution.
pub async fn start<P: OwnedPrimitive>(p: &P, a: &Assign) -> StatusReport {
    let owner = owner_from_assign(a);
    match existing(p, &owner.key.uid, a.adopt).await {
        Some(obj) => adopt(p, &obj, a).await,
        None => create(p, a, &owner).await,
    }
}

/// The existing primitive of an execution: the cache, and for an adoption also a fresh
/// list (the cache may not have seen one another replica just created).
async fn existing<P: OwnedPrimitive>(p: &P, uid: &str, adopt: bool) -> Option<Arc<P::Object>> {
    if let Some(o) = newest(p.cached_of(uid)) {
        return Some(o);
    }
    if !adopt {
        return None;
    }
    let lp = ListParams::default().labels(&execution_selector(p.engine(), uid));
    match p.api().list(&lp).await {
        Ok(list) => newest(list.items.into_iter().map(Arc::new)),
        Err(e) => {
            tracing::warn!(error = %e, execution = %uid, kind = P::KIND, "cannot list for adoption");
            None
        }
    }
}

/// Takes over an existing primitive: records the new assignment on it, reports its state.
async fn adopt<P: OwnedPrimitive>(p: &P, obj: &P::Object, a: &Assign) -> StatusReport {
    let name = obj.name_any();
    let current = owner_of(obj.meta());
    if needs_fencing_patch(current.as_ref(), a) {
        let patch = serde_json::json!({"metadata": {
            "labels": {labels::ATTEMPT: a.attempt.to_string()},
            "annotations": {labels::FENCING_TOKEN_ANNOTATION: a.fencing_token.to_string()},
        }});
        if let Err(e) = p
            .api()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(error = %e, kind = P::KIND, name = %name, "cannot record adoption");
        }
    }
    let owner = adopted_owner(current, a);
    tracing::info!(kind = P::KIND, name = %name, execution = %owner.key.uid, "adopted");
    let now = Timestamp::now();
    let obs = p.observation(obj, &owner, now);
    report(&owner, Some(p.reference(obj)), &obs, now)
}

async fn create<P: OwnedPrimitive>(p: &P, a: &Assign, owner: &Owner) -> StatusReport {
    let config_error = |msg| {
        failed(
            p,
            owner,
            FailureReason::ConfigurationError,
            msg,
            false,
            None,
        )
    };
    if let Some(msg) = namespace_refusal(P::KIND, p.namespace(), &a.primitive_namespace) {
        return config_error(msg);
    }
    let obj = match p.build(a, Timestamp::now()) {
        Ok(o) => o,
        Err(msg) => return config_error(msg),
    };
    let api = p.api();
    let params = PostParams::default();
    match create_with_retries(|| api.create(&params, &obj)).await {
        Ok(created) => {
            tracing::info!(kind = P::KIND, name = %created.name_any(), execution = %owner.key.uid, "created");
            let now = Timestamp::now();
            let obs = p.observation(&created, owner, now);
            report(owner, Some(p.reference(&created)), &obs, now)
        }
        Err(e) if is_already_exists(&e) => on_collision(p, a, owner).await,
        Err(e) => {
            let (reason, msg) = create_failure(P::KIND, &e);
            failed(p, owner, reason, msg, false, None)
        }
    }
}

/// The deterministic name is taken: adopt it if it is this execution's.
async fn on_collision<P: OwnedPrimitive>(p: &P, a: &Assign, owner: &Owner) -> StatusReport {
    let obj = match p.api().get(&a.primitive_name).await {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{} exists but cannot be read: {e}", P::KIND);
            return failed(p, owner, FailureReason::Unknown, msg, false, None);
        }
    };
    match collision(owner_of(obj.meta()).as_ref(), &owner.key.uid) {
        Collision::Adopt => adopt(p, &obj, a).await,
        Collision::Foreign { other } => {
            let msg = collision_message(P::KIND, &a.primitive_name, &other);
            failed(p, owner, FailureReason::Unknown, msg, false, None)
        }
    }
}

/// Stops the primitive of a Cancel; the FAILED/Cancelled report to send.
pub async fn cancel<P: OwnedPrimitive>(p: &P, c: &Cancel) -> Result<StatusReport, ExecutorError> {
    let why = cancel_reason(c);
    let uid = c.execution.as_ref().map(|k| k.uid.as_str()).unwrap_or("");
    let Some(obj) = newest(p.cached_of(uid)) else {
        let msg = format!("Cancelled before a {} existed: {why}", P::KIND);
        let owner = owner_from_cancel(c);
        return Ok(failed(
            p,
            &owner,
            FailureReason::Cancelled,
            msg,
            false,
            None,
        ));
    };
    let mut owner = owner_of(obj.meta()).unwrap_or_default();
    owner.fencing_token = owner.fencing_token.max(c.fencing_token);
    let started = p.has_started(&obj, &owner, Timestamp::now());
    p.stop(&obj.name_any()).await?;
    let msg = format!("{} {} {}: {why}", P::KIND, obj.name_any(), P::STOPPED);
    Ok(failed(
        p,
        &owner,
        FailureReason::Cancelled,
        msg,
        started,
        Some(&obj),
    ))
}

/// Deletes the primitive of a Release; NotFound is success.
pub async fn release<P: OwnedPrimitive>(p: &P, r: &Release) -> Result<(), ExecutorError> {
    let uid = r.execution.as_ref().map(|k| k.uid.as_str()).unwrap_or("");
    let name = r
        .primitive
        .as_ref()
        .map(|p| p.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| newest(p.cached_of(uid)).map(|o| o.name_any()));
    let Some(name) = name else { return Ok(()) };
    let cached_owner = p.cached(&name).and_then(|o| owner_of(o.meta()));
    if !may_release(cached_owner.as_ref(), uid) {
        return Ok(());
    }
    delete(p, &name).await.map_err(ExecutorError::from)
}

#[cfg(test)]
mod tests;
