//! Labels and annotations on engine primitives (reference §3.13).
//!
//! Agents find the primitives they own with [`MANAGED_BY`] and the engine
//! label; the API finds an execution from a primitive with
//! [`WORKFLOW_EXECUTION`] and [`SOURCE_NAMESPACE`].

/// Name of the WorkflowExecution that owns the primitive.
pub const WORKFLOW_EXECUTION: &str = "kubernaut.ai/workflow-execution";
/// Namespace of that WorkflowExecution (primitives live in the execution namespace).
pub const SOURCE_NAMESPACE: &str = "kubernaut.ai/source-namespace";
/// UID of that WorkflowExecution, so a recreated execution of the same name is told apart.
pub const WORKFLOW_EXECUTION_UID: &str = "kubernaut.ai/workflow-execution-uid";
/// Catalog id of the workflow.
pub const WORKFLOW_ID: &str = "kubernaut.ai/workflow-id";
/// The target, sanitized into a label value.
pub const TARGET_RESOURCE: &str = "kubernaut.ai/target-resource";
/// `job` or `tekton`.
pub const EXECUTION_ENGINE: &str = "kubernaut.ai/execution-engine";
/// Which component manages the object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`] on every primitive an agent creates.
pub const MANAGED_BY_VALUE: &str = "kubernaut-workflowexecution";
/// Assignment attempt that created the primitive.
pub const ATTEMPT: &str = "kubernaut.ai/attempt";

/// Annotation with the raw (unsanitized) target.
pub const TARGET_RESOURCE_ANNOTATION: &str = "kubernaut.ai/target-resource";
/// Annotation with the fencing token of the assignment that created the primitive.
pub const FENCING_TOKEN_ANNOTATION: &str = "kubernaut.ai/fencing-token";
/// Annotation with the RemediationRequest name (audit correlation id).
pub const REMEDIATION_REQUEST_ANNOTATION: &str = "kubernaut.ai/remediation-request";

/// Label on a WorkflowExecution carrying a hash of its idempotency key, so the
/// API can find it by label selector after a restart.
pub const IDEMPOTENCY_KEY_HASH: &str = "kubernaut.ai/idempotency-key-hash";
/// Annotation on a WorkflowExecution carrying the raw idempotency key.
pub const IDEMPOTENCY_KEY_ANNOTATION: &str = "kubernaut.ai/idempotency-key";
