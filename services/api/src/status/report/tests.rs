//! Table tests of the fencing and binding rules, and of the edits reports make.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use wfe_proto::agent::ExecutionKey;

#[test]
fn a_missing_primitive_after_a_cancel_request_is_a_cancellation() {
    let mut w = obj(1);
    let status = w.status.as_mut().unwrap();
    status.phase = Some(Phase::Running);
    status.execution_ref = Some(Default::default());
    status.cancel_request = Some(k8s::CancelRequest {
        requested_by: "alice".into(),
        reason: "wrong node".into(),
        requested_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
    });
    let mut status = status.clone();
    let mut r = report(1);
    r.phase = PrimitivePhase::Missing as i32;
    assert!(matches!(
        edit(&w, &mut status, &r, Timestamp::UNIX_EPOCH),
        Edit::Write
    ));
    let details = status.failure_details.expect("failed");
    assert_eq!(details.reason, FailureReason::Cancelled);
    assert_eq!(details.message, "cancelled by alice: wrong node");
}

fn obj(token: u64) -> WorkflowExecution {
    let mut w = WorkflowExecution::new("we-1", Default::default());
    w.metadata.uid = Some("u1".into());
    w.spec.execution_engine = "job".into();
    w.spec.cluster_id = "east".into();
    w.status = Some(wfe_k8s::WorkflowExecutionStatus {
        assignment: Some(k8s::Assignment {
            agent_id: "a".into(),
            session_id: "s".into(),
            fencing_token: token,
            assigned_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
            acknowledged: true,
        }),
        ..Default::default()
    });
    w
}

fn report(token: u64) -> StatusReport {
    StatusReport {
        execution: Some(ExecutionKey {
            name: "we-1".into(),
            namespace: "ns".into(),
            uid: "u1".into(),
        }),
        fencing_token: token,
        ..Default::default()
    }
}

fn reporter(agent: &str, session: &str) -> Reporter {
    Reporter {
        agent_id: agent.into(),
        session_id: session.into(),
        cluster_id: "east".into(),
        engine: Engine::Job,
    }
}

fn with_phase(mut w: WorkflowExecution, phase: Phase) -> WorkflowExecution {
    w.status.as_mut().unwrap().phase = Some(phase);
    w
}

/// `obj(2)` is Running, assigned to agent "a" on session "s" under token 2.
#[test]
fn only_the_assigned_session_under_the_current_token_reports() {
    use Refused::*;
    let running = || with_phase(obj(2), Phase::Running);
    let unassigned = {
        let mut w = running();
        w.status.as_mut().unwrap().assignment = None;
        w
    };
    let recreated = {
        let mut r = report(2);
        r.execution.as_mut().unwrap().uid = "u2".into();
        r
    };
    let west = Reporter {
        cluster_id: "west".into(),
        ..reporter("a", "s")
    };
    let tekton = Reporter {
        engine: Engine::Tekton,
        ..reporter("a", "s")
    };
    type Case = (
        &'static str,
        WorkflowExecution,
        Reporter,
        StatusReport,
        Result<(), Refused>,
    );
    #[rustfmt::skip]
    let table: Vec<Case> = vec![
        ("the assigned session, the current token",
         running(), reporter("a", "s"), report(2), Ok(())),
        ("the assigned session, an older token",
         running(), reporter("a", "s"), report(1), Err(Stale)),
        ("the assigned session, a token from the future",
         running(), reporter("a", "s"), report(3), Err(FutureToken)),
        ("another agent's session with the same token binding",
         running(), reporter("b", "s2"), report(2), Err(NotAssignee)),
        ("another agent that guesses the session id",
         running(), reporter("b", "s"), report(2), Err(NotAssignee)),
        ("another agent, a token from the future",
         running(), reporter("b", "s2"), report(3), Err(NotAssignee)),
        ("the assigned agent on another session (it reconnected)",
         running(), reporter("a", "s2"), report(2), Err(OtherSession)),
        ("the assigned agent on another session, a token from the future",
         running(), reporter("a", "s2"), report(3), Err(OtherSession)),
        ("an execution assigned to nobody",
         unassigned, reporter("a", "s"), report(2), Err(NotAssignee)),
        ("another cluster",
         running(), west, report(2), Err(NotYours)),
        ("another engine",
         running(), tekton, report(2), Err(NotYours)),
        ("an execution recreated under the same name",
         running(), reporter("a", "s"), recreated, Err(Unknown)),
        ("a terminal execution: ignored, whoever reports",
         with_phase(obj(2), Phase::Completed), reporter("b", "s2"), report(1), Ok(())),
    ];
    for (case, obj, who, r, want) in table {
        assert_eq!(check(&obj, &who, &r), want, "{case}");
    }
}

/// What the incident did (a second session, token 1, SUCCEEDED for a Running
/// execution) and every other end it could report are refused before any edit.
#[test]
fn a_second_session_can_neither_finish_fail_nor_cancel() {
    let running = with_phase(obj(1), Phase::Running);
    let failure = |reason: v1::FailureReason| wfe_proto::v1::FailureDetails {
        reason: reason as i32,
        ..Default::default()
    };
    let ends = [
        (PrimitivePhase::Succeeded, None),
        (
            PrimitivePhase::Failed,
            Some(failure(v1::FailureReason::TaskFailed)),
        ),
        (
            PrimitivePhase::Failed,
            Some(failure(v1::FailureReason::Cancelled)),
        ),
        (PrimitivePhase::Missing, None),
    ];
    for (phase, failure) in ends {
        let mut r = report(1);
        r.phase = phase as i32;
        r.failure = failure;
        for who in [reporter("rogue", "s2"), reporter("a", "s2")] {
            assert!(check(&running, &who, &r).is_err(), "{phase:?} from {who:?}");
        }
        // The same report from the assignee ends the execution.
        assert_eq!(check(&running, &reporter("a", "s"), &r), Ok(()));
        let mut status = running.status.clone().unwrap();
        assert!(matches!(
            edit(&running, &mut status, &r, Timestamp::UNIX_EPOCH),
            Edit::Write
        ));
        assert!(status.phase.is_some_and(Phase::is_terminal), "{phase:?}");
    }
}

/// A restarted agent reconnects on a new session: its inventory (old token) is refused
/// until the dispatcher assigns the execution to that session under the next token;
/// then the new session reports, and the old one no longer may.
#[test]
fn adoption_after_a_restart_goes_through_a_new_assignment() {
    let before = with_phase(obj(1), Phase::Running);
    let (old, new) = (reporter("a", "s"), reporter("a", "s-new"));
    assert_eq!(check(&before, &new, &report(1)), Err(Refused::OtherSession));
    let mut after = before.clone();
    let st = after.status.as_mut().unwrap();
    let a = st.assignment.as_mut().unwrap();
    (a.session_id, a.fencing_token, a.acknowledged) = ("s-new".into(), 2, false);
    assert_eq!(check(&after, &new, &report(2)), Ok(()));
    assert_eq!(check(&after, &new, &report(1)), Err(Refused::Stale));
    assert_eq!(check(&after, &old, &report(2)), Err(Refused::OtherSession));
    // Its first report under the new token acknowledges the assignment.
    let mut status = after.status.clone().unwrap();
    let mut r = report(2);
    r.phase = PrimitivePhase::Running as i32;
    edit(&after, &mut status, &r, Timestamp::UNIX_EPOCH);
    assert!(status.assignment.unwrap().acknowledged);
}
