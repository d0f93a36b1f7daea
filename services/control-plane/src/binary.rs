//! Where the built control plane is: `tests/control-plane/build` puts the kubecp
//! binary and Tekton's CRDs under `target/control-plane/`.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Environment variable naming the kubecp binary (overrides the search).
pub const KUBECP_ENV: &str = "WFE_KUBECP";
/// Environment variable naming the directory of Tekton's CRDs.
pub const TEKTON_CRDS_ENV: &str = "WFE_TEKTON_CRDS";

/// The kubecp binary: `$WFE_KUBECP`, else `target/control-plane/kubecp` above the
/// running executable (`target/<profile>/wfe`) or the working directory.
pub fn kubecp() -> anyhow::Result<PathBuf> {
    find(KUBECP_ENV, "kubecp")
}

/// The directory holding Tekton's PipelineRun and TaskRun CRDs, as the build copied
/// them from the pinned `github.com/tektoncd/pipeline` module.
pub fn tekton_crds() -> anyhow::Result<PathBuf> {
    find(TEKTON_CRDS_ENV, "tekton-crds")
}

fn find(env: &str, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().map(Path::to_path_buf));
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(|a| a.join("target")));
    }
    for root in roots {
        let candidate = root.join("control-plane").join(name);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "no real control plane built ({name} not found under target/control-plane/): \
         run tests/control-plane/build first (the first build takes 10-20 minutes), \
         or set {env}"
    )
}
