//! tekton-agent: runs workflows as Tekton PipelineRuns for workflow-api.

use clap::Parser;
use wfe_tekton_agent::cli::TektonAgentCli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wfe_agent::init_tracing();
    TektonAgentCli::parse()
        .run(wfe_process::shutdown::on_signals())
        .await
}
