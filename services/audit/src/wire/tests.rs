//! Every event kind this service emits, as DataStorage receives it, passes the contract;
//! and what the contract cannot hold still travels in fields it accepts.

use jiff::Timestamp;
use serde_json::Value;
use wfe_core::{FailureDetails, FailureReason};

use super::*;
use crate::ExecutionFacts;
use crate::contract::validate;

fn facts(phase: &str) -> ExecutionFacts {
    ExecutionFacts {
        name: "wfe-abc".into(),
        namespace: "kubernaut-system".into(),
        uid: "uid-1".into(),
        remediation_request: "rr-1".into(),
        cluster_id: "edge-1".into(),
        execution_engine: "job".into(),
        workflow_id: "restart-pod".into(),
        workflow_name: "Restart pod".into(),
        workflow_version: "1.0.0".into(),
        action_type: "RestartPod".into(),
        container_image: "ghcr.io/x/y@sha256:00".into(),
        target_resource: "default/Deployment/web".into(),
        parameters: [("NAMESPACE".to_owned(), "payment".to_owned())].into(),
        phase: phase.into(),
        started_at: Some(Timestamp::from_second(1_000).expect("valid")),
        completed_at: Some(Timestamp::from_second(1_045).expect("valid")),
        primitive_name: Some("wfe-0123".into()),
        retry_count: 2,
    }
}

fn at() -> Timestamp {
    Timestamp::from_second(2_000).expect("valid")
}

/// The requests of `event`, each checked against the contract.
fn sent(event: &AuditEvent) -> Vec<Value> {
    let all = requests(event);
    for r in &all {
        if let Err(v) = validate(r) {
            panic!("{} breaks the contract: {v:?}\n{r:#}", event.event_type);
        }
    }
    all
}

fn failure(reason: FailureReason) -> FailureDetails {
    let mut d = FailureDetails::new(reason, "it broke", true, at());
    d.failed_task_name = Some("step-1".into());
    d.exit_code = Some(3);
    d
}

#[test]
fn started_is_sent_as_selection_then_execution_started() {
    let e = facts("Running").started(at());
    let r = sent(&e);
    let types: Vec<&str> = r
        .iter()
        .map(|r| r["event_type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, [SELECTION_COMPLETED, EXECUTION_STARTED]);
    assert_eq!(r[0]["event_data"]["phase"], "Pending");
    assert_eq!(r[0]["event_action"], "completed");
    assert_eq!(r[1]["event_action"], "started");
    assert_eq!(r[1]["event_data"]["phase"], "Running");
    assert_eq!(r[1]["event_data"]["parameters"]["NAMESPACE"], "payment");
    assert_eq!(r[1]["event_id"], e.event_id.as_str());
    assert_ne!(r[0]["event_id"], r[1]["event_id"]);
    assert_eq!(r[0]["event_id"], requests(&e)[0]["event_id"], "stable");
    assert_eq!(r[1]["correlation_id"], "rr-1");
    assert_eq!(r[1]["cluster_id"], "edge-1");
}

#[test]
fn completed_passes_the_contract() {
    let r = sent(&facts("Completed").completed(at()));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["event_type"], WORKFLOW_COMPLETED);
    assert_eq!(r[0]["event_data"]["duration"], "45s");
    assert_eq!(r[0]["event_data"]["retry_count"], 2);
    assert!(r[0]["event_data"].get("execution_engine").is_none());
}

#[test]
fn failed_passes_the_contract_for_every_failure_reason() {
    for reason in FailureReason::ALL {
        let r = sent(&facts("Failed").failed(Some(&failure(reason)), at()));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["event_type"], WORKFLOW_FAILED);
        assert_eq!(r[0]["event_outcome"], "failure");
        assert_eq!(r[0]["event_data"]["failed_task_name"], "step-1");
        let details = r[0]["event_data"]["error_details"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(details.ends_with("(exit code 3)"), "{details}");
    }
    let r = sent(&facts("Failed").failed(None, at()));
    assert!(r[0]["event_data"].get("failure_reason").is_none());
}

#[test]
fn reasons_outside_the_contract_travel_in_the_message() {
    for (reason, name) in [
        (FailureReason::AgentLost, "AgentLost"),
        (FailureReason::Cancelled, "Cancelled"),
    ] {
        let r = sent(&facts("Failed").failed(Some(&failure(reason)), at()));
        assert_eq!(r[0]["event_data"]["failure_reason"], "Unknown");
        assert_eq!(
            r[0]["event_data"]["failure_message"],
            format!("{name}: it broke")
        );
    }
    let r = sent(&facts("Failed").failed(Some(&failure(FailureReason::OOMKilled)), at()));
    assert_eq!(r[0]["event_data"]["failure_reason"], "OOMKilled");
    assert_eq!(r[0]["event_data"]["failure_message"], "it broke");
}

#[test]
fn skipped_is_sent_as_a_failure_that_names_every_blocker() {
    let blockers = [
        ("ResourceBusy".to_owned(), "wfe-other runs on it".to_owned()),
        (
            "RecentlyRemediated".to_owned(),
            "cooldown 4m left".to_owned(),
        ),
    ];
    let mut f = facts("Skipped");
    f.started_at = None;
    f.completed_at = None;
    let e = f.skipped(&blockers, at());
    let r = sent(&e);
    assert_eq!(r.len(), 1);
    let d = &r[0]["event_data"];
    assert_eq!(r[0]["event_type"], WORKFLOW_FAILED);
    assert_eq!(r[0]["event_action"], "skipped");
    assert_eq!(r[0]["event_outcome"], "failure");
    assert_eq!(r[0]["event_id"], e.event_id.as_str());
    assert_eq!(d["phase"], "Failed");
    assert_eq!(d["failure_reason"], "Unknown");
    assert_eq!(
        d["failure_message"],
        "Skipped: ResourceBusy: wfe-other runs on it; RecentlyRemediated: cooldown 4m left"
    );
    assert_eq!(d["error_details"]["code"], ERR_SKIPPED);
    assert_eq!(d["error_details"]["retry_possible"], true);
    assert!(
        sent(&facts("Skipped").skipped(&[], at()))[0]["event_data"]["failure_message"] == "Skipped"
    );
}

#[test]
fn cancelled_is_sent_as_a_failure_that_names_who_and_why() {
    let e = facts("Failed").cancelled("alice", "wrong target", at());
    let r = sent(&e);
    let d = &r[0]["event_data"];
    assert_eq!(r[0]["event_type"], WORKFLOW_FAILED);
    assert_eq!(r[0]["event_action"], "cancelled");
    assert_eq!(r[0]["actor_id"], "alice");
    assert_eq!(d["failure_reason"], "Unknown");
    assert_eq!(d["failure_message"], "Cancelled by alice: wrong target");
    assert_eq!(d["error_details"]["code"], ERR_CANCELLED);
    let r = sent(&facts("Failed").cancelled("", "", at()));
    assert_eq!(
        r[0]["event_data"]["failure_message"],
        "Cancelled by unknown"
    );
}

#[test]
fn block_cleared_passes_the_webhook_contract() {
    let r = sent(&facts("Failed").block_cleared(
        "bob",
        "fixed the config by hand, verified it twice",
        at(),
    ));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["event_type"], BLOCK_CLEARED);
    assert_eq!(r[0]["resource_id"], "uid-1");
    assert_eq!(r[0]["event_data"]["previous_state"], "Blocked");
}

#[test]
fn the_rich_events_themselves_break_the_contract() {
    // Why the projection exists: sent as recorded, these are refused.
    let f = facts("Skipped");
    for e in [f.skipped(&[], at()), f.cancelled("a", "b", at())] {
        let raw = serde_json::to_value(&e).expect("encodes");
        assert!(validate(&raw).is_err(), "{}", e.event_type);
    }
}
