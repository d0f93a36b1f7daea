//! Generated gRPC code for the WorkflowExecution service.
//!
//! ```text
//! proto/kubernaut/workflowexecution/v1        -> wfe_proto::v1     (RemediationOrchestrator, operators)
//! proto/kubernaut/workflowexecution/agent/v1  -> wfe_proto::agent  (workflow-api <-> executor agents)
//! ```
//!
//! The code is generated at build time from `proto/` (see `build.rs`); nothing
//! generated is checked in, so it cannot go stale. The module tree mirrors the
//! proto packages because prost refers across packages with `super::` paths.

/// The proto package tree, as prost expects it.
pub mod kubernaut {
    /// `kubernaut.workflowexecution.*`
    pub mod workflowexecution {
        /// `kubernaut.workflowexecution.v1`: the orchestrator-facing API.
        pub mod v1 {
            #![allow(clippy::all, missing_docs)]
            tonic::include_proto!("kubernaut.workflowexecution.v1");
        }
        /// `kubernaut.workflowexecution.agent.*`
        pub mod agent {
            /// `kubernaut.workflowexecution.agent.v1`: the API <-> agent session protocol.
            pub mod v1 {
                #![allow(clippy::all, missing_docs)]
                tonic::include_proto!("kubernaut.workflowexecution.agent.v1");
            }
        }
    }
}

mod domain;

pub use kubernaut::workflowexecution::agent::v1 as agent;
pub use kubernaut::workflowexecution::v1;

/// The encoded `FileDescriptorSet` of every proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
