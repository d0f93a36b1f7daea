//! The tekton.dev/v1 PipelineRun of reference §4.3, built from an Assign. Pure.
//! Unlike upstream, the execution deadline becomes `spec.timeouts.pipeline`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wfe_core::duration::format_go;
use wfe_core::params::{filter_declared_parameters, is_reserved_parameter_name};
use wfe_k8s::tekton::{
    ConfigMapSource, Param, PipelineRef, PipelineRun, PipelineRunSpec, SecretSource,
    TaskRunTemplate, Timeouts, WorkspaceBinding,
};
use wfe_proto::agent::Assign;

/// Why an Assign cannot become a PipelineRun.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A required field is empty.
    #[error("assignment has no {0}")]
    Missing(&'static str),
}

fn param(name: &str, value: &str) -> Param {
    Param {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

/// `spec.timeouts.pipeline`: the time left until the deadline, as a Go duration to the
/// millisecond, rounded up (`2.731s`: whole seconds would end the run up to a second
/// before the deadline); at least 1 s, also when the deadline has passed (0 would mean
/// no timeout to Tekton); `None` without a deadline (Tekton's default applies).
pub fn pipeline_timeout(deadline: Option<Timestamp>, now: Timestamp) -> Option<String> {
    let left = deadline?.duration_since(now);
    let nanos = u64::try_from(left.as_nanos()).unwrap_or(0);
    let millis = nanos.div_ceil(1_000_000).max(1_000);
    Some(format_go(std::time::Duration::from_millis(millis)))
}

/// Builds the PipelineRun.
pub fn build_pipeline_run(
    a: &Assign,
    namespace: &str,
    now: Timestamp,
) -> Result<PipelineRun, BuildError> {
    let bundle = a
        .workflow_ref
        .as_ref()
        .map(|w| w.container_image.clone())
        .filter(|i| !i.is_empty())
        .ok_or(BuildError::Missing("workflow bundle"))?;
    if a.primitive_name.is_empty() {
        return Err(BuildError::Missing("primitive name"));
    }
    let deadline = a
        .deadline
        .as_ref()
        .and_then(|t| Timestamp::new(t.seconds, t.nanos).ok());
    let spec = PipelineRunSpec {
        pipeline_ref: Some(PipelineRef {
            resolver: Some("bundles".into()),
            params: vec![
                param("bundle", &bundle),
                param("name", "workflow"),
                param("kind", "pipeline"),
            ],
        }),
        params: params(a),
        workspaces: workspaces(a),
        task_run_template: Some(TaskRunTemplate {
            service_account_name: Some(a.service_account_name.clone()).filter(|s| !s.is_empty()),
            pod_template: Some(serde_json::json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}
            })),
        }),
        timeouts: pipeline_timeout(deadline, now).map(|p| Timeouts { pipeline: Some(p) }),
        status: None,
    };
    let mut pr = PipelineRun::new(&a.primitive_name, spec);
    pr.metadata = ObjectMeta {
        name: Some(a.primitive_name.clone()),
        namespace: Some(namespace.to_owned()),
        labels: Some(wfe_agent::primitive::primitive_labels(a, "tekton")),
        annotations: Some(wfe_agent::primitive::primitive_annotations(a)),
        ..Default::default()
    };
    Ok(pr)
}

/// The declared parameters (sorted; reserved names never overridden), then
/// `TARGET_RESOURCE` last.
fn params(a: &Assign) -> Vec<Param> {
    let all: BTreeMap<String, String> = a.parameters.clone().into_iter().collect();
    let declared: Option<BTreeSet<String>> = a
        .declared_parameter_names
        .as_ref()
        .map(|d| d.names.iter().cloned().collect());
    let mut out: Vec<Param> = filter_declared_parameters(&all, declared.as_ref())
        .iter()
        .filter(|(k, _)| !is_reserved_parameter_name(k))
        .map(|(k, v)| param(k, v))
        .collect();
    out.push(param("TARGET_RESOURCE", &a.target_resource));
    out
}

fn workspaces(a: &Assign) -> Vec<WorkspaceBinding> {
    let deps = a.dependencies.clone().unwrap_or_default();
    let secrets = deps.secrets.iter().map(|s| WorkspaceBinding {
        name: format!("secret-{s}"),
        secret: Some(SecretSource {
            secret_name: s.clone(),
        }),
        config_map: None,
    });
    let config_maps = deps.config_maps.iter().map(|c| WorkspaceBinding {
        name: format!("configmap-{c}"),
        secret: None,
        config_map: Some(ConfigMapSource { name: c.clone() }),
    });
    secrets.chain(config_maps).collect()
}

#[cfg(test)]
mod tests;
