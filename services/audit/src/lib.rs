//! Audit events of the WorkflowExecution service (BR-WE-005) and their delivery.
//!
//! ```text
//!  workflow-api ──► events::{started, completed, failed, skipped, cancelled, block_cleared}
//!                        │  (stable event_id = hash(execution uid, event type))
//!                        ▼
//!                  Auditor::record ──► JsonlSink        (default: one JSON object a line)
//!                        │
//!                        └──────────► Outbox (one fsynced file per event, on disk)
//!                                         │  delivery worker: wire form, contract check,
//!                                         │  batches, retry with backoff, refused batches split
//!                                         ▼
//!                                     DataStorage  POST /api/v1/audit/events/batch
//! ```
//!
//! The file and the outbox hold this service's own event kinds (`workflow.skipped`,
//! `workflow.cancelled` among them); DataStorage receives them in the form its published
//! contract accepts, with upstream's event types ([`wire`] has the mapping, [`contract`] the
//! contract and the check every sent event passes).
//!
//! Every event is generated exactly once per execution and transition, with an
//! id derived from the execution's UID and the event type, so a regenerated event
//! (after a crash between a status write and the audit write) carries the same id
//! and receivers drop the duplicate. Delivery is at least once: `record` returns
//! only when the event is durable (written to the JSON-lines file, or to the
//! outbox), and the outbox survives restarts and DataStorage outages.

pub mod auditor;
pub mod contract;
pub mod delivery;
pub mod event;
pub mod outbox;
pub mod sink;
pub mod wire;

pub use auditor::{AuditConfig, AuditStats, Auditor, SinkConfig};
pub use delivery::DeliveryWorker;
pub use event::{AuditEvent, ExecutionFacts, event_id};

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file or outbox could not be written.
    #[error("audit storage failed: {0}")]
    Io(#[from] std::io::Error),
    /// The event could not be encoded.
    #[error("audit event could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}
