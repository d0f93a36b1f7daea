//! End-to-end harness: the real `wfe` binary's components as separate processes,
//! driven by real clients.
//!
//! ```text
//!  test ──tonic / grpcurl / python grpcio──► wfe api (1..n) ◄──Session── wfe job-agent / tekton-agent
//!    │                                           │                              │
//!    └────────────── kubectl ──────────────► wfe sandbox (--data-dir) ◄─────────┘
//! ```
//!
//! Every test gets its own [`Stack`]: a temp dir with a kubeconfig, token files and
//! audit files, and free loopback ports. Components can be SIGKILLed and restarted
//! one by one ([`Stack::kill`], [`Stack::restart`]); the sandbox keeps its objects in
//! its data dir, so a restart loses nothing a real cluster would keep.

pub mod agent;
pub mod binary;
pub mod clients;
pub mod cluster;
pub mod ports;
pub mod process;
pub mod request;
pub mod stack;
pub mod wait;

pub use request::Req;
pub use stack::{Backend, Component, RemoteCluster, Stack, StackOptions};
pub use wait::eventually;

/// Generated types of the orchestrator-facing API.
pub use wfe_proto::v1;
