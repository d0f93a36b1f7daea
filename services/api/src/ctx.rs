//! Shared state of one API instance.

use std::sync::Arc;

use kube::Api;
use wfe_core::AdmissionPolicy;
use wfe_k8s::WorkflowExecution;

use crate::audit::Audit;
use crate::auth::{AgentAuth, CallerAuth};
use crate::config::Config;
use crate::dispatch::registry::AgentRegistry;
use crate::metrics::Metrics;
use crate::status::StatusWriter;
use crate::store::Index;

/// What the RPC handlers, the dispatcher and the audit recorder share. The parts below it
/// (the status writer, the target locks, liveness) hold their own handles and never this.
pub struct Ctx {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Configuration.
    pub config: Config,
    /// Admission thresholds.
    pub policy: AdmissionPolicy,
    /// The execution index.
    pub index: Arc<Index>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Audit trail.
    pub audit: Audit,
    /// Executions whose audit events this process is recording right now.
    pub auditing: parking_lot::Mutex<std::collections::HashSet<crate::store::ExecKey>>,
    /// The one writer of execution status (with its deferred edits).
    pub writer: Arc<StatusWriter>,
    /// Connected agents.
    pub agents: AgentRegistry,
    /// Agents connected to any replica (their Leases).
    pub liveness: crate::dispatch::liveness::Liveness,
    /// The target locks as last seen.
    pub locks: crate::lock::TargetLocks,
    /// Renews the agent Leases at once (an agent connected).
    pub lease_poke: tokio::sync::Notify,
    /// Callers' tokens.
    pub caller_auth: CallerAuth,
    /// Agents' tokens.
    pub agent_auth: AgentAuth,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The WorkflowExecution API of a namespace.
    pub fn api(&self, namespace: &str) -> Api<WorkflowExecution> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The namespace of a request: its own, or the default.
    pub fn namespace_of(&self, requested: &str) -> crate::error::Result<String> {
        let ns = if requested.is_empty() {
            self.config.namespace.clone()
        } else {
            requested.to_owned()
        };
        if self.config.namespaces().contains(&ns) {
            Ok(ns)
        } else {
            Err(crate::error::Error::field(
                "namespace",
                format!("namespace {ns:?} is not served by this server"),
            ))
        }
    }

    /// Refuses requests until the index holds the initial state.
    pub fn ensure_synced(&self) -> crate::error::Result<()> {
        if self.index.is_synced() {
            Ok(())
        } else {
            Err(crate::error::Error::Unavailable(
                "the execution index is not synced yet".to_owned(),
            ))
        }
    }
}

/// Shared handle.
pub type SharedCtx = Arc<Ctx>;
