//! The contract between the runtime and an engine: create or adopt a primitive, observe
//! it, cancel it, release it. job-agent and tekton-agent implement it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wfe_proto::agent::{Assign, Cancel, Release, StatusReport};

/// Whether the engine can run work here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Ready to run work.
    Available,
    /// Cannot run work, and why (sent in Hello and shown by `/readyz`).
    Unavailable(String),
}

/// Why a Cancel or Release failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The Kubernetes API refused or failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// An engine's executor. Every method is idempotent: commands are delivered at least once.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// `job` or `tekton`.
    fn engine(&self) -> &'static str;

    /// Checks the engine's prerequisites (e.g. Tekton CRDs), once at start.
    async fn availability(&self) -> Availability;

    /// Runs the watches until `shutdown`, sending a report on every observed change of an
    /// owned primitive (the runtime drops reports that did not change).
    async fn observe(
        self: Arc<Self>,
        reports: mpsc::Sender<StatusReport>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>;

    /// Resolves once the watches have listed everything (the inventory is complete).
    async fn synced(&self);

    /// The current state of every owned primitive, from the watch caches.
    fn inventory(&self) -> Vec<StatusReport>;

    /// Creates the primitive, or adopts the existing one of this execution. Never fails:
    /// a primitive that cannot be created is a FAILED report with the reason.
    async fn start(&self, assign: &Assign) -> StatusReport;

    /// Stops the primitive; returns the FAILED/Cancelled report to send.
    async fn cancel(&self, cancel: &Cancel) -> Result<StatusReport, ExecutorError>;

    /// Deletes the primitive; NotFound is success.
    async fn release(&self, release: &Release) -> Result<(), ExecutorError>;
}
