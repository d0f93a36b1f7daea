//! Conversions between the wire (proto), the domain (core) and the resource (k8s) forms.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as K8sCondition, Time};
use kube::ResourceExt;
use wfe_core::conditions::{Condition, ConditionStatus};
use wfe_core::model::{
    Dependencies, ExecutionConfig, RemediationRequestRef, Resources, WorkflowRef,
};
use wfe_core::validate::fields;
use wfe_core::{ExecutionRequest, FieldViolation, Phase, ValidatedRequest};
use wfe_k8s::WorkflowExecution;
use wfe_k8s::workflow_execution as k8s;
use wfe_proto::v1;

/// Proto timestamp of a jiff timestamp.
pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    }
}

/// Proto timestamp of a Kubernetes time.
pub fn kts(t: &Time) -> prost_types::Timestamp {
    ts(t.0)
}

/// jiff timestamp of a proto timestamp, if in range.
pub fn from_ts(t: &prost_types::Timestamp) -> Option<Timestamp> {
    Timestamp::new(t.seconds, t.nanos).ok()
}

/// Proto duration of a std duration.
pub fn dur(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Parses a Go duration string such as `1h2m3.5s` or `250ms` (what we store).
pub fn parse_go(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest == "0s" || rest.is_empty() {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The domain request of an ExecuteWorkflow (or Preflight) call. Structural problems that
/// core cannot see (missing spec, negative timeout) come back as violations.
pub fn request_from_proto(
    namespace: String,
    idempotency_key: String,
    spec: Option<v1::ExecutionSpec>,
) -> Result<ExecutionRequest, Vec<FieldViolation>> {
    let Some(spec) = spec else {
        return Err(vec![FieldViolation::new(
            fields::REQUEST,
            "spec is required",
        )]);
    };
    let rr = spec.remediation_request_ref.unwrap_or_default();
    let wf = spec.workflow_ref.unwrap_or_default();
    let execution_config = config_from_proto(spec.execution_config.unwrap_or_default())?;
    Ok(ExecutionRequest {
        remediation_request_ref: RemediationRequestRef {
            name: rr.name,
            namespace: rr.namespace,
            uid: rr.uid,
        },
        workflow_ref: WorkflowRef {
            workflow_id: wf.workflow_id,
            workflow_name: wf.workflow_name,
            action_type: wf.action_type,
            version: wf.version,
            container_image: wf.container_image,
        },
        engine: spec.execution_engine,
        target: spec.target_resource,
        cluster_id: spec.cluster_id,
        parameters: spec.parameters.into_iter().collect(),
        execution_config,
        confidence: spec.confidence,
        rationale: spec.rationale,
        idempotency_key,
        namespace,
    })
}

fn config_from_proto(c: v1::ExecutionConfig) -> Result<ExecutionConfig, Vec<FieldViolation>> {
    let (timeout, times_out_at) = match c.deadline {
        None => (None, None),
        Some(v1::execution_config::Deadline::Timeout(d)) => {
            let secs = u64::try_from(d.seconds).ok().filter(|_| d.nanos >= 0);
            let Some(secs) = secs else {
                return Err(vec![FieldViolation::new(
                    fields::TIMEOUT,
                    "timeout must not be negative",
                )]);
            };
            let nanos = u32::try_from(d.nanos).unwrap_or(0);
            (Some(Duration::new(secs, nanos)), None)
        }
        Some(v1::execution_config::Deadline::TimesOutAt(t)) => match from_ts(&t) {
            Some(t) => (None, Some(t)),
            None => {
                return Err(vec![FieldViolation::new(
                    fields::TIMES_OUT_AT,
                    "timestamp out of range",
                )]);
            }
        },
    };
    let deps = c.dependencies.unwrap_or_default();
    let res = c.resources.unwrap_or_default();
    Ok(ExecutionConfig {
        service_account_name: c.service_account_name,
        timeout,
        times_out_at,
        dependencies: Dependencies {
            secrets: deps.secrets,
            config_maps: deps.config_maps,
        },
        resources: Resources {
            requests: res.requests.into_iter().collect(),
            limits: res.limits.into_iter().collect(),
        },
        declared_parameter_names: c
            .declared_parameter_names
            .map(|d| d.names.into_iter().collect::<BTreeSet<_>>()),
    })
}

/// The server default when a request gives neither timeout nor deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The resource spec of a validated request accepted at `now`.
pub fn spec_to_k8s(
    req: &ExecutionRequest,
    v: &ValidatedRequest,
    now: Timestamp,
) -> wfe_k8s::WorkflowExecutionSpec {
    let c = &req.execution_config;
    let deadline = match (c.times_out_at, c.timeout) {
        (Some(t), _) => t,
        (None, d) => now.checked_add(d.unwrap_or(DEFAULT_TIMEOUT)).unwrap_or(now),
    };
    let named = |v: &[String]| {
        v.iter()
            .map(|n| k8s::NamedDependency { name: n.clone() })
            .collect::<Vec<_>>()
    };
    let deps = &c.dependencies;
    let res = &c.resources;
    wfe_k8s::WorkflowExecutionSpec {
        remediation_request_ref: k8s::RemediationRequestRef {
            name: req.remediation_request_ref.name.clone(),
            namespace: req.remediation_request_ref.namespace.clone(),
            uid: req.remediation_request_ref.uid.clone(),
        },
        workflow_ref: k8s::WorkflowRef {
            workflow_id: req.workflow_ref.workflow_id.clone(),
            workflow_name: req.workflow_ref.workflow_name.clone(),
            action_type: req.workflow_ref.action_type.clone(),
            version: req.workflow_ref.version.clone(),
            container_image: req.workflow_ref.container_image.clone(),
        },
        execution_engine: v.engine.as_str().to_owned(),
        target_resource: req.target.clone(),
        cluster_id: req.cluster_id.clone(),
        parameters: req.parameters.clone(),
        execution_config: k8s::ExecutionConfig {
            service_account_name: c.service_account_name.clone(),
            timeout: c.timeout.map(wfe_core::duration::format_go),
            times_out_at: Some(Time(deadline)),
            dependencies: (!deps.secrets.is_empty() || !deps.config_maps.is_empty()).then(|| {
                k8s::Dependencies {
                    secrets: named(&deps.secrets),
                    config_maps: named(&deps.config_maps),
                }
            }),
            resources: (!res.requests.is_empty() || !res.limits.is_empty()).then(|| {
                k8s::Resources {
                    requests: res.requests.clone(),
                    limits: res.limits.clone(),
                }
            }),
            declared_parameter_names: c
                .declared_parameter_names
                .as_ref()
                .map(|s| s.iter().cloned().collect()),
        },
        confidence: req.confidence,
        rationale: req.rationale.clone(),
    }
}

/// Proto phase of a domain phase.
pub fn phase_to_proto(p: Phase) -> v1::Phase {
    match p {
        Phase::Pending => v1::Phase::Pending,
        Phase::Running => v1::Phase::Running,
        Phase::Completed => v1::Phase::Completed,
        Phase::Failed => v1::Phase::Failed,
        Phase::Skipped => v1::Phase::Skipped,
    }
}

/// Domain phase of a proto phase filter; `None` for UNSPECIFIED (any).
pub fn phase_from_proto(p: v1::Phase) -> Option<Phase> {
    Some(match p {
        v1::Phase::Unspecified => return None,
        v1::Phase::Pending => Phase::Pending,
        v1::Phase::Running => Phase::Running,
        v1::Phase::Completed => Phase::Completed,
        v1::Phase::Failed => Phase::Failed,
        v1::Phase::Skipped => Phase::Skipped,
    })
}

/// Proto block reason of its wire name.
pub fn block_reason_to_proto(s: &str) -> v1::BlockReason {
    use v1::BlockReason as B;
    match s {
        "ResourceBusy" => B::ResourceBusy,
        "RecentlyRemediated" => B::RecentlyRemediated,
        "PreviousExecutionFailed" => B::PreviousExecutionFailed,
        "ExponentialBackoff" => B::ExponentialBackoff,
        "ExhaustedRetries" => B::ExhaustedRetries,
        _ => B::Unspecified,
    }
}

/// The resource form of a core blocker.
pub fn blocker_to_k8s(b: &wfe_core::Blocker) -> k8s::Blocker {
    k8s::Blocker {
        reason: b.reason.as_str().to_owned(),
        message: b.message.clone(),
        execution: Some(k8s::ExecutionReference {
            name: b.execution.clone(),
            namespace: b.execution_namespace.clone(),
        }),
        clears_at: b.clears_at.map(Time),
    }
}

/// The proto form of a resource blocker.
pub fn blocker_to_proto(b: &k8s::Blocker) -> v1::Blocker {
    v1::Blocker {
        reason: block_reason_to_proto(&b.reason) as i32,
        message: b.message.clone(),
        execution: b.execution.as_ref().map(exec_ref),
        clears_at: b.clears_at.as_ref().map(kts),
    }
}

fn exec_ref(r: &k8s::ExecutionReference) -> v1::ExecutionReference {
    v1::ExecutionReference {
        name: r.name.clone(),
        namespace: r.namespace.clone(),
    }
}

/// Proto skip details.
pub fn skip_to_proto(s: &k8s::SkipDetails) -> v1::SkipDetails {
    v1::SkipDetails {
        reason: block_reason_to_proto(&s.reason) as i32,
        message: s.message.clone(),
        conflicting_execution: s.conflicting_execution.as_ref().map(exec_ref),
        next_allowed_execution: s.next_allowed_execution.as_ref().map(kts),
        blockers: s.blockers.iter().map(blocker_to_proto).collect(),
    }
}

/// Core conditions of resource conditions (unknown statuses read as Unknown).
pub fn conditions_from_k8s(c: &[K8sCondition]) -> Vec<Condition> {
    c.iter()
        .map(|c| Condition {
            type_: c.type_.clone(),
            status: match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            },
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: c.last_transition_time.0,
            observed_generation: c.observed_generation.unwrap_or(0),
        })
        .collect()
}

/// Resource conditions of core conditions.
pub fn conditions_to_k8s(c: &[Condition]) -> Vec<K8sCondition> {
    c.iter()
        .map(|c| K8sCondition {
            type_: c.type_.clone(),
            status: c.status.as_str().to_owned(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: Time(c.last_transition_time),
            observed_generation: Some(c.observed_generation),
        })
        .collect()
}

/// The proto form of a stored execution.
pub fn execution_to_proto(w: &WorkflowExecution) -> v1::WorkflowExecution {
    v1::WorkflowExecution {
        name: w.name_any(),
        namespace: w.namespace().unwrap_or_default(),
        uid: w.uid().unwrap_or_default(),
        create_time: w.metadata.creation_timestamp.as_ref().map(kts),
        resource_version: w.resource_version().unwrap_or_default(),
        spec: Some(spec_to_proto(&w.spec)),
        status: Some(status_to_proto(w)),
    }
}

fn spec_to_proto(s: &wfe_k8s::WorkflowExecutionSpec) -> v1::ExecutionSpec {
    let c = &s.execution_config;
    let deadline = match (&c.timeout, &c.times_out_at) {
        (Some(t), _) => parse_go(t).map(|d| v1::execution_config::Deadline::Timeout(dur(d))),
        (None, Some(t)) => Some(v1::execution_config::Deadline::TimesOutAt(kts(t))),
        (None, None) => None,
    };
    v1::ExecutionSpec {
        remediation_request_ref: Some(v1::RemediationRequestReference {
            name: s.remediation_request_ref.name.clone(),
            namespace: s.remediation_request_ref.namespace.clone(),
            uid: s.remediation_request_ref.uid.clone(),
        }),
        workflow_ref: Some(workflow_ref_to_proto(&s.workflow_ref)),
        execution_engine: s.execution_engine.clone(),
        target_resource: s.target_resource.clone(),
        cluster_id: s.cluster_id.clone(),
        parameters: s.parameters.clone().into_iter().collect(),
        execution_config: Some(v1::ExecutionConfig {
            service_account_name: c.service_account_name.clone(),
            deadline,
            dependencies: c.dependencies.as_ref().map(dependencies_to_proto),
            resources: c.resources.as_ref().map(resources_to_proto),
            declared_parameter_names: c
                .declared_parameter_names
                .as_ref()
                .map(|n| v1::DeclaredParameterNames { names: n.clone() }),
        }),
        confidence: s.confidence,
        rationale: s.rationale.clone(),
    }
}

/// Proto workflow reference.
pub fn workflow_ref_to_proto(w: &k8s::WorkflowRef) -> v1::WorkflowReference {
    v1::WorkflowReference {
        workflow_id: w.workflow_id.clone(),
        workflow_name: w.workflow_name.clone(),
        action_type: w.action_type.clone(),
        version: w.version.clone(),
        container_image: w.container_image.clone(),
    }
}

/// Proto dependencies.
pub fn dependencies_to_proto(d: &k8s::Dependencies) -> v1::Dependencies {
    v1::Dependencies {
        secrets: d.secrets.iter().map(|n| n.name.clone()).collect(),
        config_maps: d.config_maps.iter().map(|n| n.name.clone()).collect(),
    }
}

/// Proto resources.
pub fn resources_to_proto(r: &k8s::Resources) -> v1::ResourceRequirements {
    let m = |b: &BTreeMap<String, String>| b.clone().into_iter().collect();
    v1::ResourceRequirements {
        requests: m(&r.requests),
        limits: m(&r.limits),
    }
}

/// Proto primitive reference.
pub fn primitive_to_proto(r: &k8s::ExecutionRef) -> v1::PrimitiveReference {
    v1::PrimitiveReference {
        cluster_id: r.cluster_id.clone(),
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        uid: r.uid.clone(),
    }
}

fn failure_to_proto(f: &k8s::FailureDetails) -> v1::FailureDetails {
    let reason = f.reason;
    v1::FailureDetails {
        reason: v1::FailureReason::from(reason) as i32,
        message: f.message.clone(),
        failed_task_index: f.failed_task_index,
        failed_task_name: f.failed_task_name.clone(),
        failed_step_name: f.failed_step_name.clone().unwrap_or_default(),
        exit_code: f.exit_code,
        failed_at: Some(kts(&f.failed_at)),
        execution_time_before_failure: f
            .execution_time_before_failure
            .as_deref()
            .and_then(parse_go)
            .map(dur),
        natural_language_summary: f.natural_language_summary.clone(),
        was_execution_failure: f.was_execution_failure,
        retry_safe: wfe_core::failure::retry_safe(reason, f.was_execution_failure),
    }
}

fn status_to_proto(w: &WorkflowExecution) -> v1::ExecutionStatus {
    let phase = phase_to_proto(crate::store::phase_of(w)) as i32;
    let Some(s) = &w.status else {
        return v1::ExecutionStatus {
            phase,
            ..Default::default()
        };
    };
    v1::ExecutionStatus {
        phase,
        start_time: s.start_time.as_ref().map(kts),
        completion_time: s.completion_time.as_ref().map(kts),
        duration: s.duration.as_deref().and_then(parse_go).map(dur),
        message: s.message.clone().unwrap_or_default(),
        execution_ref: s.execution_ref.as_ref().map(primitive_to_proto),
        summary: s.summary.as_ref().map(|x| v1::ExecutionSummary {
            completed_tasks: x.completed_tasks,
            total_tasks: x.total_tasks,
            retry_count: x.retry_count,
        }),
        failure_details: s.failure_details.as_ref().map(failure_to_proto),
        skip_details: s.skip_details.as_ref().map(skip_to_proto),
        block_clearance: s.block_clearance.as_ref().map(|b| v1::BlockClearance {
            cleared_by: b.cleared_by.clone(),
            clear_reason: b.clear_reason.clone(),
            cleared_at: Some(kts(&b.cleared_at)),
        }),
        conditions: s
            .conditions
            .iter()
            .map(|c| v1::Condition {
                r#type: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: Some(kts(&c.last_transition_time)),
                observed_generation: c.observed_generation.unwrap_or(0),
            })
            .collect(),
        observed_generation: s.observed_generation.unwrap_or(0),
        attempt: s.attempt.unwrap_or(0),
        assignment: s.assignment.as_ref().map(|a| v1::Assignment {
            agent_id: a.agent_id.clone(),
            session_id: a.session_id.clone(),
            fencing_token: a.fencing_token,
            assigned_at: Some(kts(&a.assigned_at)),
            acknowledged: a.acknowledged,
        }),
    }
}

/// The admission history record of a stored execution.
pub fn record_of(w: &WorkflowExecution) -> wfe_core::ExecutionRecord {
    let s = w.status.as_ref();
    let fd = s.and_then(|s| s.failure_details.as_ref());
    wfe_core::ExecutionRecord {
        name: w.name_any(),
        namespace: w.namespace().unwrap_or_default(),
        target: crate::store::target_of(w),
        workflow_id: w.spec.workflow_ref.workflow_id.clone(),
        phase: crate::store::phase_of(w),
        created_at: w
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
        completed_at: s.and_then(|s| s.completion_time.as_ref()).map(|t| t.0),
        failure_reason: fd.map(|f| f.reason),
        was_execution_failure: fd.is_some_and(|f| f.was_execution_failure),
        block_cleared: s.is_some_and(|s| s.block_clearance.is_some()),
        // metav1.Time keeps whole seconds: within one second, the API server's write
        // order tells which execution ended last.
        sequence: w
            .resource_version()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_round_trip() {
        for d in [0u64, 1, 59, 61, 3600, 3725] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_go(&wfe_core::duration::format_go(d)), Some(d));
        }
        assert_eq!(parse_go("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go("x"), None);
    }

    #[test]
    fn missing_spec_names_the_field() {
        let err = request_from_proto("ns".into(), String::new(), None).unwrap_err();
        assert_eq!(err[0].field, "spec");
    }

    #[test]
    fn negative_timeout_names_the_field() {
        let spec = v1::ExecutionSpec {
            execution_config: Some(v1::ExecutionConfig {
                deadline: Some(v1::execution_config::Deadline::Timeout(
                    prost_types::Duration {
                        seconds: -5,
                        nanos: 0,
                    },
                )),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = request_from_proto("ns".into(), String::new(), Some(spec)).unwrap_err();
        assert_eq!(err[0].field, fields::TIMEOUT);
    }
}
