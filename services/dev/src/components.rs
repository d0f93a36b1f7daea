//! `wfe api`, `wfe job-agent`, `wfe tekton-agent`: the production code paths,
//! started from this one binary so `wfe dev` needs a single build.

use tokio_util::sync::CancellationToken;

/// Runs workflow-api until SIGTERM or Ctrl-C.
pub async fn api(config: wfe_api::Config) -> anyhow::Result<()> {
    wfe_api::run(config, shutdown_on_signal()).await
}

/// Runs a job-agent until SIGTERM or Ctrl-C (then drains).
pub async fn job_agent(cli: wfe_job_agent::cli::JobAgentCli) -> anyhow::Result<()> {
    cli.run(shutdown_on_signal()).await
}

/// Runs a tekton-agent until SIGTERM or Ctrl-C (then drains).
pub async fn tekton_agent(cli: wfe_tekton_agent::cli::TektonAgentCli) -> anyhow::Result<()> {
    cli.run(shutdown_on_signal()).await
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        crate::dev::wait_for_shutdown_signal().await;
        t.cancel();
    });
    token
}
