//! `sandbox`: run the development Kubernetes API server (not for production).

use clap::Parser;

mod cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::Args::parse().run().await
}
