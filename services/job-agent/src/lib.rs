//! The job-agent's executor: one batch/v1 Job per execution attempt.
//!
//! ```text
//!  Assign ─► job::build_job ─► create (or adopt by execution UID) ─► Job
//!  reflectors: Jobs (owned selector), Pods (same labels), Events (namespace)
//!      └─► status::job_state (pure) ─► StatusReport ─► runtime
//! ```

pub mod cli;
pub mod executor;
pub mod job;
pub mod status;

pub use executor::{JobExecutor, JobExecutorConfig};
