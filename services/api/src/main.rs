//! workflow-api binary: parse flags (or `WFE_API_*` variables) and run until SIGTERM/SIGINT.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = wfe_api::Config::parse();
    wfe_api::server::init_tracing(&config.log_format);
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(wfe_process::shutdown::cancel_on_signal(shutdown.clone()));
    wfe_api::run(config, shutdown).await
}
