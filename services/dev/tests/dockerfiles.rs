//! The Dockerfiles under deploy/docker build what the manifests run. No Docker engine
//! runs on our machines, so this checks what `docker build` would find out late: the
//! cargo package and binary each Dockerfile builds exist, the runtime stage copies and
//! starts that binary as a non-root user on the minimal image, every Deployment's image
//! has a Dockerfile, and our binaries link nothing the distroless `cc` image lacks.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{kustomize, repo};
use serde::Deserialize;

mod common;

/// The runtime image: glibc and libgcc, nothing else.
const RUNTIME: &str = "FROM gcr.io/distroless/cc-debian12:nonroot";
/// Shared libraries distroless `cc-debian12` provides.
const RUNTIME_LIBS: [&str; 8] = [
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
];

/// (file stem, text) of every Dockerfile.
fn dockerfiles() -> Vec<(String, String)> {
    let dir = repo().join("deploy/docker");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("deploy/docker")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "Dockerfile"))
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect();
    out.sort();
    out
}

/// The `-p <package> --bin <binary>` of a Dockerfile's `cargo build`.
fn built(text: &str) -> (String, String) {
    let words: Vec<&str> = text
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build step")
        .split_whitespace()
        .collect();
    let after = |flag: &str| {
        let i = words.iter().position(|w| *w == flag).expect(flag);
        words[i + 1].to_owned()
    };
    (after("-p"), after("--bin"))
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// (package, binary) of every binary target in the workspace.
fn workspace_binaries() -> BTreeSet<(String, String)> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Metadata = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    meta.packages
        .into_iter()
        .flat_map(|p| {
            p.targets
                .into_iter()
                .filter(|t| t.kind.iter().any(|k| k == "bin"))
                .map(move |t| (p.name.clone(), t.name))
        })
        .collect()
}

#[test]
fn each_dockerfile_builds_and_starts_a_binary_of_the_workspace() {
    let binaries = workspace_binaries();
    let files = dockerfiles();
    assert_eq!(files.len(), 3, "one Dockerfile per binary: {files:?}");
    for (stem, text) in files {
        let (package, bin) = built(&text);
        assert_eq!(stem, bin, "{stem}.Dockerfile is named after what it builds");
        assert!(
            binaries.contains(&(package.clone(), bin.clone())),
            "{stem}.Dockerfile builds -p {package} --bin {bin}, which the workspace lacks"
        );
        assert!(text.contains("--locked"), "{stem}: builds from Cargo.lock");
        assert!(text.contains(RUNTIME), "{stem}: the minimal runtime image");
        assert!(
            text.contains(&format!("COPY --from=build /{bin} /usr/local/bin/{bin}")),
            "{stem}: copies its binary from the build stage"
        );
        assert!(
            text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")),
            "{stem}: starts its binary"
        );
        assert!(
            text.contains("USER 65532:65532"),
            "{stem}: runs as non-root"
        );
    }
}

#[test]
fn every_deployed_image_has_a_dockerfile() {
    let have: BTreeSet<String> = dockerfiles().into_iter().map(|(stem, _)| stem).collect();
    let images: BTreeSet<String> = kustomize("single-cluster")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: ghcr.io/kubernaut/"))
        .map(|i| i.split(':').next().unwrap_or(i).to_owned())
        .collect();
    assert_eq!(images, have, "Deployment images and Dockerfiles");
}

/// `wfe` links the same crates as the three production binaries (it runs them all).
#[test]
fn the_binaries_need_no_library_the_runtime_image_lacks() {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_wfe"))
        .output()
        .expect("ldd runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let lib = line.split_whitespace().next().unwrap_or_default();
        let name = Path::new(lib)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            RUNTIME_LIBS.contains(&name.as_str()),
            "wfe links {lib}, which distroless cc-debian12 does not have (ldd: {line})"
        );
    }
}
