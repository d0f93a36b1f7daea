//! Locates the `wfe` binary: the `--wfe` path, or a fresh release build.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The `wfe` executable to run the components with.
pub fn wfe(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.clone()),
        None => build(),
    }
}

/// `cargo build --release -p wfe-dev --bin wfe`, taking the path from cargo's JSON messages.
fn build() -> anyhow::Result<PathBuf> {
    eprintln!("building: cargo build --release -p wfe-dev --bin wfe");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "-p", "wfe-dev", "--bin", "wfe"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build --release -p wfe-dev --bin wfe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "wfe")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo reported no wfe executable")
}
