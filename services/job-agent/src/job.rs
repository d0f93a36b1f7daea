//! The batch/v1 Job of reference §4.2, built from an Assign. Pure.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wfe_core::params::{filter_declared_parameters, is_reserved_parameter_name};
use wfe_k8s::labels;
use wfe_proto::agent::Assign;

/// The one container of the Job.
pub const CONTAINER: &str = "workflow";
/// `ttlSecondsAfterFinished`: a fallback cleanup if the API never releases the Job. An hour,
/// well after the API's release (`--primitive-retention`, 10 minutes after the execution's
/// audit is recorded): while both were 10 minutes the TTL controller won the race and could
/// delete a Job whose result an API outage had not collected yet.
pub const TTL_SECONDS_AFTER_FINISHED: i32 = 3600;
/// `activeDeadlineSeconds` when the execution has no deadline (30 minutes).
pub const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 1800;
/// Exit code of a SIGKILLed container (OOM kill, node pressure).
pub const SIGKILL_EXIT_CODE: i32 = 137;

/// Why an Assign cannot become a Job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A required field is empty.
    #[error("assignment has no {0}")]
    Missing(&'static str),
}

/// `activeDeadlineSeconds`: whole seconds until the deadline, at least 1; 1800 without one.
pub fn active_deadline_seconds(deadline: Option<Timestamp>, now: Timestamp) -> i64 {
    match deadline {
        None => DEFAULT_ACTIVE_DEADLINE_SECONDS,
        Some(d) => d.duration_since(now).as_secs().max(1),
    }
}

/// Builds the Job; `now` converts the absolute deadline to `activeDeadlineSeconds`.
pub fn build_job(a: &Assign, namespace: &str, now: Timestamp) -> Result<Job, BuildError> {
    let image = a
        .workflow_ref
        .as_ref()
        .map(|w| w.container_image.clone())
        .filter(|i| !i.is_empty())
        .ok_or(BuildError::Missing("workflow image"))?;
    if a.primitive_name.is_empty() {
        return Err(BuildError::Missing("primitive name"));
    }
    let deadline = a
        .deadline
        .as_ref()
        .and_then(|t| Timestamp::new(t.seconds, t.nanos).ok());
    let mut pod_labels = BTreeMap::new();
    for k in [
        labels::WORKFLOW_EXECUTION,
        labels::EXECUTION_ENGINE,
        labels::MANAGED_BY,
        labels::WORKFLOW_EXECUTION_UID,
    ] {
        if let Some(v) = wfe_agent::primitive::primitive_labels(a, "job").get(k) {
            pod_labels.insert(k.to_owned(), v.clone());
        }
    }
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(a.primitive_name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(wfe_agent::primitive::primitive_labels(a, "job")),
            annotations: Some(wfe_agent::primitive::primitive_annotations(a)),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(TTL_SECONDS_AFTER_FINISHED),
            active_deadline_seconds: Some(active_deadline_seconds(deadline, now)),
            pod_failure_policy: Some(pod_failure_policy()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(a, image)),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// Ignore disruptions and exit 137 (upstream BR-WE-019): such pods do not count against
/// `backoffLimit: 0`, so the Job retries them until its deadline. The agent reports each
/// OOM kill and the retry count, and reports OOMKilled when the Job finally fails.
fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                }]),
                on_exit_codes: None,
            },
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: None,
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(CONTAINER.into()),
                    operator: "In".into(),
                    values: vec![SIGKILL_EXIT_CODE],
                }),
            },
        ],
    }
}

fn pod_spec(a: &Assign, image: String) -> PodSpec {
    let deps = a.dependencies.clone().unwrap_or_default();
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    for s in &deps.secrets {
        volumes.push(Volume {
            name: format!("secret-{s}"),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount(
            &format!("secret-{s}"),
            &format!("/run/kubernaut/secrets/{s}"),
            true,
        ));
    }
    for c in &deps.config_maps {
        volumes.push(Volume {
            name: format!("configmap-{c}"),
            config_map: Some(ConfigMapVolumeSource {
                name: c.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount(
            &format!("configmap-{c}"),
            &format!("/run/kubernaut/configmaps/{c}"),
            true,
        ));
    }
    volumes.push(Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    mounts.push(mount("tmp", "/tmp", false));
    PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(a.service_account_name.clone()).filter(|s| !s.is_empty()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        containers: vec![Container {
            name: CONTAINER.into(),
            image: Some(image),
            env: Some(env(a)),
            resources: Some(resources(a)),
            security_context: Some(container_security_context()),
            volume_mounts: Some(mounts),
            ..Default::default()
        }],
        volumes: Some(volumes),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// `TARGET_RESOURCE` first, then the declared parameters (sorted, reserved names never
/// overridden), then `HOME` and `TMPDIR` (`/tmp`, the only writable path).
fn env(a: &Assign) -> Vec<EnvVar> {
    let params: BTreeMap<String, String> = a.parameters.clone().into_iter().collect();
    let declared: Option<BTreeSet<String>> = a
        .declared_parameter_names
        .as_ref()
        .map(|d| d.names.iter().cloned().collect());
    let filtered = filter_declared_parameters(&params, declared.as_ref());
    let mut out = vec![var("TARGET_RESOURCE", &a.target_resource)];
    out.extend(
        filtered
            .iter()
            .filter(|(k, _)| !is_reserved_parameter_name(k))
            .map(|(k, v)| var(k, v)),
    );
    out.push(var("HOME", "/tmp"));
    out.push(var("TMPDIR", "/tmp"));
    out
}

fn resources(a: &Assign) -> ResourceRequirements {
    let conv = |m: &std::collections::HashMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let r = a.resources.clone().unwrap_or_default();
    ResourceRequirements {
        requests: conv(&r.requests),
        limits: conv(&r.limits),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
