//! The Job controller's `podFailurePolicy` evaluation: the first rule that matches a
//! failed pod decides whether the failure is ignored, fails the Job, or counts.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;

use super::podstatus::containers;

/// What a failed pod means for its Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Does not count towards `backoffLimit`; the pod is replaced.
    Ignore,
    /// Fails the Job at once with reason `PodFailurePolicy` and this message.
    FailJob(String),
    /// Counts towards `backoffLimit` (the default).
    Count,
}

/// Evaluates the policy for a pod in phase `Failed`.
pub fn evaluate(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Count;
    };
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(matched) = rule_match(rule, pod) else {
            continue;
        };
        return match rule.action.as_str() {
            "Ignore" => Verdict::Ignore,
            // FailIndex only applies to indexed Jobs; for ours it behaves like FailJob.
            "FailJob" | "FailIndex" => {
                Verdict::FailJob(format!("{matched} matching FailJob rule at index {index}"))
            }
            _ => Verdict::Count,
        };
    }
    Verdict::Count
}

/// Describes how the rule matched (the start of the Job controller's message).
fn rule_match(rule: &PodFailurePolicyRule, pod: &Pod) -> Option<String> {
    let pod_name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    if let Some(req) = &rule.on_exit_codes {
        let (container, code) = exit_codes(pod)
            .into_iter()
            .filter(|(name, _)| req.container_name.as_ref().is_none_or(|want| want == name))
            .find(|(_, code)| match req.operator.as_str() {
                "In" => req.values.contains(code),
                // Exit 0 never matches NotIn: a succeeded container is not a failure.
                "NotIn" => *code != 0 && !req.values.contains(code),
                _ => false,
            })?;
        return Some(format!(
            "Container {container} for pod {pod_name} failed with exit code {code}"
        ));
    }
    let patterns = rule.on_pod_conditions.as_ref()?;
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    patterns.iter().find_map(|p| {
        let want = if p.status.is_empty() {
            "True"
        } else {
            p.status.as_str()
        };
        conditions
            .iter()
            .any(|c| c.type_ == p.type_ && c.status == want)
            .then(|| format!("Pod {pod_name} has condition {}", p.type_))
    })
}

/// `(container, exit code)` of every terminated container, in spec order.
fn exit_codes(pod: &Pod) -> Vec<(String, i32)> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let order: Vec<&str> = containers(pod).iter().map(|c| c.name.as_str()).collect();
    let mut codes: Vec<(String, i32)> = statuses
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let t = s.state.as_ref()?.terminated.as_ref()?;
            Some((s.name.clone(), t.exit_code))
        })
        .collect();
    codes.sort_by_key(|(name, _)| order.iter().position(|n| n == name).unwrap_or(usize::MAX));
    codes
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// Upstream's policy: Ignore disruptions, Ignore exit 137 of `workflow`.
    fn upstream_policy(extra: Vec<PodFailurePolicyRule>) -> PodFailurePolicy {
        let mut rules = vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                }]),
                ..Default::default()
            },
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some("workflow".into()),
                    operator: "In".into(),
                    values: vec![137],
                }),
                ..Default::default()
            },
        ];
        rules.extend(extra);
        PodFailurePolicy { rules }
    }

    fn failed_pod(code: i32, disrupted: bool) -> Pod {
        let terminated = ContainerStateTerminated {
            exit_code: code,
            ..Default::default()
        };
        let conditions = disrupted.then(|| {
            vec![PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                ..Default::default()
            }]
        });
        Pod {
            metadata: ObjectMeta {
                name: Some("j-abcde".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                conditions,
                container_statuses: Some(vec![ContainerStatus {
                    name: "workflow".into(),
                    state: Some(ContainerState {
                        terminated: Some(terminated),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn upstream_policy_ignores_oom_and_disruption_and_counts_the_rest() {
        let policy = upstream_policy(vec![]);
        assert_eq!(
            evaluate(Some(&policy), &failed_pod(137, false)),
            Verdict::Ignore
        );
        assert_eq!(
            evaluate(Some(&policy), &failed_pod(1, true)),
            Verdict::Ignore
        );
        assert_eq!(
            evaluate(Some(&policy), &failed_pod(3, false)),
            Verdict::Count
        );
        assert_eq!(evaluate(None, &failed_pod(137, false)), Verdict::Count);
    }

    #[test]
    fn fail_job_rule_names_container_code_and_index() {
        let fail_on_42 = PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: "NotIn".into(),
                values: vec![137],
            }),
            ..Default::default()
        };
        let policy = upstream_policy(vec![fail_on_42]);
        assert_eq!(
            evaluate(Some(&policy), &failed_pod(42, false)),
            Verdict::FailJob("Container workflow for pod ns/j-abcde failed with exit code 42 matching FailJob rule at index 2".into())
        );
        let on_condition = PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: String::new(),
                }]),
                ..Default::default()
            }],
        };
        assert_eq!(
            evaluate(Some(&on_condition), &failed_pod(137, true)),
            Verdict::FailJob(
                "Pod ns/j-abcde has condition DisruptionTarget matching FailJob rule at index 0"
                    .into()
            )
        );
    }
}
