use std::time::Duration;

use jiff::Timestamp;

use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn adds_new_condition_with_now_and_generation() {
    let mut conds = Vec::new();
    let now = t("2026-01-01T00:00:00Z");
    assert!(set_condition(
        &mut conds,
        execution_created("job", "wfe-x-a1", "kubernaut-workflows"),
        now,
        3
    ));
    assert_eq!(conds.len(), 1);
    let c = &conds[0];
    assert_eq!(
        (c.type_.as_str(), c.status, c.reason.as_str()),
        (
            "ExecutionCreated",
            ConditionStatus::True,
            "ExecutionCreated"
        )
    );
    assert_eq!(
        c.message,
        "job execution resource wfe-x-a1 created in kubernaut-workflows namespace"
    );
    assert_eq!((c.last_transition_time, c.observed_generation), (now, 3));
}

#[test]
fn transition_time_moves_only_on_status_flip() {
    let t0 = t("2026-01-01T00:00:00Z");
    let t1 = t("2026-01-01T00:01:00Z");
    let t2 = t("2026-01-01T00:02:00Z");
    let mut conds = Vec::new();
    set_condition(
        &mut conds,
        execution_running("tekton", "task 1 of 5"),
        t0,
        1,
    );
    // Same status, new message: message and generation update, time stays.
    assert!(set_condition(
        &mut conds,
        execution_running("tekton", "Updated message"),
        t1,
        2
    ));
    assert_eq!(conds[0].last_transition_time, t0);
    assert_eq!(
        conds[0].message,
        "Execution running (tekton: Updated message)"
    );
    assert_eq!(conds[0].observed_generation, 2);
    // Status flips: time moves.
    let flip = ConditionUpdate {
        status: ConditionStatus::False,
        ..execution_running("tekton", "x")
    };
    assert!(set_condition(&mut conds, flip, t2, 2));
    assert_eq!(conds[0].last_transition_time, t2);
    assert_eq!(conds.len(), 1);
}

#[test]
fn identical_update_reports_no_change() {
    let now = t("2026-01-01T00:00:00Z");
    let mut conds = Vec::new();
    set_condition(&mut conds, ready(true), now, 1);
    assert!(!set_condition(
        &mut conds,
        ready(true),
        t("2026-01-02T00:00:00Z"),
        1
    ));
    assert_eq!(conds[0].last_transition_time, now);
}

#[test]
fn independent_types_coexist() {
    let now = t("2026-01-01T00:00:00Z");
    let mut conds = Vec::new();
    for u in [
        execution_created("job", "n", "ns"),
        execution_running("job", "r"),
        audit_recorded("e"),
    ] {
        set_condition(&mut conds, u, now, 1);
    }
    set_condition(&mut conds, audit_recorded("f"), now, 1);
    assert_eq!(conds.len(), 3);
    for ty in [
        types::EXECUTION_CREATED,
        types::EXECUTION_RUNNING,
        types::AUDIT_RECORDED,
    ] {
        assert!(is_condition_true(&conds, ty), "{ty}");
    }
    assert!(!is_condition_true(&conds, types::READY));
    assert!(get_condition(&conds, types::READY).is_none());
}

#[test]
fn execution_failed_reason_table() {
    let cases = [
        (
            FailureReason::TaskFailed,
            "Task x failed",
            "TaskFailed",
            "Task x failed",
        ),
        (
            FailureReason::DeadlineExceeded,
            "m",
            "DeadlineExceeded",
            "Pipeline exceeded timeout deadline",
        ),
        (
            FailureReason::OOMKilled,
            "m",
            "OOMKilled",
            "Pipeline task killed due to out of memory",
        ),
        (FailureReason::Unknown, "boom", "ExecutionFailed", "boom"),
        (
            FailureReason::Cancelled,
            "",
            "ExecutionFailed",
            "Pipeline execution failed",
        ),
    ];
    for (reason, msg, want_reason, want_msg) in cases {
        let u = execution_failed(reason, msg);
        assert_eq!(
            (u.type_, u.status),
            (types::EXECUTION_COMPLETE, ConditionStatus::False)
        );
        assert_eq!(
            (u.reason, u.message.as_str()),
            (want_reason, want_msg),
            "{reason}"
        );
    }
}

#[test]
fn constructors_table() {
    let cases = [
        (
            execution_creation_failed("quota"),
            "ExecutionCreated",
            ConditionStatus::False,
            "ExecutionCreationFailed",
        ),
        (
            execution_succeeded(Duration::from_secs(45)),
            "ExecutionComplete",
            ConditionStatus::True,
            "ExecutionSucceeded",
        ),
        (
            audit_failed("down"),
            "AuditRecorded",
            ConditionStatus::False,
            "AuditFailed",
        ),
        (ready(true), "Ready", ConditionStatus::True, "Ready"),
        (ready(false), "Ready", ConditionStatus::False, "NotReady"),
        (
            resource_available("ns/K/n"),
            "ResourceLocked",
            ConditionStatus::False,
            "TargetAvailable",
        ),
    ];
    for (u, ty, status, reason) in cases {
        assert_eq!((u.type_, u.status, u.reason), (ty, status, reason));
    }
    assert_eq!(
        execution_succeeded(Duration::from_secs(45)).message,
        "All tasks completed successfully in 45s"
    );
    assert!(
        execution_creation_failed("quota exceeded")
            .message
            .contains("quota exceeded")
    );
}

#[test]
fn resource_locked_reasons_per_blocker() {
    let cases = [
        (BlockReason::ResourceBusy, "TargetResourceBusy"),
        (BlockReason::RecentlyRemediated, "RecentlyRemediated"),
        (
            BlockReason::PreviousExecutionFailed,
            "PreviousExecutionFailed",
        ),
        (BlockReason::ExhaustedRetries, "ExhaustedRetries"),
        (BlockReason::ExponentialBackoff, "ExponentialBackoff"),
    ];
    for (reason, want) in cases {
        let u = resource_locked(reason, "why");
        assert_eq!(
            (u.type_, u.status, u.reason, u.message.as_str()),
            ("ResourceLocked", ConditionStatus::True, want, "why")
        );
    }
}

#[test]
fn dispatched_table() {
    let cases = [
        (
            DispatchState::NoAgentAvailable,
            ConditionStatus::False,
            "NoAgentAvailable",
        ),
        (
            DispatchState::AwaitingAgent,
            ConditionStatus::False,
            "AwaitingAgent",
        ),
        (DispatchState::Assigned, ConditionStatus::True, "Assigned"),
        (
            DispatchState::AgentLost,
            ConditionStatus::False,
            "AgentLost",
        ),
    ];
    for (state, status, reason) in cases {
        let u = dispatched(state, "m");
        assert_eq!(
            (u.type_, u.status, u.reason),
            ("Dispatched", status, reason),
            "{state:?}"
        );
    }
}
