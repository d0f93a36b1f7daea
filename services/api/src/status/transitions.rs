//! Status edits for each step of the lifecycle. Pure functions over the status being written;
//! conditions and the failure taxonomy come from core. Each edit sets only phases its step
//! may reach; the phase machine itself (`wfe_core::phase::transition`) is applied once, by
//! the status writer, to every write (see [`super`]).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use wfe_core::conditions::{self, ConditionUpdate, DispatchState};
use wfe_core::duration::{format_go, round_to_seconds};
use wfe_core::{AdmissionDecision, FailureDetails, Phase};
use wfe_k8s::workflow_execution as k8s;
use wfe_k8s::{WorkflowExecution, WorkflowExecutionStatus};

use crate::convert::{blocker_to_k8s, conditions_from_k8s, conditions_to_k8s};

fn generation(obj: &WorkflowExecution) -> i64 {
    obj.metadata.generation.unwrap_or(1)
}

/// Sets one condition with metav1 semantics (transition time moves only on a status flip).
pub fn set_condition(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    update: ConditionUpdate,
    now: Timestamp,
) -> bool {
    let mut list = conditions_from_k8s(&status.conditions);
    let changed = conditions::set_condition(&mut list, update, now, generation(obj));
    status.conditions = conditions_to_k8s(&list);
    changed
}

fn set_phase(obj: &WorkflowExecution, status: &mut WorkflowExecutionStatus, phase: Phase) {
    status.phase = Some(phase);
    status.observed_generation = Some(generation(obj));
}

/// The initial status of an accepted execution.
pub fn init_pending(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    dispatch: (DispatchState, String),
    now: Timestamp,
) {
    set_phase(obj, status, Phase::Pending);
    status.message = Some("Accepted; waiting for an agent".to_owned());
    set_condition(
        obj,
        status,
        conditions::resource_available(&obj.spec.target_resource),
        now,
    );
    set_condition(
        obj,
        status,
        conditions::dispatched(dispatch.0, &dispatch.1),
        now,
    );
}

/// Pending with its first assignment, written in one go at accept time.
pub fn init_assigned(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    assignment: wfe_k8s::workflow_execution::Assignment,
    now: Timestamp,
) {
    let msg = format!("assigned to agent {}", assignment.agent_id);
    init_pending(obj, status, (DispatchState::Assigned, msg), now);
    status.message = Some("Accepted; assigned to an agent".to_owned());
    status.assignment = Some(assignment);
    status.attempt = Some(1);
}

/// The status of an execution admission refused.
pub fn init_skipped(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    decision: &AdmissionDecision,
    now: Timestamp,
) {
    let Some(first) = decision.blockers.first() else {
        return;
    };
    set_phase(obj, status, Phase::Skipped);
    status.message = Some(first.message.clone());
    status.reason = Some(first.reason.as_str().to_owned());
    status.completion_time = Some(Time(now));
    status.skip_details = Some(k8s::SkipDetails {
        reason: first.reason.as_str().to_owned(),
        message: first.message.clone(),
        conflicting_execution: Some(k8s::ExecutionReference {
            name: first.execution.clone(),
            namespace: first.execution_namespace.clone(),
        }),
        next_allowed_execution: decision.retry_at().map(Time),
        blockers: decision.blockers.iter().map(blocker_to_k8s).collect(),
    });
    set_condition(
        obj,
        status,
        conditions::resource_locked(first.reason, &first.message),
        now,
    );
}

/// Pending → Running (or a Running refresh): the primitive exists and runs.
pub fn mark_running(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    primitive: Option<k8s::ExecutionRef>,
    started_at: Option<Timestamp>,
    detail: &str,
    now: Timestamp,
) {
    if status.start_time.is_none() {
        status.start_time = Some(Time(started_at.unwrap_or(now)));
    }
    set_primitive(obj, status, primitive, now);
    set_phase(obj, status, Phase::Running);
    status.message = Some("Workflow running".to_owned());
    set_condition(
        obj,
        status,
        conditions::execution_running(&obj.spec.execution_engine, detail),
        now,
    );
}

/// Waiting reasons of a primitive that is starting normally: nothing to tell a person.
const STARTING: [&str; 4] = ["", "Pending", "ContainerCreating", "PodInitializing"];

/// A primitive that cannot start yet (an image that cannot be pulled, a missing Secret or
/// ConfigMap): the status message says so while the execution is Pending, before the
/// agent's grace (`--stuck-grace-seconds`) turns it into a failure.
pub fn note_waiting(status: &mut WorkflowExecutionStatus, reason: &str, message: &str) {
    if STARTING.contains(&reason) || status.phase != Some(Phase::Pending) {
        return;
    }
    status.message = Some(if message.is_empty() {
        format!("Waiting to start: {reason}")
    } else {
        format!("Waiting to start: {reason}: {message}")
    });
}

/// Records the primitive and the ExecutionCreated condition.
pub fn set_primitive(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    primitive: Option<k8s::ExecutionRef>,
    now: Timestamp,
) {
    let Some(p) = primitive else { return };
    let update = conditions::execution_created(&obj.spec.execution_engine, &p.name, &p.namespace);
    status.execution_ref = Some(p);
    set_condition(obj, status, update, now);
}

fn finish(
    status: &mut WorkflowExecutionStatus,
    completed_at: Timestamp,
) -> Option<std::time::Duration> {
    status.completion_time = Some(Time(completed_at));
    let start = status.start_time.as_ref()?.0;
    let d = round_to_seconds(
        completed_at
            .duration_since(start)
            .try_into()
            .unwrap_or_default(),
    );
    status.duration = Some(format_go(d));
    Some(d)
}

/// Running → Completed.
pub fn mark_completed(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    completed_at: Option<Timestamp>,
    now: Timestamp,
) {
    if status.start_time.is_none() {
        status.start_time = Some(Time(completed_at.unwrap_or(now)));
    }
    let d = finish(status, completed_at.unwrap_or(now)).unwrap_or_default();
    set_phase(obj, status, Phase::Completed);
    status.message = Some("Workflow completed".to_owned());
    set_condition(obj, status, conditions::execution_succeeded(d), now);
    set_condition(obj, status, conditions::ready(true), now);
}

/// → Failed with details (completes the summary and the elapsed time).
pub fn mark_failed(
    obj: &WorkflowExecution,
    status: &mut WorkflowExecutionStatus,
    mut details: FailureDetails,
    now: Timestamp,
) {
    let ran = finish(status, details.failed_at);
    if details.execution_time_before_failure.is_none() {
        details.execution_time_before_failure = ran;
    }
    let details = details.with_summary(
        &obj.spec.workflow_ref.workflow_id,
        &obj.spec.target_resource,
    );
    if details.was_execution_failure || status.start_time.is_some() {
        set_condition(
            obj,
            status,
            conditions::execution_failed(details.reason, &details.message),
            now,
        );
    } else {
        set_condition(
            obj,
            status,
            conditions::execution_creation_failed(&details.message),
            now,
        );
    }
    set_condition(obj, status, conditions::ready(false), now);
    set_phase(obj, status, Phase::Failed);
    status.message = Some(format!("{}: {}", details.reason, details.message));
    status.reason = Some(details.reason.as_str().to_owned());
    status.failure_reason = Some(details.reason);
    status.failure_details = Some(failure_to_k8s(&details));
}

/// The resource form of core failure details.
pub fn failure_to_k8s(d: &FailureDetails) -> k8s::FailureDetails {
    k8s::FailureDetails {
        reason: d.reason,
        message: d.message.clone(),
        failed_task_index: d.failed_task_index.unwrap_or(0),
        failed_task_name: d.failed_task_name.clone().unwrap_or_default(),
        failed_step_name: d.failed_step_name.clone(),
        exit_code: d.exit_code,
        failed_at: Time(d.failed_at),
        execution_time_before_failure: d.execution_time_before_failure.map(format_go),
        natural_language_summary: d.natural_language_summary.clone(),
        was_execution_failure: d.was_execution_failure,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use wfe_core::FailureReason;

    fn obj() -> WorkflowExecution {
        let mut w = WorkflowExecution::new("we-1", Default::default());
        w.spec.execution_engine = "job".into();
        w.spec.target_resource = "ns/Deployment/a".into();
        w
    }

    #[test]
    fn running_then_completed_sets_times_and_conditions() {
        let w = obj();
        let mut s = WorkflowExecutionStatus::default();
        let t0 = Timestamp::from_second(1_000).unwrap();
        mark_running(&w, &mut s, None, Some(t0), "Running", t0);
        let t1 = Timestamp::from_second(1_090).unwrap();
        mark_completed(&w, &mut s, Some(t1), t1);
        assert_eq!(s.phase, Some(Phase::Completed));
        assert_eq!(s.duration.as_deref(), Some("1m30s"));
        let types: Vec<_> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["ExecutionRunning", "ExecutionComplete", "Ready"]);
    }

    #[test]
    fn pre_execution_failure_has_no_execution_complete() {
        let w = obj();
        let mut s = WorkflowExecutionStatus::default();
        let now = Timestamp::from_second(5).unwrap();
        mark_failed(
            &w,
            &mut s,
            FailureDetails::new(FailureReason::Cancelled, "by op", false, now),
            now,
        );
        assert_eq!(s.failure_reason, Some(wfe_core::FailureReason::Cancelled));
        assert_eq!(s.reason.as_deref(), Some("Cancelled"), "the REASON column");
        assert!(s.conditions.iter().all(|c| c.type_ != "ExecutionComplete"));
        assert!(s.duration.is_none());
        assert!(
            !s.failure_details
                .unwrap()
                .natural_language_summary
                .is_empty()
        );
    }

    #[test]
    fn a_pending_execution_says_what_its_primitive_waits_on() {
        let w = obj();
        let now = Timestamp::from_second(5).unwrap();
        let pending = || {
            let mut st = WorkflowExecutionStatus::default();
            init_pending(
                &w,
                &mut st,
                (DispatchState::AwaitingAgent, String::new()),
                now,
            );
            st
        };
        let cases = [
            (
                "ImagePullBackOff",
                "Back-off pulling image \"x\"",
                Some("Waiting to start: ImagePullBackOff: Back-off pulling image \"x\""),
            ),
            (
                "CreateContainerConfigError",
                "",
                Some("Waiting to start: CreateContainerConfigError"),
            ),
            ("ContainerCreating", "creating", None),
            ("Pending", "Job created", None),
        ];
        for (reason, message, want) in cases {
            let mut st = pending();
            let before = st.message.clone();
            note_waiting(&mut st, reason, message);
            let want = want.map(str::to_owned).or(before);
            assert_eq!(st.message, want, "{reason}");
        }
        let mut running = WorkflowExecutionStatus::default();
        mark_running(&w, &mut running, None, Some(now), "Running", now);
        note_waiting(&mut running, "ImagePullBackOff", "x");
        assert_eq!(
            running.message.as_deref(),
            Some("Workflow running"),
            "only while Pending"
        );
    }

    #[test]
    fn failed_and_skipped_executions_say_why_in_status_reason() {
        let w = obj();
        let now = Timestamp::from_second(5).unwrap();
        let mut failed = WorkflowExecutionStatus::default();
        mark_running(&w, &mut failed, None, Some(now), "Running", now);
        let mut d = FailureDetails::new(FailureReason::OOMKilled, "killed", true, now);
        d.exit_code = Some(137);
        mark_failed(&w, &mut failed, d, now);
        assert_eq!(failed.reason.as_deref(), Some("OOMKilled"));

        let blocker = |reason| wfe_core::admission::Blocker {
            reason,
            message: "blocked".into(),
            execution: "we-0".into(),
            execution_namespace: "ns".into(),
            clears_at: None,
            clearable: false,
        };
        let decision = AdmissionDecision::from_blockers(vec![
            blocker(wfe_core::admission::BlockReason::RecentlyRemediated),
            blocker(wfe_core::admission::BlockReason::ExponentialBackoff),
        ]);
        let mut skipped = WorkflowExecutionStatus::default();
        init_skipped(&w, &mut skipped, &decision, now);
        assert_eq!(skipped.reason.as_deref(), Some("RecentlyRemediated"));

        let mut completed = WorkflowExecutionStatus::default();
        mark_running(&w, &mut completed, None, Some(now), "Running", now);
        mark_completed(&w, &mut completed, Some(now), now);
        assert_eq!(completed.reason, None, "nothing to explain");
    }
}
