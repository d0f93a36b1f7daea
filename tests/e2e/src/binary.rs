//! Locates the `wfe` binary, building it once per test process.
//!
//! Cargo exposes `CARGO_BIN_EXE_<name>` to integration tests only for binaries of
//! the *same* package; `wfe` belongs to `wfe-dev`, and artifact dependencies are
//! unstable. So the first test that needs it runs `cargo build -p wfe-dev --bin wfe`
//! (a no-op when it is fresh) and takes the executable path from cargo's JSON
//! messages, which respects `$CARGO`, `CARGO_TARGET_DIR` and any configured target dir.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

static WFE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of a fresh `wfe` binary (built on first use).
pub fn wfe() -> anyhow::Result<PathBuf> {
    match WFE.get_or_init(|| build().map_err(|e| format!("{e:#}"))) {
        Ok(p) => Ok(p.clone()),
        Err(e) => bail!("building wfe: {e}"),
    }
}

fn build() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-q", "-p", "wfe-dev", "--bin", "wfe"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build -p wfe-dev failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    executable(&String::from_utf8_lossy(&out.stdout))
}

/// The `executable` of the `wfe` compiler-artifact message.
fn executable(messages: &str) -> anyhow::Result<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "wfe")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo reported no wfe executable")
}
