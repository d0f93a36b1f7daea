//! Locates the binaries under test, building each once per test process.
//!
//! Cargo exposes `CARGO_BIN_EXE_<name>` to integration tests only for binaries of
//! the *same* package; `wfe` belongs to `wfe-dev`, and artifact dependencies
//! are unstable. So the first test
//! that needs one runs `cargo build -p <package> --bin <name>` (a no-op when it is
//! fresh) and takes the executable path from cargo's JSON messages, which respects
//! `$CARGO`, `CARGO_TARGET_DIR` and any configured target dir.
//! `WFE_E2E_BIN=<path>` skips the build.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// Built binaries by name; the lock also serializes builds within this process.
static BUILT: Mutex<Option<HashMap<&'static str, PathBuf>>> = Mutex::new(None);

/// Path of a fresh `wfe` binary (built on first use).
pub fn wfe() -> anyhow::Result<PathBuf> {
    get("wfe-dev", "wfe", "WFE_E2E_BIN")
}

fn get(package: &str, bin: &'static str, override_var: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(override_var) {
        return Ok(PathBuf::from(p));
    }
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(p) = built.get(bin) {
        return Ok(p.clone());
    }
    let path = build(package, bin)?;
    built.insert(bin, path.clone());
    Ok(path)
}

fn build(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--bin", bin])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build -p {package} --bin {bin} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    executable(&String::from_utf8_lossy(&out.stdout), bin)
}

/// The `executable` of the `bin` compiler-artifact message.
fn executable(messages: &str, bin: &str) -> anyhow::Result<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo reported no {bin} executable"))
}
