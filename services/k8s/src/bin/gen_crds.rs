//! Writes the generated CRDs under `deploy/crds/`. With `--check`, fails
//! instead when the committed files differ (CI runs it that way).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/crds/kubernaut.ai_workflowexecutions.yaml");
    let yaml = match wfe_k8s::crd::workflow_execution_crd_yaml() {
        Ok(y) => y,
        Err(e) => {
            eprintln!("cannot render the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != yaml {
            eprintln!(
                "{} is stale: run `cargo run -p wfe-k8s --bin gen-crds`",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::write(&path, yaml) {
        eprintln!("cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    ExitCode::SUCCESS
}
