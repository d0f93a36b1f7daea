//! The tekton-agent's executor: one tekton.dev/v1 PipelineRun per execution attempt.
//!
//! ```text
//!  Assign ─► pipeline_run::build_pipeline_run ─► create (or adopt by execution UID)
//!  reflectors: PipelineRuns (owned selector), TaskRuns (engine label, inherited)
//!      └─► status::run_state (pure) ─► StatusReport ─► runtime
//!                 └─ stuck past the grace ─► spec.status: Cancelled
//! ```

pub mod cli;
pub mod executor;
pub mod pipeline_run;
pub mod status;

pub use executor::{TektonExecutor, TektonExecutorConfig};
