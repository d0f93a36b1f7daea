use super::*;
use wfe_core::FailureReason;
use wfe_proto::v1::WorkflowReference;

fn assign() -> Assign {
    Assign {
        assignment_id: "as-1".into(),
        execution: Some(ExecutionKey {
            name: "we-1".into(),
            namespace: "kubernaut-system".into(),
            uid: "1111-2222".into(),
        }),
        attempt: 2,
        fencing_token: 7,
        target_resource: "payment/deployment/payment-api".into(),
        workflow_ref: Some(WorkflowReference {
            workflow_id: "restart-deployment".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn labels_tie_the_primitive_to_its_execution() {
    let l = primitive_labels(&assign(), "job");
    let get = |k: &str| l.get(k).map(String::as_str);
    assert_eq!(get(labels::WORKFLOW_EXECUTION), Some("we-1"));
    assert_eq!(get(labels::SOURCE_NAMESPACE), Some("kubernaut-system"));
    assert_eq!(get(labels::WORKFLOW_EXECUTION_UID), Some("1111-2222"));
    assert_eq!(get(labels::WORKFLOW_ID), Some("restart-deployment"));
    assert_eq!(
        get(labels::TARGET_RESOURCE),
        Some("payment__deployment__payment-api")
    );
    assert_eq!(get(labels::EXECUTION_ENGINE), Some("job"));
    assert_eq!(get(labels::MANAGED_BY), Some("kubernaut-workflowexecution"));
    assert_eq!(get(labels::ATTEMPT), Some("2"));
}

#[test]
fn owner_round_trips_through_metadata() {
    let a = assign();
    let meta = ObjectMeta {
        labels: Some(primitive_labels(&a, "job")),
        annotations: Some(primitive_annotations(&a)),
        ..Default::default()
    };
    let owner = owner_of(&meta).expect("owner labels present");
    assert_eq!(owner, owner_from_assign(&a));
    assert_eq!(owner_of(&ObjectMeta::default()), None);
}

#[test]
fn selectors() {
    assert_eq!(
        owned_selector("tekton"),
        "app.kubernetes.io/managed-by=kubernaut-workflowexecution,kubernaut.ai/execution-engine=tekton"
    );
    assert!(execution_selector("job", "u-1").ends_with(",kubernaut.ai/workflow-execution-uid=u-1"));
}

#[test]
fn failed_observation_carries_summary_and_reason() {
    let now = Timestamp::UNIX_EPOCH;
    let owner = owner_from_assign(&assign());
    let obs = Observation::failed(
        FailureDetails::new(FailureReason::OOMKilled, "killed", true, now),
        &owner,
    );
    let r = report(&owner, None, &obs, now);
    assert_eq!(r.phase, PrimitivePhase::Failed as i32);
    assert_eq!(r.reason, "OOMKilled");
    let f = r.failure.expect("failure set");
    assert_eq!(f.reason, pb::FailureReason::OomKilled as i32);
    assert!(f.was_execution_failure);
    assert!(f.natural_language_summary.contains("restart-deployment"));
    assert_eq!(r.fencing_token, 7);
}
