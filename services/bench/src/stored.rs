//! The `--stored N` mode: RSS of workflow-api with N terminal executions stored.

use crate::cli::Args;

/// Stores `n` terminal executions and reports the API's RSS.
pub async fn run(_args: &Args, _n: usize) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
