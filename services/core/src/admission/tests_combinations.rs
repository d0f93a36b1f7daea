//! Admission rules in combination, and properties of the decision as a whole.

use super::tests::*;
use super::*;
use crate::model::Phase;
use BlockReason::*;

#[test]
fn combination_every_blocker_is_named_in_rule_order() {
    let history = [
        completed("done", 120),
        exec_fail("bad", 100),
        pre_fail("pre", 20),
        rec("holder", Phase::Running, 0),
    ];
    let d = decide_now(&history);
    assert_eq!(
        summary(&d),
        [
            (ResourceBusy, "holder", None),
            (RecentlyRemediated, "done", Some(at(180))),
            (PreviousExecutionFailed, "bad", None),
            (ExponentialBackoff, "pre", Some(at(40))),
        ]
    );
    assert_eq!(d.retry_at(), None);
}

#[test]
fn combination_busy_and_backoff_and_exhausted() {
    let history = [
        pre_fail("f1", 700),
        pre_fail("f2", 500),
        pre_fail("f3", 100),
        rec("p", Phase::Pending, 0),
    ];
    let d = decide_now(&history);
    assert_eq!(
        summary(&d),
        [
            (ResourceBusy, "p", None),
            (ExhaustedRetries, "f3", Some(at(3500)))
        ]
    );
}

#[test]
fn combination_timed_blockers_give_retry_at_of_the_latest() {
    let history = [completed("done", 60), pre_fail("pre", 30)];
    // `pre` ended after `done`, so the streak is 1 and both clear by time.
    let d = decide_now(&history);
    assert_eq!(
        summary(&d),
        [
            (RecentlyRemediated, "done", Some(at(240))),
            (ExponentialBackoff, "pre", Some(at(30)))
        ]
    );
    assert_eq!(d.retry_at(), Some(at(240)));
}

#[test]
fn combination_success_after_failures_leaves_only_cooldown() {
    let history = [
        exec_fail("bad", 900),
        pre_fail("f1", 800),
        pre_fail("f2", 700),
        pre_fail("f3", 600),
        completed("ok", 30),
    ];
    let d = decide_now(&history);
    assert_eq!(summary(&d), [(RecentlyRemediated, "ok", Some(at(270)))]);
}

#[test]
fn combination_clear_lifts_failure_blocks_but_not_busy_or_cooldown() {
    let history = [
        completed("done", 200),
        cleared(exec_fail("bad", 100)),
        rec("holder", Phase::Running, 0),
    ];
    let d = decide_now(&history);
    assert_eq!(
        summary(&d),
        [
            (ResourceBusy, "holder", None),
            (RecentlyRemediated, "done", Some(at(100)))
        ]
    );
}

#[test]
fn decision_does_not_depend_on_history_order() {
    let mut history = vec![
        pre_fail("f1", 700),
        exec_fail("bad", 900),
        pre_fail("f2", 30),
        completed("ok", 1000),
    ];
    let first = decide_now(&history);
    history.reverse();
    assert_eq!(decide_now(&history), first);
    history.swap(0, 2);
    assert_eq!(decide_now(&history), first);
}

#[test]
fn record_without_completion_time_uses_creation_time() {
    let mut r = pre_fail("f1", 0);
    r.completed_at = None;
    r.created_at = at(-50);
    let d = decide_now(&[r]);
    assert_eq!(summary(&d), [(ExponentialBackoff, "f1", Some(at(10)))]);
}

#[test]
fn block_reason_wire_values() {
    let cases = [
        (ResourceBusy, "ResourceBusy", "TargetResourceBusy", false),
        (
            RecentlyRemediated,
            "RecentlyRemediated",
            "RecentlyRemediated",
            false,
        ),
        (
            PreviousExecutionFailed,
            "PreviousExecutionFailed",
            "PreviousExecutionFailed",
            true,
        ),
        (
            ExponentialBackoff,
            "ExponentialBackoff",
            "ExponentialBackoff",
            false,
        ),
        (
            ExhaustedRetries,
            "ExhaustedRetries",
            "ExhaustedRetries",
            true,
        ),
    ];
    for (r, wire, cond, clearable) in cases {
        assert_eq!(
            (
                r.as_str(),
                crate::conditions::locked_reason(r),
                r.clearable()
            ),
            (wire, cond, clearable)
        );
    }
}

#[test]
fn combination_previous_failure_and_exhausted_retries() {
    // Pre-execution failures after an execution failure (e.g. raced past admission) still
    // count; the execution failure keeps blocking until cleared.
    let history = [
        exec_fail("bad", 2000),
        pre_fail("f1", 900),
        pre_fail("f2", 800),
        pre_fail("f3", 700),
    ];
    let d = decide_now(&history);
    assert_eq!(
        summary(&d),
        [
            (PreviousExecutionFailed, "bad", None),
            (ExhaustedRetries, "f3", Some(at(2900)))
        ]
    );
    assert!(d.blockers.iter().all(|b| b.clearable));
}

#[test]
fn combination_cancelled_while_running_and_busy() {
    let history = [cancelled("cx", 50, true), rec("next", Phase::Pending, -10)];
    let d = decide_now(&history);
    assert_eq!(
        summary(&d),
        [
            (ResourceBusy, "next", None),
            (PreviousExecutionFailed, "cx", None)
        ]
    );
    assert!(
        d.blockers[1].message.contains("Cancelled"),
        "{}",
        d.blockers[1].message
    );
}
