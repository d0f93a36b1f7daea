//! The per-target lock shared by every API replica: a `coordination.k8s.io/v1` Lease named
//! after the target (core naming). The holder identity is `<namespace>/<name>` of the
//! execution that holds the target.
//!
//! A lease is free when its holder is terminal, or is gone and the lease is older than the
//! grace period (a holder whose resource is still being created must not lose its lock).
//! A free lease is not deleted when its holder ends: the next execution on the target takes
//! it over by replace with a resourceVersion precondition, so exactly one contender wins.
//! That is one write per execution instead of a create and a delete, and with the
//! [`LockCache`] (a reflector over the locks) one round trip: the cached resourceVersion is
//! tried first, and a conflict falls back to a fresh read. Leases of targets idle for
//! `--lock-idle-ttl` are deleted by [`collect_idle`].
//!
//! ```text
//!   no lease ──create──► held by A ──A terminal──► free ──replace (rv)──► held by B …
//!                                                    └──idle TTL──► deleted
//! ```

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use wfe_k8s::WorkflowExecution;

use crate::error::{Error, Result, is_already_exists, is_conflict, is_not_found};
use crate::store::{ExecKey, Index, phase_of};

/// The outcome of trying to take a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// The caller holds the target now.
    Acquired,
    /// Another execution holds it.
    Held(ExecKey),
}

/// Label selecting the target locks (the agent liveness Leases live in the same namespace).
const COMPONENT: (&str, &str) = (crate::leases::COMPONENT_LABEL, "wfe-target-lock");

/// The target locks as last seen by the reflector: a hint, never trusted for a write
/// without the resourceVersion precondition.
#[derive(Clone)]
pub struct LockCache {
    store: Store<Lease>,
    namespace: String,
}

impl std::fmt::Debug for LockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockCache")
            .field("cached", &self.store.len())
            .finish_non_exhaustive()
    }
}

/// The target locks of one API instance: what ExecuteWorkflow takes and releases, and
/// the collector of idle ones.
#[derive(Clone)]
pub struct TargetLocks {
    client: kube::Client,
    /// Where the Leases live (the API's own namespace).
    namespace: String,
    cache: LockCache,
    /// Where holders are looked up first.
    index: Arc<Index>,
    /// How long a lock whose holder is gone stays held (its resource may be being created).
    grace: Duration,
    /// How long a free lock is kept before it is deleted.
    idle_ttl: Duration,
}

impl std::fmt::Debug for TargetLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetLocks")
            .field("namespace", &self.namespace)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The reflector task feeding a [`LockCache`].
pub struct LockReflector {
    api: Api<Lease>,
    writer: reflector::store::Writer<Lease>,
}

impl LockCache {
    /// A cache of the target locks in `namespace` and the reflector that fills it.
    pub fn new(client: kube::Client, namespace: &str) -> (Self, LockReflector) {
        let (store, writer) = reflector::store();
        let cache = Self {
            store,
            namespace: namespace.to_owned(),
        };
        let api = Api::namespaced(client, namespace);
        (cache, LockReflector { api, writer })
    }

    fn get(&self, name: &str) -> Option<Lease> {
        let key = ObjectRef::new(name).within(&self.namespace);
        self.store.get(&key).map(|l| (*l).clone())
    }
}

impl LockReflector {
    /// Keeps the cache current until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::leases::reflect(self.api, self.writer, COMPONENT.1, "target lock", shutdown).await;
    }
}

/// Name of the lease of a target.
pub fn lease_name(target: &str) -> String {
    wfe_core::naming::execution_resource_name(target)
}

fn parse_holder(s: &str) -> Option<ExecKey> {
    let (namespace, name) = s.split_once('/')?;
    Some(ExecKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

fn lease(namespace: &str, target: &str, holder: &ExecKey) -> Lease {
    let now = MicroTime(Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(target)),
            namespace: Some(namespace.to_owned()),
            annotations: Some(
                [(
                    wfe_k8s::labels::TARGET_RESOURCE_ANNOTATION.to_owned(),
                    target.to_owned(),
                )]
                .into(),
            ),
            labels: Some(
                [
                    (COMPONENT.0.to_owned(), COMPONENT.1.to_owned()),
                    (
                        wfe_k8s::labels::MANAGED_BY.to_owned(),
                        wfe_k8s::labels::MANAGED_BY_VALUE.to_owned(),
                    ),
                ]
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

fn holder_of(lease: &Lease) -> Option<ExecKey> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .and_then(parse_holder)
}

impl TargetLocks {
    /// The locks in `namespace`, their holders looked up in `index` first; the reflector
    /// filling the cache is returned to be spawned.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        index: Arc<Index>,
        grace: Duration,
        idle_ttl: Duration,
    ) -> (Self, LockReflector) {
        let (cache, reflector) = LockCache::new(client.clone(), namespace);
        let me = Self {
            client,
            namespace: namespace.to_owned(),
            cache,
            index,
            grace,
            idle_ttl,
        };
        (me, reflector)
    }

    fn api(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Tries to take the target for `me`.
    pub async fn acquire(&self, target: &str, me: &ExecKey) -> Result<Acquire> {
        let api = self.api();
        let name = lease_name(target);
        // What the lease is believed to be: cached first, then what a failed write revealed.
        let mut seen = self.cache.get(&name);
        for _ in 0..5 {
            let existing = match seen.take() {
                Some(l) => l,
                None => match api
                    .create(&PostParams::default(), &lease(&self.namespace, target, me))
                    .await
                {
                    Ok(_) => return Ok(Acquire::Acquired),
                    Err(e) if is_already_exists(&e) => match api.get_opt(&name).await? {
                        Some(l) => l,
                        None => continue,
                    },
                    Err(e) => return Err(e.into()),
                },
            };
            let holder = holder_of(&existing);
            if holder.as_ref() == Some(me) {
                return Ok(Acquire::Acquired);
            }
            if let Some(h) = &holder
                && self.free_since(h, &existing).await?.is_none()
            {
                return Ok(Acquire::Held(h.clone()));
            }
            let mut next = lease(&self.namespace, target, me);
            next.metadata.resource_version = existing.resource_version();
            match api.replace(&name, &PostParams::default(), &next).await {
                Ok(_) => {
                    tracing::debug!(target_resource = %target, previous = ?holder, holder = %me, "took over a free target lock");
                    return Ok(Acquire::Acquired);
                }
                // Stale: someone took it or it was collected; look again.
                Err(e) if is_conflict(&e) => seen = api.get_opt(&name).await?,
                Err(e) if is_not_found(&e) => seen = None,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Aborted(format!(
            "the lock of target {target} is contended; retry"
        )))
    }

    /// Since when the lease is free: its holder's completion (or, if that is unknown, the
    /// lease's acquisition), or None while it is held. A lease may be taken over once free:
    /// its holder is terminal, or gone past the grace period.
    async fn free_since(&self, holder: &ExecKey, lease: &Lease) -> Result<Option<Timestamp>> {
        let obj = match self.index.get(holder) {
            Some(o) => Some((*o).clone()),
            None => {
                match Api::<WorkflowExecution>::namespaced(self.client.clone(), &holder.namespace)
                    .get_opt(&holder.name)
                    .await
                {
                    Ok(o) => o,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let acquired = lease
            .spec
            .as_ref()
            .and_then(|s| s.acquire_time.as_ref().map(|t| t.0))
            .or_else(|| lease.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        if let Some(obj) = obj {
            if !phase_of(&obj).is_terminal() {
                return Ok(None);
            }
            let completed = obj
                .status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref().map(|t| t.0));
            return Ok(Some(completed.unwrap_or(acquired)));
        }
        let since = lease
            .spec
            .as_ref()
            .and_then(|s| s.acquire_time.as_ref().map(|t| t.0))
            .or_else(|| lease.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let age = Timestamp::now().duration_since(since);
        let gone = age.unsigned_abs() >= self.grace && age.is_positive();
        Ok(gone.then_some(since))
    }

    /// Deletes the locks free for longer than `--lock-idle-ttl`, every half of it (each with
    /// the resourceVersion it was judged by: a lock taken meanwhile stays).
    pub async fn collect_idle(self, shutdown: CancellationToken) {
        let every = (self.idle_ttl / 2).max(Duration::from_secs(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.collect_once().await {
                tracing::warn!(error = %e, "collecting idle target locks failed; retrying later");
            }
        }
    }

    /// One pass of [`collect_idle`]; returns how many locks were deleted.
    pub async fn collect_once(&self) -> Result<usize> {
        let api = self.api();
        let ttl =
            jiff::SignedDuration::try_from(self.idle_ttl).unwrap_or(jiff::SignedDuration::MAX);
        let now = Timestamp::now();
        let mut deleted = 0;
        for lease in self.cache.store.state() {
            let Some(holder) = holder_of(&lease) else {
                continue;
            };
            let Some(since) = self.free_since(&holder, &lease).await? else {
                continue;
            };
            if since.checked_add(ttl).is_ok_and(|t| t > now) {
                continue;
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: lease.resource_version(),
                    uid: None,
                }),
                ..Default::default()
            };
            match api.delete(&lease.name_any(), &dp).await {
                Ok(_) => deleted += 1,
                Err(e) if is_not_found(&e) || is_conflict(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted the locks of idle targets");
        }
        Ok(deleted)
    }

    /// Deletes the target's lease if `holder` (`namespace/name`) holds it (a lock taken for a
    /// resource that could not be created). Gone is success.
    pub async fn release(&self, target: &str, holder: &str) -> Result<()> {
        let api = self.api();
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
}
