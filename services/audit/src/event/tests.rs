use super::*;
use wfe_core::FailureReason;

fn facts() -> ExecutionFacts {
    ExecutionFacts {
        name: "wfe-abc".into(),
        namespace: "kubernaut-system".into(),
        uid: "uid-1".into(),
        remediation_request: "rr-1".into(),
        execution_engine: "job".into(),
        workflow_id: "restart-pod".into(),
        workflow_name: "Restart pod".into(),
        workflow_version: "1.0.0".into(),
        action_type: "RestartPod".into(),
        container_image: "ghcr.io/x/y@sha256:00".into(),
        target_resource: "default/Deployment/web".into(),
        phase: "Failed".into(),
        started_at: Some(Timestamp::from_second(1_000).expect("valid")),
        completed_at: Some(Timestamp::from_second(1_045).expect("valid")),
        primitive_name: Some("wfe-0123".into()),
        ..Default::default()
    }
}

fn at() -> Timestamp {
    Timestamp::from_second(2_000).expect("valid")
}

#[test]
fn event_ids_are_stable_and_distinct_per_type() {
    assert_eq!(
        event_id("uid-1", WORKFLOW_STARTED),
        event_id("uid-1", WORKFLOW_STARTED)
    );
    assert_ne!(
        event_id("uid-1", WORKFLOW_STARTED),
        event_id("uid-1", WORKFLOW_COMPLETED)
    );
    assert_ne!(
        event_id("uid-1", WORKFLOW_STARTED),
        event_id("uid-2", WORKFLOW_STARTED)
    );
    assert_eq!(event_id("uid-1", WORKFLOW_STARTED).len(), 32);
    // Regenerating an event after a restart yields the same id.
    assert_eq!(
        facts().completed(at()).event_id,
        facts().completed(Timestamp::UNIX_EPOCH).event_id
    );
}

#[test]
fn envelope_follows_the_reference() {
    let e = facts().completed(at());
    assert_eq!(e.event_type, "workflowexecution.workflow.completed");
    assert_eq!(e.event_category, "workflowexecution");
    assert_eq!(e.event_action, "completed");
    assert_eq!(e.event_outcome, "success");
    assert_eq!(e.actor_type, "service");
    assert_eq!(e.actor_id, "workflowexecution-controller");
    assert_eq!(e.resource_type, "WorkflowExecution");
    assert_eq!(e.resource_id, "wfe-abc");
    assert_eq!(e.correlation_id, "rr-1");
    assert_eq!(e.cluster_id, None);
    assert_eq!(e.event_data["execution_engine"], "job");
    assert_eq!(e.event_data["duration"], "45s");
    assert_eq!(e.event_data["event_type"], e.event_type);
}

#[test]
fn failed_carries_reason_and_error_details() {
    let mut d = FailureDetails::new(FailureReason::TaskFailed, "exit code 1", true, at());
    d.failed_task_name = Some("restart-pod".into());
    d.exit_code = Some(1);
    let e = facts().failed(Some(&d), at());
    assert_eq!(e.event_outcome, "failure");
    assert_eq!(e.event_data["failure_reason"], "TaskFailed");
    assert_eq!(e.event_data["failed_task_name"], "restart-pod");
    assert_eq!(e.event_data["exit_code"], 1);
    assert_eq!(e.event_data["error_details"]["code"], "ERR_PIPELINE_FAILED");
    assert_eq!(
        e.event_data["error_details"]["component"],
        "workflowexecution"
    );
    assert_eq!(e.event_data["error_details"]["retry_possible"], false);
}

#[test]
fn skipped_lists_every_blocker() {
    let blockers = vec![
        ("ResourceBusy".to_string(), "held by wfe-1".to_string()),
        (
            "RecentlyRemediated".to_string(),
            "completed 1m ago".to_string(),
        ),
    ];
    let e = facts().skipped(&blockers, at());
    assert_eq!(e.event_data["skip_reason"], "ResourceBusy");
    assert_eq!(e.event_data["blockers"].as_array().map(Vec::len), Some(2));
}

#[test]
fn block_cleared_is_attributed_to_the_person() {
    let e = facts().block_cleared("alice@example.com", "checked the deployment by hand", at());
    assert_eq!(e.event_type, BLOCK_CLEARED);
    assert_eq!(e.event_action, "block_cleared");
    assert_eq!(e.actor_type, "user");
    assert_eq!(e.actor_id, "alice@example.com");
    assert_eq!(e.resource_id, "uid-1");
    assert_eq!(e.event_data["previous_state"], "Blocked");
}

#[test]
fn cancelled_by_a_person_names_them() {
    let e = facts().cancelled("bob", "wrong target", at());
    assert_eq!(e.event_action, "cancelled");
    assert_eq!(e.actor_id, "bob");
    assert_eq!(e.event_data["cancel_reason"], "wrong target");
}

#[test]
fn duration_is_rounded_to_seconds_as_the_status_is() {
    let ms = |n| Timestamp::from_millisecond(n).expect("valid");
    let facts = ExecutionFacts {
        started_at: Some(ms(1_000_200)),
        completed_at: Some(ms(1_000_800)),
        ..facts()
    };
    assert_eq!(facts.completed(at()).event_data["duration"], "1s");
    let facts = ExecutionFacts {
        completed_at: Some(ms(1_000_600)),
        ..facts
    };
    assert_eq!(facts.completed(at()).event_data["duration"], "0s");
}
