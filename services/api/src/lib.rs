//! workflow-api: the orchestrator-facing gRPC service of WorkflowExecution, and the server
//! side of the agent session protocol.
//!
//! ```text
//!  RemediationOrchestrator ──gRPC──► grpc (Execute, Get, List, Watch, Cancel, Preflight, ClearBlock)
//!                                     │ execute: validate → idempotency → Lease lock → admission
//!                                     ▼
//!  Kubernetes API ◄── create / status writes (status: one writer, optimistic concurrency)
//!        │ watch                       ▲ reports                ▲ assignments
//!        ▼                             │                        │
//!     store::Index ── changes ──► dispatch (agent sessions, fencing, acks, loss) ◄── agents
//!        └──────────────────────► Watch streams, admission history, List/Get
//! ```
//!
//! Start one in-process with [`server::start`] (tests, the dev stack) or run the binary
//! (`workflow-api`, flags in [`config::Config`]).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod config;
pub mod convert;
pub mod ctx;
pub mod dispatch;
pub mod error;
pub mod execute;
pub mod grpc;
pub mod leases;
pub mod lock;
pub mod metrics;
pub mod server;
pub mod status;
pub mod store;

pub use config::Config;
pub use server::{Running, run, start};

/// Annotation on a WorkflowExecution with the caller's W3C `traceparent` (without one, the
/// ExecuteWorkflow span's when spans are exported), handed to the agent.
pub const TRACEPARENT_ANNOTATION: &str = "kubernaut.ai/traceparent";
