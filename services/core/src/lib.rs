//! Domain model and every decision of the WorkflowExecution service, as pure functions.
//!
//! Nothing here does I/O, reads a clock or draws a random number: callers pass `now`
//! (a [`jiff::Timestamp`]) and a jitter source, so every rule has a table test and the API
//! server and the agents decide the same way. (The sandbox does not use it, by design: the
//! test bed depends on none of the product's crates, so it cannot share their bugs.)
//!
//! ```text
//!  ExecuteWorkflow / Preflight                    agent status report
//!            │                                            │
//!            ▼                                            ▼
//!   validate::validate_request ──► admission::decide   failure::classify_tekton_message
//!            │                        │                  failure::was_execution_failure
//!            ▼                        ▼                  failure::natural_language_summary
//!   params::filter_declared_parameters  naming::*        phase::transition
//!                                     │                       │
//!                                     └──► conditions::set_condition ◄──┘
//! ```
//!
//! Modules:
//! - [`model`]: engines, phases, target resources, the execution request and the history
//!   record admission reads.
//! - [`validate`]: request validation with field-level violations (all of them, not the first).
//! - [`phase`]: the phase machine.
//! - [`admission`]: may an execution start on a target now; every blocker with when it clears;
//!   the backoff schedule and jitter sources.
//! - [`failure`]: the failure taxonomy, execution vs pre-execution classification, retry
//!   safety, audit error details and the natural-language summary.
//! - [`conditions`]: engine-neutral condition types and reasons, and `set_condition`.
//! - [`naming`]: deterministic resource names, DNS-1123 checks and label-value sanitization.
//! - [`params`]: the declared-parameter allow-list.
//! - [`duration`]: Go-style duration strings (`2m30s`) for audit and summaries.

pub mod admission;
pub mod conditions;
pub mod duration;
pub mod failure;
pub mod model;
pub mod naming;
pub mod params;
pub mod phase;
pub mod retention;
pub mod validate;

pub use admission::{AdmissionDecision, AdmissionPolicy, BlockReason, Blocker, Jitter};
pub use failure::{FailureDetails, FailureReason};
pub use model::{Engine, ExecutionRecord, ExecutionRequest, Phase, TargetResource};
pub use validate::{FieldViolation, ValidatedRequest, validate_request};
