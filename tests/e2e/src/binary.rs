//! Locates the binaries under test, building each once per test process.
//!
//! Cargo exposes `CARGO_BIN_EXE_<name>` to integration tests only for binaries of
//! the *same* package; `wfe` belongs to `wfe-dev` (and `job-agent` to
//! `wfe-job-agent`, `tekton-agent` to `wfe-tekton-agent`), and artifact dependencies
//! are unstable. So the first test
//! that needs one runs `cargo build -p <package> --bin <name>` (a no-op when it is
//! fresh) and takes the executable path from cargo's JSON messages, which respects
//! `$CARGO`, `CARGO_TARGET_DIR` and any configured target dir.
//! `WFE_E2E_BIN=<path>` (and `WFE_E2E_JOB_AGENT_BIN`, `WFE_E2E_TEKTON_AGENT_BIN`) skip
//! the build.

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

/// Path of the standalone production `job-agent` binary. `wfe job-agent` has no
/// `--stuck-grace-seconds` (it runs with the 120 s default), so tests of failures
/// that surface only after that grace (image pull, missing Secret) run this one.
pub fn job_agent() -> anyhow::Result<PathBuf> {
    get("wfe-job-agent", "job-agent", "WFE_E2E_JOB_AGENT_BIN")
}

/// Path of the standalone production `tekton-agent` binary. `wfe tekton-agent` has no
/// `--stuck-grace-seconds` (it runs with the 120 s default), so the missing-Secret test,
/// whose failure surfaces only after that grace, runs this one.
pub fn tekton_agent() -> anyhow::Result<PathBuf> {
    get(
        "wfe-tekton-agent",
        "tekton-agent",
        "WFE_E2E_TEKTON_AGENT_BIN",
    )
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
