//! `wfe-bench`: a benchmark of the WorkflowExecution stack, run on demand.
//!
//! ```text
//!  wfe-bench ──ExecuteWorkflow (N over M targets)──►┌──────────────┐   Session    ┌───────────┐
//!     │ ◄──────WatchWorkflowExecutions──────────────│ wfe api      │◄────────────►│ wfe       │
//!     │                                             └──────┬───────┘              │ job-agent │
//!     │        watches (writes, assignment)         ┌──────▼───────┐   Jobs       └─────┬─────┘
//!     └────────────────────────────────────────────►│ wfe sandbox  │◄───────────────────┘
//!                                                   └──────────────┘
//! ```
//!
//! Every component is a separate process of the `wfe` binary (the production code
//! paths); the harness reads their RSS and CPU time from `/proc`.

use clap::Parser;

mod binary;
mod cli;
mod drive;
mod grpc;
mod metrics;
mod proc_stats;
mod report;
mod run;
mod stack;
mod stats;
mod stored;
mod watch;
mod writes;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::Args::parse().run().await
}
