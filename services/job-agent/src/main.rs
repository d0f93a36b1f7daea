//! job-agent: runs workflows as batch/v1 Jobs for workflow-api.

use clap::Parser;
use wfe_job_agent::cli::JobAgentCli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wfe_agent::init_tracing();
    JobAgentCli::parse()
        .run(wfe_process::shutdown::on_signals())
        .await
}
