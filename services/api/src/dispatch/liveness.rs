//! Agent liveness shared by every API replica.
//!
//! An agent keeps one session with one replica; the other replicas must neither call its
//! executions lost nor say "no agent" for its engine and cluster. So each replica renews a
//! `coordination.k8s.io/v1` Lease per agent connected to it (`wfe-agent-<hash(agent id)>`,
//! holder = replica id) every heartbeat interval, and every replica reads all of them
//! through a reflector. A Lease counts while `renewTime + lease duration` is in the future;
//! the holder itself trusts its own registry instead (it knows at once when a stream ends).
//!
//! ```text
//!  replica A: registry ──renew every heartbeat──► Lease wfe-agent-<hash> (holder A)
//!  replica B: reflector(Leases) ──► alive_elsewhere(agent) / any_for(engine, cluster)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use wfe_core::Engine;

use super::registry::AgentSession;
use crate::error::{is_already_exists, is_conflict};

/// Label selecting the agent Leases.
const COMPONENT: (&str, &str) = (crate::leases::COMPONENT_LABEL, "wfe-agent-liveness");
const AGENT_ID: &str = "kubernaut.ai/agent-id";
const AGENT_ENGINE: &str = "kubernaut.ai/agent-engine";
const AGENT_CLUSTER: &str = "kubernaut.ai/agent-cluster";
const AGENT_ACCEPTS_WORK: &str = "kubernaut.ai/agent-accepts-work";

/// Name of an agent's Lease.
pub fn lease_name(agent_id: &str) -> String {
    let digest = Sha256::digest(agent_id.as_bytes());
    format!("wfe-agent-{}", hex::encode(&digest[..8]))
}

/// The Leases of every replica, as last seen.
#[derive(Clone)]
pub struct Liveness {
    store: Store<Lease>,
    replica_id: String,
    lease_duration: Duration,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("replica_id", &self.replica_id)
            .finish_non_exhaustive()
    }
}

/// The reflector task feeding a [`Liveness`]; spawn it with [`Reflector::run`].
pub struct Reflector {
    api: Api<Lease>,
    writer: reflector::store::Writer<Lease>,
}

impl Liveness {
    /// A liveness view over the Leases in `namespace`, and the reflector that fills it.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        replica_id: &str,
        lease_duration: Duration,
    ) -> (Self, Reflector) {
        let (store, writer) = reflector::store();
        let api = Api::namespaced(client, namespace);
        let me = Self {
            store,
            replica_id: replica_id.to_owned(),
            lease_duration,
        };
        (me, Reflector { api, writer })
    }

    /// This replica's id (the holder of the Leases it renews).
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    fn live_elsewhere(&self) -> impl Iterator<Item = Arc<Lease>> + '_ {
        let now = Timestamp::now();
        let ttl = jiff::SignedDuration::try_from(self.lease_duration).unwrap_or_default();
        self.store.state().into_iter().filter(move |l| {
            let Some(spec) = &l.spec else { return false };
            let elsewhere = spec.holder_identity.as_deref() != Some(self.replica_id.as_str());
            let fresh = spec
                .renew_time
                .as_ref()
                .is_some_and(|t| t.0.checked_add(ttl).is_ok_and(|until| until > now));
            elsewhere && fresh
        })
    }

    /// Whether the agent is connected to another replica (its Lease there is current).
    pub fn alive_elsewhere(&self, agent_id: &str) -> bool {
        self.live_elsewhere()
            .any(|l| l.annotations().get(AGENT_ID).map(String::as_str) == Some(agent_id))
    }

    /// Whether another replica has a live agent of this engine and cluster taking work.
    pub fn any_elsewhere(&self, engine: Engine, cluster: &str) -> bool {
        self.live_elsewhere().any(|l| {
            let a = l.annotations();
            a.get(AGENT_ENGINE).map(String::as_str) == Some(engine.as_str())
                && a.get(AGENT_CLUSTER).map(String::as_str) == Some(cluster)
                && a.get(AGENT_ACCEPTS_WORK).map(String::as_str) == Some("true")
        })
    }
}

impl Reflector {
    /// Keeps the store current until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::leases::reflect(self.api, self.writer, COMPONENT.1, "agent lease", shutdown).await;
    }
}

/// How this replica renews the Leases of the agents connected to it.
#[derive(Debug, Clone)]
pub struct Renewal {
    /// Where the Leases live.
    pub namespace: String,
    /// How often they are renewed.
    pub heartbeat_interval: Duration,
}

fn desired(liveness: &Liveness, namespace: &str, s: &AgentSession) -> Lease {
    let now = MicroTime(Timestamp::now());
    let secs = liveness.lease_duration.as_secs_f64().ceil().max(1.0);
    let annotations = [
        (AGENT_ID, s.agent_id.clone()),
        (AGENT_ENGINE, s.engine.as_str().to_owned()),
        (AGENT_CLUSTER, s.cluster_id.clone()),
        (AGENT_ACCEPTS_WORK, s.accepts_work().to_string()),
    ];
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(&s.agent_id)),
            namespace: Some(namespace.to_owned()),
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
            annotations: Some(
                annotations
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(liveness.replica_id().to_owned()),
            lease_duration_seconds: Some(secs as i32),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

/// Renews the Lease of every agent `connected` here, every heartbeat interval (and at once
/// when `poke` fires, so a new agent is visible to the other replicas quickly).
pub async fn renew(
    client: kube::Client,
    liveness: Liveness,
    renewal: Renewal,
    connected: impl Fn() -> Vec<Arc<AgentSession>>,
    poke: &tokio::sync::Notify,
    shutdown: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &renewal.namespace);
    // The resourceVersion of our last write per Lease: the reflector may not have seen it yet.
    let mut written: HashMap<String, String> = HashMap::new();
    let mut tick = tokio::time::interval(renewal.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = poke.notified() => {}
        }
        let mut agents: HashMap<String, Arc<AgentSession>> = HashMap::new();
        for s in connected() {
            agents.insert(s.agent_id.clone(), s);
        }
        written.retain(|name, _| agents.keys().any(|a| lease_name(a) == *name));
        for s in agents.values() {
            renew_one(&liveness, &renewal.namespace, &api, s, &mut written).await;
        }
    }
}

/// Replaces the Lease with the resourceVersion last seen (so a concurrent renewal by another
/// replica wins cleanly), or creates it. Failures wait for the next tick.
async fn renew_one(
    liveness: &Liveness,
    namespace: &str,
    api: &Api<Lease>,
    s: &AgentSession,
    written: &mut HashMap<String, String>,
) {
    let mut lease = desired(liveness, namespace, s);
    let name = lease_name(&s.agent_id);
    let seen = written.get(&name).cloned().or_else(|| {
        liveness
            .store
            .state()
            .into_iter()
            .find(|l| l.name_any() == name)
            .and_then(|l| l.resource_version())
    });
    let res = match seen {
        Some(rv) => {
            lease.metadata.resource_version = Some(rv);
            api.replace(&name, &PostParams::default(), &lease).await
        }
        None => api.create(&PostParams::default(), &lease).await,
    };
    match res {
        Ok(stored) => {
            if let Some(rv) = stored.resource_version() {
                written.insert(name, rv);
            }
        }
        Err(e) if is_conflict(&e) || is_already_exists(&e) => {
            written.remove(&name);
            tracing::debug!(agent = %s.agent_id, "agent lease changed meanwhile; renewing next tick");
        }
        Err(e) => {
            tracing::warn!(agent = %s.agent_id, error = %e, "renewing the agent lease failed")
        }
    }
}
