//! The validator itself: each rule of the contract it encodes makes it fail.

use serde_json::{Value, json};

use super::*;

fn valid() -> Value {
    json!({
        "event_id": "0123",
        "version": "1.0",
        "event_type": "workflowexecution.workflow.completed",
        "event_timestamp": "2026-01-02T03:04:05Z",
        "event_category": "workflowexecution",
        "event_action": "completed",
        "event_outcome": "success",
        "actor_type": "service",
        "actor_id": "workflowexecution-controller",
        "resource_type": "WorkflowExecution",
        "resource_id": "wfe-1",
        "correlation_id": "rr-1",
        "namespace": "ns",
        "event_data": {
            "event_type": "workflowexecution.workflow.completed",
            "workflow_id": "w",
            "workflow_version": "1",
            "target_resource": "default/Deployment/web",
            "phase": "Completed",
            "container_image": "img",
            "execution_name": "wfe-1",
            "parameters": {"A": "b"},
            "retry_count": 2,
            "started_at": "2026-01-02T03:04:00Z",
        }
    })
}

fn paths(v: &Value) -> Vec<String> {
    validate(v)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.path)
        .collect()
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer).expect("pointer exists") = value;
    v
}

fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object")
        .remove(key);
    v
}

#[test]
fn a_request_by_the_contract_passes() {
    assert_eq!(validate(&valid()), Ok(()));
}

#[test]
fn each_required_property_is_required() {
    for p in [
        "/version",
        "/event_type",
        "/event_timestamp",
        "/event_category",
        "/event_action",
        "/event_outcome",
        "/correlation_id",
        "/event_data",
        "/event_data/workflow_id",
        "/event_data/workflow_version",
        "/event_data/target_resource",
        "/event_data/phase",
        "/event_data/container_image",
        "/event_data/execution_name",
        "/event_data/event_type",
    ] {
        let got = paths(&without(valid(), p));
        let want = p.trim_start_matches('/').replace('/', ".");
        assert!(got.contains(&want), "{p}: {got:?}");
    }
}

#[test]
fn enums_are_closed() {
    for (p, bad) in [
        ("/event_data/phase", "Skipped"),
        (
            "/event_data/event_type",
            "workflowexecution.workflow.skipped",
        ),
        ("/event_outcome", "ok"),
        ("/event_category", "workflows"),
    ] {
        let got = paths(&with(valid(), p, json!(bad)));
        assert!(!got.is_empty(), "{p}={bad} passed");
    }
    let failed = with(
        with(
            valid(),
            "/event_type",
            json!("workflowexecution.workflow.failed"),
        ),
        "/event_data/event_type",
        json!("workflowexecution.workflow.failed"),
    );
    assert_eq!(validate(&failed), Ok(()));
    let mut cancelled = failed.clone();
    cancelled["event_data"]["failure_reason"] = json!("Cancelled");
    assert_eq!(paths(&cancelled), ["event_data.failure_reason"]);
    cancelled["event_data"]["failure_reason"] = json!("Deduplicated");
    assert_eq!(validate(&cancelled), Ok(()));
}

#[test]
fn types_formats_and_lengths_are_checked() {
    for (p, bad) in [
        ("/event_timestamp", json!("yesterday")),
        ("/event_timestamp", json!("2026-01-02T03:04:05")),
        ("/event_data/started_at", json!(17)),
        ("/event_data/retry_count", json!("2")),
        ("/event_data/parameters", json!({"A": 1})),
        ("/correlation_id", json!("")),
        ("/event_action", json!("x".repeat(51))),
        ("/version", json!(1.0)),
    ] {
        let got = paths(&with(valid(), p, bad.clone()));
        assert!(!got.is_empty(), "{p}={bad} passed");
    }
    let mut v = valid();
    v["parent_event_id"] = json!("not-a-uuid");
    assert_eq!(paths(&v), ["parent_event_id"]);
    v["parent_event_id"] = json!("123e4567-e89b-12d3-a456-426614174000");
    assert_eq!(validate(&v), Ok(()));
    v["cluster_id"] = Value::Null;
    assert_eq!(validate(&v), Ok(()), "nullable");
}

#[test]
fn unknown_payload_properties_are_refused_and_the_envelope_allows_only_event_id() {
    let mut v = valid();
    v["event_data"]["skip_reason"] = json!("ResourceBusy");
    assert_eq!(paths(&v), ["event_data.skip_reason"]);
    let mut v = valid();
    v["something"] = json!(1);
    assert_eq!(paths(&v), ["something"]);
    let v = without(valid(), "/event_id");
    assert_eq!(validate(&v), Ok(()));
}

#[test]
fn the_discriminator_must_match_and_be_known() {
    let v = with(
        valid(),
        "/event_type",
        json!("workflowexecution.workflow.failed"),
    );
    assert_eq!(paths(&v), ["event_data.event_type"]);
    let v = with(
        valid(),
        "/event_type",
        json!("workflowexecution.workflow.cancelled"),
    );
    assert_eq!(paths(&v), ["event_type"]);
}

#[test]
fn error_details_follow_their_schema() {
    let mut v = valid();
    v["event_data"]["error_details"] = json!({
        "code": "ERR_PIPELINE_FAILED",
        "message": "m",
        "component": "workflowexecution",
        "retry_possible": true
    });
    assert_eq!(validate(&v), Ok(()));
    v["event_data"]["error_details"]["component"] = json!("wfe");
    v["event_data"]["error_details"]["retry_possible"] = json!("yes");
    assert_eq!(
        paths(&v),
        [
            "event_data.error_details.component",
            "event_data.error_details.retry_possible"
        ]
    );
}
