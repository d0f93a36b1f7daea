//! Every kustomize overlay under deploy/ renders with the real kubectl, and the
//! rendered objects are accepted by a Kubernetes API server (the sandbox).

use std::process::{Command, Stdio};

use clap::{CommandFactory, Parser};
use common::kustomize;
use serde::Deserialize;
use wfe_sandbox::{Sandbox, SandboxConfig};

mod common;

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

/// The Deployments of a rendered overlay, as JSON.
fn deployments(rendered: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(rendered)
        .map(|doc| serde_json::Value::deserialize(doc).expect("YAML document"))
        .filter(|d| d["kind"] == "Deployment")
        .collect()
}

/// The command line a container's args and env amount to: every env variable the binary
/// knows becomes its flag; a `WFE_*` variable it does not know is an error.
fn argv(cmd: &clap::Command, container: &serde_json::Value) -> Vec<String> {
    let mut argv = vec![cmd.get_name().to_owned()];
    for a in container["args"].as_array().into_iter().flatten() {
        argv.push(a.as_str().expect("string arg").to_owned());
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name");
        let flag = cmd
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|env| env.to_str() == Some(name)));
        let Some(flag) = flag else {
            assert!(
                !name.starts_with("WFE_"),
                "{}: env {name} is not a flag of {}",
                container["name"],
                cmd.get_name()
            );
            continue;
        };
        let long = flag.get_long().expect("every env flag has a long name");
        // A value from a Secret or the downward API: any text stands for it.
        let value = e["value"].as_str().unwrap_or("from-elsewhere");
        if flag.get_action().takes_values() {
            argv.push(format!("--{long}={value}"));
        } else if value == "true" {
            argv.push(format!("--{long}"));
        }
    }
    argv
}

#[test]
fn every_deployment_runs_its_binary_with_flags_it_accepts() {
    let mut seen = std::collections::BTreeSet::new();
    for overlay in ["single-cluster", "hub", "remote-cluster"] {
        for d in deployments(&kustomize(overlay)) {
            for c in d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .expect("containers")
            {
                let name = c["name"].as_str().expect("container name");
                let parsed = match name {
                    "workflow-api" => {
                        let argv = argv(&wfe_api::Config::command(), c);
                        wfe_api::Config::try_parse_from(&argv).map(|_| argv)
                    }
                    "job-agent" => {
                        let argv = argv(&wfe_job_agent::cli::JobAgentCli::command(), c);
                        wfe_job_agent::cli::JobAgentCli::try_parse_from(&argv).map(|_| argv)
                    }
                    "tekton-agent" => {
                        let argv = argv(&wfe_tekton_agent::cli::TektonAgentCli::command(), c);
                        wfe_tekton_agent::cli::TektonAgentCli::try_parse_from(&argv).map(|_| argv)
                    }
                    other => panic!("{overlay}: a container {other} this test does not know"),
                };
                if let Err(e) = parsed {
                    panic!("{overlay}/{name}: the binary refuses its manifest's flags:\n{e}");
                }
                seen.insert(name.to_owned());
            }
        }
    }
    assert_eq!(seen.len(), 3, "every binary checked: {seen:?}");
}
