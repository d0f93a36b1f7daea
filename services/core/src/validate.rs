//! Request validation with field-level violations, shaped for `google.rpc.BadRequest`.
//!
//! [`validate_request`] reports every violation, not only the first, so a caller can fix
//! the whole request at once. Field paths are the proto paths of `ExecuteWorkflowRequest`
//! (`spec.workflow_ref.container_image`, `spec.parameters[FOO]`,
//! `spec.execution_config.dependencies.secrets[0]`); the prefixes are in [`fields`].

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{Engine, ExecutionRequest, TargetResource};

pub mod oci;
pub mod quantity;
mod rules;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_config;

/// Field paths used in violations: the proto paths of `ExecuteWorkflowRequest`
/// (`namespace` and `idempotency_key` at the top, everything else under `spec`).
pub mod fields {
    #![allow(missing_docs)]
    pub const RR_NAME: &str = "spec.remediation_request_ref.name";
    pub const RR_NAMESPACE: &str = "spec.remediation_request_ref.namespace";
    pub const RR_UID: &str = "spec.remediation_request_ref.uid";
    pub const WORKFLOW_ID: &str = "spec.workflow_ref.workflow_id";
    pub const WORKFLOW_NAME: &str = "spec.workflow_ref.workflow_name";
    pub const ACTION_TYPE: &str = "spec.workflow_ref.action_type";
    pub const VERSION: &str = "spec.workflow_ref.version";
    pub const CONTAINER_IMAGE: &str = "spec.workflow_ref.container_image";
    pub const ENGINE: &str = "spec.execution_engine";
    pub const TARGET: &str = "spec.target_resource";
    pub const CLUSTER_ID: &str = "spec.cluster_id";
    /// Whole map (count); single entries are `spec.parameters[KEY]`.
    pub const PARAMETERS: &str = "spec.parameters";
    pub const SERVICE_ACCOUNT: &str = "spec.execution_config.service_account_name";
    pub const TIMEOUT: &str = "spec.execution_config.timeout";
    pub const TIMES_OUT_AT: &str = "spec.execution_config.times_out_at";
    /// Entries are `…secrets[i]`.
    pub const SECRETS: &str = "spec.execution_config.dependencies.secrets";
    /// Entries are `…config_maps[i]`.
    pub const CONFIG_MAPS: &str = "spec.execution_config.dependencies.config_maps";
    /// Entries are `…requests[name]`.
    pub const REQUESTS: &str = "spec.execution_config.resources.requests";
    /// Entries are `…limits[name]`.
    pub const LIMITS: &str = "spec.execution_config.resources.limits";
    /// Entries are `…names[NAME]` (keyed by the name: the model holds a sorted set).
    pub const DECLARED: &str = "spec.execution_config.declared_parameter_names.names";
    pub const CONFIDENCE: &str = "spec.confidence";
    pub const RATIONALE: &str = "spec.rationale";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const NAMESPACE: &str = "namespace";
    /// The request as a whole (total size).
    pub const REQUEST: &str = "spec";
}

/// Size and range limits.
pub mod limits {
    use std::time::Duration;

    /// Parameters per request.
    pub const MAX_PARAMETERS: usize = 64;
    /// Bytes per parameter name.
    pub const MAX_PARAMETER_NAME_BYTES: usize = 128;
    /// Bytes per parameter value.
    pub const MAX_PARAMETER_VALUE_BYTES: usize = 4 * 1024;
    /// Estimated bytes per request (sum of all strings plus per-field overhead).
    pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
    /// Bytes of rationale.
    pub const MAX_RATIONALE_BYTES: usize = 16 * 1024;
    /// Characters of the idempotency key.
    pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 253;
    /// Bytes of identifiers such as workflow name, action type, version and uid.
    pub const MAX_IDENTIFIER_BYTES: usize = 253;
    /// Bytes of the target string.
    pub const MAX_TARGET_BYTES: usize = 1024;
    /// Secrets, and separately config maps, per request.
    pub const MAX_DEPENDENCIES: usize = 64;
    /// Declared parameter names per request.
    pub const MAX_DECLARED_PARAMETERS: usize = 256;
    /// Longest timeout, and furthest deadline from now.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// Estimated framing bytes per field or map entry in the size estimate.
    pub const PER_FIELD_OVERHEAD: usize = 8;
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// Proto-style path, e.g. `parameters[FOO]`.
    pub field: String,
    /// What is wrong and what is expected.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The parts of a valid request that callers otherwise parse again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedRequest {
    /// The engine (empty input → Tekton).
    pub engine: Engine,
    /// The parsed target.
    pub target: TargetResource,
}

/// Validates a request at `now` (deadlines must lie in the future). Returns every violation.
pub fn validate_request(
    req: &ExecutionRequest,
    now: Timestamp,
) -> Result<ValidatedRequest, Vec<FieldViolation>> {
    let mut v = Vec::new();
    rules::remediation_ref(&req.remediation_request_ref, &mut v);
    rules::workflow_ref(&req.workflow_ref, &mut v);
    let engine = rules::engine(&req.engine, &mut v);
    let target = rules::target(&req.target, &mut v);
    rules::placement(req, &mut v);
    rules::parameters(&req.parameters, &mut v);
    rules::execution_config(&req.execution_config, now, &mut v);
    rules::audit_fields(req, &mut v);
    rules::total_size(req, &mut v);
    match (engine, target) {
        (Some(engine), Some(target)) if v.is_empty() => Ok(ValidatedRequest { engine, target }),
        _ => Err(v),
    }
}

/// `24h0m0s`-style rendering of a limit for messages.
fn fmt_limit(d: Duration) -> String {
    crate::duration::format_go(d)
}
