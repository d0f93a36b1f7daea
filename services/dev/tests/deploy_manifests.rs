//! Every kustomize overlay under deploy/ renders with the real kubectl, and the
//! rendered objects are accepted by a Kubernetes API server (the sandbox).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wfe_sandbox::{Sandbox, SandboxConfig};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn kustomize(overlay: &str) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy_dir().join("overlays").join(overlay))
        .output()
        .expect("kubectl is on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {overlay} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 manifests")
}

fn kinds(rendered: &str) -> Vec<&str> {
    rendered
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect()
}

fn apply(server: &str, rendered: &str) -> std::process::Output {
    let mut child = Command::new("kubectl")
        .args(["--server", server, "apply", "--validate=false", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is on PATH");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), rendered.as_bytes())
        .expect("write manifests");
    child.wait_with_output().expect("kubectl apply ends")
}

#[test]
fn overlays_render_with_the_expected_objects() {
    let single = kustomize("single-cluster");
    for kind in [
        "CustomResourceDefinition",
        "Namespace",
        "Deployment",
        "Service",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "NetworkPolicy",
    ] {
        assert!(
            kinds(&single).contains(&kind),
            "single-cluster lacks a {kind}"
        );
    }
    assert_eq!(
        kinds(&single)
            .iter()
            .filter(|k| **k == "Deployment")
            .count(),
        3
    );

    let hub = kustomize("hub");
    assert_eq!(
        kinds(&hub).iter().filter(|k| **k == "Deployment").count(),
        1,
        "hub runs only workflow-api"
    );
    assert!(hub.contains("type: LoadBalancer"));
    assert!(hub.contains("WFE_API_TLS_CERT"));

    let remote = kustomize("remote-cluster");
    assert!(
        !kinds(&remote).contains(&"CustomResourceDefinition"),
        "agents need no CRD"
    );
    assert_eq!(
        remote.matches("WFE_AGENT_TLS_CA").count(),
        2,
        "both agents dial the hub over TLS"
    );
}

#[test]
fn agents_rbac_is_confined_to_the_execution_namespace() {
    let single = kustomize("single-cluster");
    // Roles, never ClusterRoles: least privilege per component.
    assert!(!single.contains("kind: ClusterRole"));
    for doc in single
        .split("\n---\n")
        .filter(|d| d.contains("kind: Role\n"))
    {
        if doc.contains("name: job-agent") || doc.contains("name: tekton-agent") {
            assert!(doc.contains("namespace: kubernaut-workflows"), "{doc}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_overlay_applies_to_a_kubernetes_api() {
    for overlay in ["single-cluster", "hub", "remote-cluster"] {
        let rendered = kustomize(overlay);
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox starts");
        let server = sandbox.url();
        let out = tokio::task::spawn_blocking(move || apply(&server, &rendered))
            .await
            .expect("apply task");
        assert!(
            out.status.success(),
            "kubectl apply of {overlay} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sandbox.shutdown().await;
    }
}
