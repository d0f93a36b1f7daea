//! Kubernetes types of the WorkflowExecution service.
//!
//! - [`workflow_execution`]: the `WorkflowExecution` custom resource
//!   (`kubernaut.ai/v1alpha1`), from which the CRD in `deploy/crds/` is generated
//!   (`cargo run -p wfe-k8s --bin gen-crds`; a test fails when the file is stale).
//! - [`tekton`]: the parts of Tekton's `PipelineRun` and `TaskRun` the agents use.
//! - [`labels`]: the labels and annotations that tie primitives to executions.
//! - [`errors`]: NotFound / AlreadyExists / Conflict, as every writer reads them.

pub mod crd;
pub mod errors;
pub mod labels;
pub mod tekton;
pub mod workflow_execution;

pub use workflow_execution::{WorkflowExecution, WorkflowExecutionSpec, WorkflowExecutionStatus};
