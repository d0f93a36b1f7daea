//! `wfe real-cluster`: a real control plane (etcd, kube-apiserver,
//! kube-controller-manager from `tests/control-plane/build`) with the
//! WorkflowExecution CRD, Tekton's real CRDs and the stack's namespaces, plus the
//! sandbox's simulated kubelet and Tekton controller, which play the node and
//! Tekton that a real cluster would have. The sandbox's counterpart on the `real`
//! backend: `wfe dev`, the e2e suite and wfe-bench start it in its place.

use std::time::Duration;

use anyhow::Context;
use wfe_control_plane::{ControlPlane, ControlPlaneConfig, binary, bootstrap};
use wfe_sandbox::controllers::{self, ControllerConfig};

use crate::cli::RealClusterArgs;

/// Serves until SIGTERM or Ctrl-C, or until a control-plane process dies.
pub async fn run(args: RealClusterArgs) -> anyhow::Result<()> {
    let job_pod_failure_backoff = args
        .job_pod_failure_backoff
        .as_deref()
        .map(|text| {
            controllers::parse_go_duration(text).with_context(|| {
                format!("--job-pod-failure-backoff {text:?}: want a Go duration such as 1s")
            })
        })
        .transpose()?;
    let config = ControlPlaneConfig {
        kubecp: binary::kubecp()?,
        listen: args.listen,
        data_dir: std::path::absolute(&args.data_dir)?,
        token_auth_file: args.token_auth_file.clone(),
        etcd_fsync: args.etcd_fsync,
        job_pod_failure_backoff,
    };
    let mut plane = ControlPlane::start(&config)
        .await
        .context("starting the control plane")?;
    let client = wfe_control_plane::kubeconfig::client(plane.admin_kubeconfig()).await?;
    let mut crds = vec![serde_json::to_value(wfe_k8s::crd::workflow_execution_crd())?];
    crds.extend(bootstrap::tekton_crds(&binary::tekton_crds()?)?);
    bootstrap::install_crds(&client, &crds).await?;
    bootstrap::ensure_namespaces(&client, &deployed_namespaces()?).await?;
    plane.start_controller_manager(&config)?;
    let simulated = controllers::start(
        client,
        ControllerConfig {
            job_controller: false,
            kubelet: true,
            tekton: true,
            time_scale: args.time_scale,
            ..ControllerConfig::default()
        },
    );
    tracing::info!(url = %plane.url(), data_dir = %config.data_dir.display(), "real cluster ready");
    let outcome = tokio::select! {
        () = crate::dev::wait_for_shutdown_signal() => Ok(()),
        exited = plane.exited() => Err(anyhow::anyhow!("{exited}; stopping the cluster")),
    };
    simulated.shutdown().await;
    tokio::time::timeout(Duration::from_secs(30), plane.stop())
        .await
        .ok();
    outcome
}

/// deploy/'s namespaces as deploy/base/namespaces applies them (PodSecurity
/// `restricted` enforced on both), so every run on a real API server checks that the
/// pods the product creates are admissible there.
const DEPLOY_NAMESPACES: &str = include_str!("../../../deploy/base/namespaces/namespaces.yaml");

fn deployed_namespaces() -> anyhow::Result<Vec<k8s_openapi::api::core::v1::Namespace>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(DEPLOY_NAMESPACES) {
        let ns: k8s_openapi::api::core::v1::Namespace = serde::Deserialize::deserialize(doc)
            .context("parsing deploy/base/namespaces/namespaces.yaml")?;
        out.push(ns);
    }
    let names: Vec<&str> = out
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    for needed in crate::sandbox::NAMESPACES {
        anyhow::ensure!(
            needed == "default" || names.contains(&needed),
            "deploy/base/namespaces has no namespace {needed}"
        );
    }
    Ok(out)
}
