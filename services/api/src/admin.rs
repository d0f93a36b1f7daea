//! What workflow-api's admin port reports (`/livez`, `/readyz`, `/metrics`, served by
//! [`wfe_process::admin`]): ready once the index is synced and the gRPC listener bound,
//! not ready again while draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;
use crate::store::Index;

/// What readiness depends on.
#[derive(Debug)]
pub struct Readiness {
    /// The index.
    pub index: Arc<Index>,
    /// Set once the gRPC listener is bound.
    pub bound: AtomicBool,
    /// Set when shutdown starts.
    pub draining: AtomicBool,
}

impl Readiness {
    /// Ready: synced, bound and not draining.
    pub fn ready(&self) -> bool {
        self.index.is_synced()
            && self.bound.load(Ordering::Relaxed)
            && !self.draining.load(Ordering::Relaxed)
    }

    /// The first thing readiness waits for, or "ready".
    pub fn explain(&self) -> &'static str {
        if self.draining.load(Ordering::Relaxed) {
            "not ready: draining"
        } else if !self.index.is_synced() {
            "not ready: WorkflowExecution index not synced"
        } else if !self.bound.load(Ordering::Relaxed) {
            "not ready: gRPC listener not bound"
        } else {
            "ready"
        }
    }
}

/// The admin port's view of workflow-api.
pub struct Probe {
    /// Readiness.
    pub ready: Arc<Readiness>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl wfe_process::admin::Probe for Probe {
    fn readiness(&self) -> (bool, String) {
        (self.ready.ready(), self.ready.explain().to_owned())
    }

    fn openmetrics(&self) -> Result<String, String> {
        Ok(self.metrics.encode())
    }
}
