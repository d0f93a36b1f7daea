//! A real Kubernetes control plane for development, tests and benchmarks: etcd,
//! kube-apiserver and kube-controller-manager, built from the upstream Go modules
//! into one multi-call binary by `tests/control-plane/build`, run as separate
//! processes on loopback.
//!
//! ```text
//!  wfe real-cluster ──spawns──► kubecp etcd ◄── kubecp kube-apiserver (HTTPS, tokens, RBAC)
//!        │                                           ▲        ▲
//!        │                     kubecp kube-controller-manager (Jobs, GC, TTL, namespaces,
//!        │                                           │         service accounts, quota)
//!        └─ in process: the sandbox's simulated kubelet and Tekton controller (kube-rs clients)
//! ```
//!
//! The real controllers replace the sandbox's Job controller and garbage collector;
//! no node and no container runs, so the sandbox's kubelet (scheduler and kubelet of
//! one node) and its Tekton controller still play those parts, against Tekton's real
//! CRDs. Data, PKI, the token file and the logs live in one directory, so a restart
//! finds the cluster as it was.

pub mod binary;
pub mod bootstrap;
mod cluster;
pub mod kubeconfig;
pub mod pki;
mod process;

pub use cluster::{ControlPlane, ControlPlaneConfig, free_loopback_addr};

/// Ends what is left of a control plane whose supervisor (`wfe real-cluster`) was
/// SIGKILLed with data directory `data_dir`: its etcd, kube-apiserver and
/// kube-controller-manager exit on their own within half a second, and this makes it
/// at once, so nothing still answers for the dead cluster.
pub fn kill_leftovers(data_dir: &std::path::Path) -> anyhow::Result<()> {
    process::reap_leftovers(&data_dir.join("logs"))
}
pub use pki::Pki;
