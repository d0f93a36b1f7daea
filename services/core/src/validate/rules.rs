//! The individual validation rules; each appends its violations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use super::limits::*;
use super::{FieldViolation, fields, fmt_limit, oci, quantity};
use crate::model::{
    Dependencies, Engine, ExecutionConfig, ExecutionRequest, RemediationRequestRef, Resources,
    TargetResource, WorkflowRef,
};
use crate::naming::{is_dns1123_label, is_dns1123_subdomain, is_label_value};
use crate::params::{is_parameter_name, is_reserved_parameter_name};

type Out = Vec<FieldViolation>;

fn push(v: &mut Out, field: impl Into<String>, description: impl Into<String>) {
    v.push(FieldViolation::new(field, description));
}

const LABEL_RULE: &str = "must be a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "must be a DNS-1123 subdomain: at most 253 characters of lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit";

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Required, bounded, no control characters.
fn identifier(v: &mut Out, field: &str, value: &str) {
    if value.is_empty() {
        push(v, field, "is required");
    } else if value.len() > MAX_IDENTIFIER_BYTES {
        push(
            v,
            field,
            format!(
                "must be at most {MAX_IDENTIFIER_BYTES} bytes, got {}",
                value.len()
            ),
        );
    } else if has_control(value) {
        push(v, field, "must not contain control characters");
    }
}

fn required_label(v: &mut Out, field: &str, value: &str) {
    if value.is_empty() {
        push(v, field, "is required");
    } else if !is_dns1123_label(value) {
        push(v, field, format!("{value:?} {LABEL_RULE}"));
    }
}

fn subdomain(v: &mut Out, field: &str, value: &str) {
    if !is_dns1123_subdomain(value) {
        push(v, field, format!("{value:?} {SUBDOMAIN_RULE}"));
    }
}

pub(super) fn remediation_ref(r: &RemediationRequestRef, v: &mut Out) {
    if r.name.is_empty() {
        push(v, fields::RR_NAME, "is required");
    } else {
        subdomain(v, fields::RR_NAME, &r.name);
    }
    required_label(v, fields::RR_NAMESPACE, &r.namespace);
    if r.uid.len() > MAX_IDENTIFIER_BYTES || has_control(&r.uid) {
        push(
            v,
            fields::RR_UID,
            format!("must be at most {MAX_IDENTIFIER_BYTES} printable bytes"),
        );
    }
}

pub(super) fn workflow_ref(w: &WorkflowRef, v: &mut Out) {
    if w.workflow_id.is_empty() {
        push(v, fields::WORKFLOW_ID, "is required");
    } else if !is_label_value(&w.workflow_id) {
        // It becomes the `kubernaut.ai/workflow-id` label of the primitive.
        push(
            v,
            fields::WORKFLOW_ID,
            "must be a valid label value: at most 63 of letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        );
    }
    identifier(v, fields::WORKFLOW_NAME, &w.workflow_name);
    identifier(v, fields::ACTION_TYPE, &w.action_type);
    identifier(v, fields::VERSION, &w.version);
    if let Err(e) = oci::parse_pinned_reference(&w.container_image) {
        push(v, fields::CONTAINER_IMAGE, e.to_string());
    }
}

pub(super) fn engine(raw: &str, v: &mut Out) -> Option<Engine> {
    Engine::parse(raw)
        .map_err(|e| push(v, fields::ENGINE, e.to_string()))
        .ok()
}

pub(super) fn target(raw: &str, v: &mut Out) -> Option<TargetResource> {
    if raw.len() > MAX_TARGET_BYTES {
        push(
            v,
            fields::TARGET,
            format!(
                "must be at most {MAX_TARGET_BYTES} bytes, got {}",
                raw.len()
            ),
        );
        return None;
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        push(
            v,
            fields::TARGET,
            "must not contain whitespace or control characters",
        );
        return None;
    }
    raw.parse()
        .map_err(|e: crate::model::TargetResourceError| push(v, fields::TARGET, e.to_string()))
        .ok()
}

/// Where the execution lives and runs.
pub(super) fn placement(req: &ExecutionRequest, v: &mut Out) {
    required_label(v, fields::NAMESPACE, &req.namespace);
    if !req.cluster_id.is_empty() && !is_dns1123_label(&req.cluster_id) {
        push(
            v,
            fields::CLUSTER_ID,
            format!(
                "{:?} {LABEL_RULE} (or empty for the local cluster)",
                req.cluster_id
            ),
        );
    }
}

/// Shared by parameter keys and declared parameter names.
fn parameter_name(v: &mut Out, field: String, name: &str) {
    if name.len() > MAX_PARAMETER_NAME_BYTES {
        push(
            v,
            field,
            format!("parameter name must be at most {MAX_PARAMETER_NAME_BYTES} bytes"),
        );
    } else if !is_parameter_name(name) {
        push(
            v,
            field,
            "parameter name must be UPPER_SNAKE_CASE (^[A-Z][A-Z0-9_]*$) so it is a valid environment variable name",
        );
    } else if is_reserved_parameter_name(name) {
        push(
            v,
            field,
            format!("parameter name {name} is reserved: the executor sets it"),
        );
    }
}

pub(super) fn parameters(params: &BTreeMap<String, String>, v: &mut Out) {
    if params.len() > MAX_PARAMETERS {
        push(
            v,
            fields::PARAMETERS,
            format!(
                "at most {MAX_PARAMETERS} parameters are allowed, got {}",
                params.len()
            ),
        );
    }
    for (key, value) in params {
        let field = format!("{}[{key}]", fields::PARAMETERS);
        parameter_name(v, field.clone(), key);
        if value.len() > MAX_PARAMETER_VALUE_BYTES {
            push(
                v,
                field,
                format!(
                    "value must be at most {MAX_PARAMETER_VALUE_BYTES} bytes, got {}",
                    value.len()
                ),
            );
        } else if value.contains('\0') {
            push(
                v,
                field,
                "value must not contain NUL characters (not representable in an environment variable)",
            );
        }
    }
}

pub(super) fn execution_config(c: &ExecutionConfig, now: Timestamp, v: &mut Out) {
    if !c.service_account_name.is_empty() {
        subdomain(v, fields::SERVICE_ACCOUNT, &c.service_account_name);
    }
    timeout(c.timeout, v);
    deadline(c.times_out_at, now, v);
    if c.timeout.is_some() && c.times_out_at.is_some() {
        push(
            v,
            fields::TIMES_OUT_AT,
            "timeout and times_out_at are mutually exclusive: set one",
        );
    }
    dependencies(&c.dependencies, v);
    resources(&c.resources, v);
    if let Some(names) = &c.declared_parameter_names {
        declared(names, v);
    }
}

fn timeout(t: Option<Duration>, v: &mut Out) {
    match t {
        Some(d) if d.is_zero() => push(v, fields::TIMEOUT, "must be positive"),
        Some(d) if d > MAX_TIMEOUT => push(
            v,
            fields::TIMEOUT,
            format!("must be at most {}", fmt_limit(MAX_TIMEOUT)),
        ),
        _ => {}
    }
}

fn deadline(at: Option<Timestamp>, now: Timestamp, v: &mut Out) {
    let Some(at) = at else { return };
    if at <= now {
        push(
            v,
            fields::TIMES_OUT_AT,
            format!("must be in the future: {at} is not after {now}"),
        );
    } else if at.duration_since(now).unsigned_abs() > MAX_TIMEOUT {
        push(
            v,
            fields::TIMES_OUT_AT,
            format!("must be at most {} from now", fmt_limit(MAX_TIMEOUT)),
        );
    }
}

fn dependencies(d: &Dependencies, v: &mut Out) {
    for (field, names) in [
        (fields::SECRETS, &d.secrets),
        (fields::CONFIG_MAPS, &d.config_maps),
    ] {
        if names.len() > MAX_DEPENDENCIES {
            push(
                v,
                field,
                format!(
                    "at most {MAX_DEPENDENCIES} are allowed, got {}",
                    names.len()
                ),
            );
        }
        for (i, name) in names.iter().enumerate() {
            let f = format!("{field}[{i}]");
            if name.is_empty() {
                push(v, f, "is required");
            } else {
                subdomain(v, &f, name);
            }
        }
    }
}

fn resources(r: &Resources, v: &mut Out) {
    for (field, map) in [(fields::REQUESTS, &r.requests), (fields::LIMITS, &r.limits)] {
        for (name, value) in map {
            let f = format!("{field}[{name}]");
            if !quantity::is_resource_name(name) {
                push(
                    v,
                    f.clone(),
                    "is not a valid resource name (e.g. cpu, memory, nvidia.com/gpu)",
                );
            }
            if !quantity::is_quantity(value) {
                push(
                    v,
                    f,
                    format!("{value:?} is not a valid quantity (e.g. 100m, 256Mi, 1)"),
                );
            }
        }
    }
}

fn declared(names: &BTreeSet<String>, v: &mut Out) {
    if names.len() > MAX_DECLARED_PARAMETERS {
        push(
            v,
            fields::DECLARED,
            format!(
                "at most {MAX_DECLARED_PARAMETERS} names are allowed, got {}",
                names.len()
            ),
        );
    }
    for name in names {
        parameter_name(v, format!("{}[{name}]", fields::DECLARED), name);
    }
}

/// Confidence, rationale and idempotency key.
pub(super) fn audit_fields(req: &ExecutionRequest, v: &mut Out) {
    if !(0.0..=1.0).contains(&req.confidence) {
        push(
            v,
            fields::CONFIDENCE,
            format!("must be between 0 and 1, got {}", req.confidence),
        );
    }
    if req.rationale.len() > MAX_RATIONALE_BYTES {
        push(
            v,
            fields::RATIONALE,
            format!(
                "must be at most {MAX_RATIONALE_BYTES} bytes, got {}",
                req.rationale.len()
            ),
        );
    }
    let key = &req.idempotency_key;
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        push(
            v,
            fields::IDEMPOTENCY_KEY,
            format!(
                "must be at most {MAX_IDEMPOTENCY_KEY_BYTES} characters, got {}",
                key.len()
            ),
        );
    } else if !key.bytes().all(|c| c.is_ascii_graphic()) {
        push(
            v,
            fields::IDEMPOTENCY_KEY,
            "must contain only printable ASCII characters without spaces",
        );
    }
}

/// Estimates the encoded size from string lengths plus a per-field overhead.
pub(super) fn estimated_size(req: &ExecutionRequest) -> usize {
    let strs = |it: &mut dyn Iterator<Item = &String>| {
        it.map(|s| s.len() + PER_FIELD_OVERHEAD).sum::<usize>()
    };
    let map = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| k.len() + v.len() + 2 * PER_FIELD_OVERHEAD)
            .sum::<usize>()
    };
    let rr = &req.remediation_request_ref;
    let wf = &req.workflow_ref;
    let c = &req.execution_config;
    let scalars = [
        &rr.name,
        &rr.namespace,
        &rr.uid,
        &wf.workflow_id,
        &wf.workflow_name,
        &wf.action_type,
        &wf.version,
        &wf.container_image,
        &req.engine,
        &req.target,
        &req.cluster_id,
        &c.service_account_name,
        &req.rationale,
        &req.idempotency_key,
        &req.namespace,
    ];
    strs(&mut scalars.into_iter())
        + map(&req.parameters)
        + strs(&mut c.dependencies.secrets.iter())
        + strs(&mut c.dependencies.config_maps.iter())
        + map(&c.resources.requests)
        + map(&c.resources.limits)
        + c.declared_parameter_names
            .as_ref()
            .map_or(0, |d| strs(&mut d.iter()))
}

pub(super) fn total_size(req: &ExecutionRequest, v: &mut Out) {
    let size = estimated_size(req);
    if size > MAX_REQUEST_BYTES {
        push(
            v,
            fields::REQUEST,
            format!("request is about {size} bytes; at most {MAX_REQUEST_BYTES} are allowed"),
        );
    }
}
