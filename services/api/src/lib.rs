//! workflow-api: the orchestrator-facing gRPC service of WorkflowExecution, and the server
//! side of the agent session protocol.
//!
//! ```text
//!  RemediationOrchestrator ──gRPC──► grpc (Execute, Get, List, Watch, Cancel, Preflight, ClearBlock)
//!                                     │ execute: validate → idempotency → lock → admission
//!                                     ▼
//!  Kubernetes API ◄── create ── execute          status::StatusWriter (the one writer)
//!        │ watch                   │ reserve        ▲ reports      │ committed transitions
//!        ▼                         ▼                │              ▼ (bounded channel)
//!     store::Index ──► dispatch::Dispatcher ◄── agents     audit::recorder ──► audit sinks
//!        └──────────► Watch streams, List/Get, admission history
//! ```
//!
//! Each part holds the handles it calls: the status writer owns the client, the index,
//! deferred edits and the intent journal ([`status`]); the target locks are
//! [`lock::TargetLocks`]; the dispatcher's decisions are a pure [`dispatch::plan`]. Only the
//! RPC handlers, the dispatcher and the audit recorder take the bag of handles
//! [`ctx::Ctx`]; what they call below takes only its own handles, and no module here
//! imports one that imports it back.
//!
//! ## One ExecuteWorkflow, file by file
//!
//! 1. `grpc/mod.rs`: the handler authenticates the caller ([`auth`]) and calls
//!    [`execute::execute`].
//! 2. `execute.rs`: validates the request (`wfe_core::validation`), answers a repeated
//!    idempotency key with the execution it made, acquires the target's lock
//!    (`lock.rs`), runs admission (`wfe_core::admission`: one at a time, cooldown,
//!    backoff, blocks) and creates the `WorkflowExecution`; `initialize` writes its first
//!    status, Pending, or already assigned when [`dispatch::Dispatcher::reserve`] found a
//!    free agent (the assignment is built by `dispatch/plan.rs`'s `assignment`).
//! 3. `status/mod.rs`: [`status::StatusWriter::update`] applies the edit (phases through
//!    `wfe_core::phase::transition`, `status/transitions.rs`) with optimistic
//!    concurrency, and sends the committed transition to the audit recorder.
//! 4. `dispatch/dispatcher.rs`, woken by the index: `dispatch/plan.rs` decides (assign,
//!    resend, reassign after a loss, cancel, wait or say why no agent can take it) and the
//!    dispatcher sends the Assign down the agent's stream (`dispatch/session.rs`).
//! 5. The agent (`services/agent`, then `services/agent/src/owned.rs` and the job-agent's
//!    executor) creates the Job, watches it and streams StatusReports back.
//! 6. `dispatch/session.rs` → `status/report.rs`: each report is checked (binding and
//!    fencing) and turned into Running, then Completed or Failed with failure details.
//! 7. `audit/recorder.rs`: records the events of each committed transition (`audit/events.rs`
//!    says which), then sets the AuditRecorded condition; `dispatch/release.rs` releases
//!    the primitive once the execution is terminal, audited and past retention; `retention.rs`
//!    deletes the execution itself days later, once nothing it blocks is still blocked.
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
pub mod owner;
pub mod retention;
pub mod server;
pub mod status;
pub mod store;

pub use config::Config;
pub use server::{Running, run, start};

/// Annotation on a WorkflowExecution with the caller's W3C `traceparent` (without one, the
/// ExecuteWorkflow span's when spans are exported), handed to the agent.
pub const TRACEPARENT_ANNOTATION: &str = "kubernaut.ai/traceparent";
