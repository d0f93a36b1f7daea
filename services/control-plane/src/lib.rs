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
pub use pki::Pki;
