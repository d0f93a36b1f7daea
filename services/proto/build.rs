//! Compiles `proto/` into Rust with tonic-prost-build.
//!
//! protoc comes from the `protoc-bin-vendored` crate, so a fresh machine needs
//! no system protoc. The file descriptor set is written too, for gRPC reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "kubernaut/workflowexecution/v1/types.proto",
    "kubernaut/workflowexecution/v1/workflow_execution_service.proto",
    "kubernaut/workflowexecution/agent/v1/agent_session_service.proto",
    // Only for the descriptor set: clients decode error details through reflection.
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // set_var is unsafe in edition 2024, so hand protoc to the builder config
    // instead of exporting PROTOC.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("descriptor.bin"))
        .compile_with_config(config, &files, &[root.clone(), include])?;

    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
