//! The per-target lock shared by every API replica: a `coordination.k8s.io/v1` Lease named
//! after the target (core naming), created with AlreadyExists semantics.
//!
//! The holder identity is `<namespace>/<name>` of the execution that holds the target. The
//! lease is deleted when that execution becomes terminal, and taken over (with a
//! resourceVersion precondition, so only one contender wins) when its holder is terminal,
//! or is gone and the lease is older than the grace period (a holder whose resource is
//! still being created must not lose its lock).

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use crate::ctx::Ctx;
use crate::error::{Error, Result, is_already_exists, is_conflict, is_not_found};
use crate::store::{ExecKey, phase_of};

/// The outcome of trying to take a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// The caller holds the target now.
    Acquired,
    /// Another execution holds it.
    Held(ExecKey),
}

/// Name of the lease of a target.
pub fn lease_name(target: &str) -> String {
    wfe_core::naming::execution_resource_name(target)
}

fn api(ctx: &Ctx) -> Api<Lease> {
    Api::namespaced(ctx.client.clone(), &ctx.config.namespace)
}

fn parse_holder(s: &str) -> Option<ExecKey> {
    let (namespace, name) = s.split_once('/')?;
    Some(ExecKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

fn lease(ctx: &Ctx, target: &str, holder: &ExecKey) -> Lease {
    let now = MicroTime(Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(target)),
            namespace: Some(ctx.config.namespace.clone()),
            annotations: Some(
                [(
                    wfe_k8s::labels::TARGET_RESOURCE_ANNOTATION.to_owned(),
                    target.to_owned(),
                )]
                .into(),
            ),
            labels: Some(
                [(
                    wfe_k8s::labels::MANAGED_BY.to_owned(),
                    wfe_k8s::labels::MANAGED_BY_VALUE.to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

/// Tries to take the target for `me`.
pub async fn acquire(ctx: &Ctx, target: &str, me: &ExecKey) -> Result<Acquire> {
    let api = api(ctx);
    let name = lease_name(target);
    for _ in 0..5 {
        match api
            .create(&PostParams::default(), &lease(ctx, target, me))
            .await
        {
            Ok(_) => return Ok(Acquire::Acquired),
            Err(e) if is_already_exists(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(existing) = api.get_opt(&name).await? else {
            continue;
        };
        let holder = existing
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            .and_then(parse_holder);
        if holder.as_ref() == Some(me) {
            return Ok(Acquire::Acquired);
        }
        if let Some(h) = &holder
            && !may_take_over(ctx, h, &existing).await?
        {
            return Ok(Acquire::Held(h.clone()));
        }
        let mut next = lease(ctx, target, me);
        next.metadata.resource_version = existing.resource_version();
        match api.replace(&name, &PostParams::default(), &next).await {
            Ok(_) => {
                tracing::info!(target_resource = %target, previous = ?holder, holder = %me, "took over a released target lock");
                return Ok(Acquire::Acquired);
            }
            Err(e) if is_conflict(&e) || is_not_found(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Aborted(format!(
        "the lock of target {target} is contended; retry"
    )))
}

/// A lease may be taken over when its holder is terminal, or gone past the grace period.
async fn may_take_over(ctx: &Ctx, holder: &ExecKey, lease: &Lease) -> Result<bool> {
    let obj = match ctx.index.get(holder) {
        Some(o) => Some((*o).clone()),
        None => match ctx.api(&holder.namespace).get_opt(&holder.name).await {
            Ok(o) => o,
            Err(e) => return Err(e.into()),
        },
    };
    if let Some(obj) = obj {
        return Ok(phase_of(&obj).is_terminal());
    }
    let since = lease
        .spec
        .as_ref()
        .and_then(|s| s.acquire_time.as_ref().map(|t| t.0))
        .or_else(|| lease.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let age = Timestamp::now().duration_since(since);
    Ok(age.unsigned_abs() >= ctx.config.lock_grace && age.is_positive())
}

/// Deletes the target's lease if `holder` (`namespace/name`) holds it. Gone is success.
pub async fn release(ctx: &Ctx, target: &str, holder: &str) -> Result<()> {
    let api = api(ctx);
    let name = lease_name(target);
    let Some(existing) = api.get_opt(&name).await? else {
        return Ok(());
    };
    let current = existing
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref());
    if current != Some(holder) {
        return Ok(());
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: existing.resource_version(),
            uid: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        // Someone took it over or deleted it meanwhile: it is not ours any more.
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
