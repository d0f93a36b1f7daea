//! What the deploy/ tests share: where the repository is, and the rendered overlays.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `kubectl kustomize deploy/overlays/<overlay>`, with the real kubectl.
pub fn kustomize(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join("deploy/overlays").join(overlay))
        .output()
        .expect("kubectl is on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 manifests")
}
