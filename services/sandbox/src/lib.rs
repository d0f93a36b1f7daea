//! Embedded Kubernetes-compatible API server for **development and tests only**.
//!
//! Production runs on a real Kubernetes cluster. This crate exists because the machines of this
//! project have no cluster and no container engine, while our services talk to Kubernetes
//! through kube-rs and must be exercised over real HTTP. The sandbox speaks enough of the
//! Kubernetes REST API for kube-rs, kubectl and the Python `kubernetes` client: discovery,
//! CRUD + patch (merge, JSON, strategic-as-merge, server-side apply approximated as a merge),
//! list with selectors and pagination, watch with bookmarks and 410 Gone, status subresources,
//! finalizers and garbage collection, CRDs with schema validation, and Table output.
//!
//! The modules follow kube-apiserver's split:
//!
//! ```text
//!  kube-rs / kubectl / python ──HTTP──► http/      routing, access (tokens, RBAC), discovery, openapi,
//!                                       │          protobuf bodies, read/write/watch handlers, tables
//!                                       ▼
//!                                      registry/  resources (built-ins, CRDs), strategy (per-resource
//!                                       │          behaviour), objects (create/update rules), schema,
//!                                       │          quota and serviceaccount admission, lifecycle
//!                                       │          (deletes), gc (owners, namespaces, CRD cleanup)
//!                                       ▼
//!                                      storage/   store (objects, global rv, history ring, watch
//!                                       │          window) ──► watch streams; persist (snapshot + log)
//!                                       │ sinks (every event, in order) ──► registry::gc
//!  machinery/  errors (Status), meta, selectors, JSONPath, patches: shared by every layer
//!  controllers/  simulated Job controller, kubelet and Tekton: plain kube-rs clients over HTTP
//! ```
//!
//! `registry` and `storage` import nothing from `http`; the HTTP layer reaches them through
//! [`registry::Backend`]. Where resources differ (namespaces, pods, secrets, Jobs, CRDs, ...),
//! a [`registry::strategy::Strategy`] says how, resolved once when the resource is registered.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sb = wfe_sandbox::Sandbox::start(wfe_sandbox::SandboxConfig::default()).await?;
//! let client = sb.kube_client()?; // a kube::Client pointing at the sandbox, no auth
//! println!("serving on {}", sb.url());
//! sb.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Known differences from a real API server: authentication and authorisation only when asked
//! for (bearer tokens and RBAC, see [`access`]), ResourceQuota
//! enforces object counts only (see [`registry::quota`]), no admission
//! webhooks, protobuf only as noted below, no CRD version conversion (all versions share one stored form), no
//! managedFields/field ownership (server-side apply merges the applied config, never removes fields
//! a manager dropped from its next apply, and never reports
//! conflicts), strategic merge patches merge lists of objects by a heuristic merge key
//! (`name`, `containerPort`, `mountPath`, `type`, ...), and only the CEL rule `self == oldSelf`
//! is evaluated.
//!
//! # Measured against a real control plane
//!
//! `tests/e2e/tests/differential.rs` runs one scripted sequence of API calls here and on
//! a real kube-apiserver 1.36 with kube-controller-manager (`wfe real-cluster`) and
//! compares what the product relies on. What the first real runs showed, and what
//! became of it:
//!
//! | real behaviour | here |
//! |---|---|
//! | ServiceAccount admission refuses a Pod whose account does not exist ("error looking up service account") | the same (Job controller: `FailedCreate` events on the Job) |
//! | Tekton's failure message ends in the terminated reason (`exited with code 3: Error`) | the same |
//! | a watch cache starts with the server: an older resourceVersion is 410 Gone | the same (the window starts when the sandbox does; a CRD created later shares the server's window, where the real cache of a new resource starts at its creation) |
//! | ResourceQuota admission reads `status.hard`, filled in by the resourcequota controller a moment later (a new quota is first ignored, then "status unknown for quota" may refuse), and a quota on a CRD's resources counts only once the controller has discovered it (at start, then every 30 s) | **differs**: admission counts against `spec.hard` at once. Kept: the product retries "status unknown for quota" and tests wait for `status.used` on the real backend |
//! | PodSecurity admission enforces the namespace's `pod-security.kubernetes.io/enforce` level | **differs**: not enforced. The real backend enforces `restricted` on deploy/'s namespaces in every e2e test, which is where a non-compliant Job pod would fail |
//! | the Job controller's pod-failure backoff is 10 s, doubling, to 6 min | **differs**: 1 s, fixed (`ControllerConfig::pod_retry_delay`), so tests run fast |
//! | Events expire after `--event-ttl` (1 h) | **differs**: Events are kept |
//! | HTTPS only; kube-root-ca.crt in every namespace; the scheduler binds pods to nodes | **differs**: plain HTTP; no kube-root-ca.crt; the simulated kubelet marks pods scheduled without binding them (`spec.nodeName` stays empty, so deletes are immediate as for an unscheduled pod) |
//!
//! Behaviours worth knowing (as on a real server unless said otherwise):
//! - request bodies are JSON (or YAML); of protobuf, only what kubectl's typed commands send for
//!   Namespace, ConfigMap, Secret and ServiceAccount is read (`kubectl create namespace|configmap|
//!   secret|serviceaccount`); other protobuf bodies get 415, so `kubectl create job` and
//!   `kubectl run` fail; `kubectl create -f` / `kubectl apply -f` (JSON on the wire) always work;
//! - objects can only be created in existing namespaces (`default`, `kube-system` and
//!   `kube-public` exist at start; a new namespace gets a `default` service account);
//! - deleting a batch/v1 Job without a propagationPolicy orphans its pods (the real default);
//! - core/v1 and events.k8s.io/v1 Events are stored separately (no conversion between them);
//! - garbage collection and namespace cleanup run asynchronously right after the delete;
//! - `Sandbox::expire_watches` is a test hook that ends every open watch with 410 Expired.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod controllers;
pub mod http;
pub mod machinery;
pub mod registry;
pub mod storage;

/// Bearer tokens and RBAC, public for the binaries' `--authorization-mode` flags.
pub use http::access;

mod sandbox;

pub use sandbox::{Sandbox, SandboxConfig, SandboxError};
