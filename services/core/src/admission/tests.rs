use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::failure::FailureReason;
use crate::model::{ExecutionRecord, Phase};
use BlockReason::*;

pub(super) const TARGET: &str = "default/Deployment/nginx";
pub(super) const WF: &str = "wf-restart";

pub(super) fn now() -> Timestamp {
    "2026-03-01T12:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `now` shifted by `secs` (negative = in the past).
pub(super) fn at(secs: i64) -> Timestamp {
    now() + SignedDuration::from_secs(secs)
}

pub(super) fn rec(name: &str, phase: Phase, ended_secs_ago: i64) -> ExecutionRecord {
    let terminal = phase.is_terminal();
    ExecutionRecord {
        name: name.to_owned(),
        namespace: "kubernaut-system".to_owned(),
        target: TARGET.to_owned(),
        workflow_id: WF.to_owned(),
        phase,
        created_at: at(-ended_secs_ago - 30),
        completed_at: terminal.then(|| at(-ended_secs_ago)),
        failure_reason: None,
        was_execution_failure: false,
        block_cleared: false,
        sequence: 0,
    }
}

pub(super) fn completed(name: &str, ago: i64) -> ExecutionRecord {
    rec(name, Phase::Completed, ago)
}

pub(super) fn pre_fail(name: &str, ago: i64) -> ExecutionRecord {
    ExecutionRecord {
        failure_reason: Some(FailureReason::ImagePullBackOff),
        ..rec(name, Phase::Failed, ago)
    }
}

pub(super) fn exec_fail(name: &str, ago: i64) -> ExecutionRecord {
    ExecutionRecord {
        failure_reason: Some(FailureReason::TaskFailed),
        was_execution_failure: true,
        ..rec(name, Phase::Failed, ago)
    }
}

pub(super) fn cancelled(name: &str, ago: i64, started: bool) -> ExecutionRecord {
    ExecutionRecord {
        failure_reason: Some(FailureReason::Cancelled),
        was_execution_failure: started,
        ..rec(name, Phase::Failed, ago)
    }
}

pub(super) fn cleared(r: ExecutionRecord) -> ExecutionRecord {
    ExecutionRecord {
        block_cleared: true,
        ..r
    }
}

pub(super) fn decide_now(history: &[ExecutionRecord]) -> AdmissionDecision {
    decide(
        &AdmissionPolicy::default(),
        TARGET,
        WF,
        history,
        now(),
        &mut FixedJitter(0.0),
    )
}

/// (reason, execution, clears_at) of every blocker, for compact assertions.
pub(super) fn summary(d: &AdmissionDecision) -> Vec<(BlockReason, &str, Option<Timestamp>)> {
    d.blockers
        .iter()
        .map(|b| (b.reason, b.execution.as_str(), b.clears_at))
        .collect()
}

#[test]
fn default_policy_matches_issue() {
    let p = AdmissionPolicy::default();
    assert_eq!(p.cooldown, Duration::from_secs(300));
    assert_eq!(p.backoff_base, Duration::from_secs(60));
    assert_eq!(p.backoff_max, Duration::from_secs(600));
    assert_eq!(p.jitter_percent, 10);
    assert_eq!(p.max_consecutive_failures, 3);
    assert_eq!(p.exhausted_retries_block, Duration::from_secs(3600));
}

#[test]
fn backoff_schedule_with_fixed_jitter() {
    let p = AdmissionPolicy::default();
    // (n, jitter factor, expected delay in ms)
    let cases: &[(u32, f64, u64)] = &[
        (0, 1.0, 0),
        (1, 0.0, 60_000),
        (2, 0.0, 120_000),
        (3, 0.0, 240_000),
        (4, 0.0, 480_000),
        (5, 0.0, 600_000), // 960 s capped
        (40, 0.0, 600_000),
        (u32::MAX, 0.0, 600_000),
        (1, 1.0, 66_000),
        (1, -1.0, 54_000),
        (2, 0.5, 126_000),
        (5, 1.0, 660_000), // jitter applies after the cap
        (5, -1.0, 540_000),
        (1, 7.0, 66_000),  // clamped to +1
        (1, -7.0, 54_000), // clamped to -1
        (1, f64::NAN, 60_000),
    ];
    for &(n, f, want) in cases {
        let got = backoff_delay(&p, n, &mut FixedJitter(f));
        assert_eq!(got, Duration::from_millis(want), "n={n} factor={f}");
    }
}

#[test]
fn backoff_respects_configured_thresholds() {
    let p = AdmissionPolicy {
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(25),
        jitter_percent: 250, // counts as 100
        ..AdmissionPolicy::default()
    };
    assert_eq!(
        backoff_delay(&p, 2, &mut FixedJitter(0.0)),
        Duration::from_secs(20)
    );
    assert_eq!(
        backoff_delay(&p, 3, &mut FixedJitter(0.0)),
        Duration::from_secs(25)
    );
    assert_eq!(backoff_delay(&p, 1, &mut FixedJitter(-1.0)), Duration::ZERO);
    assert_eq!(
        backoff_delay(&p, 1, &mut FixedJitter(1.0)),
        Duration::from_secs(20)
    );
}

#[test]
fn seeded_jitter_is_deterministic_and_bounded() {
    let draws = |seed: &str| {
        let mut j = SeededJitter::new(seed);
        (0..200).map(|_| j.factor()).collect::<Vec<_>>()
    };
    let a = draws("wfe-a");
    assert_eq!(a, draws("wfe-a"));
    assert_ne!(a, draws("wfe-b"));
    assert!(a.iter().all(|f| (-1.0..1.0).contains(f)));
    assert!(
        a.iter().any(|f| *f < -0.5) && a.iter().any(|f| *f > 0.5),
        "spreads over the range"
    );
}

#[test]
fn empty_history_is_allowed() {
    let d = decide_now(&[]);
    assert!(d.allowed);
    assert!(d.blockers.is_empty());
    assert_eq!(d.retry_at(), None);
}

#[test]
fn other_targets_are_ignored() {
    let mut busy = rec("other", Phase::Running, 0);
    busy.target = "default/Deployment/other".into();
    let mut failed = exec_fail("other-failed", 10);
    failed.target = "Node/worker-1".into();
    assert!(decide_now(&[busy, failed]).allowed);
}

#[test]
fn resource_busy_names_every_holder() {
    let history = [
        rec("wfe-run", Phase::Running, 0),
        rec("wfe-pend", Phase::Pending, -100),
        completed("done", 3600),
    ];
    let d = decide_now(&history);
    assert!(!d.allowed);
    // Ordered by creation: the Pending one was created later.
    assert_eq!(
        summary(&d),
        [
            (ResourceBusy, "wfe-run", None),
            (ResourceBusy, "wfe-pend", None)
        ]
    );
    assert!(
        d.blockers[0]
            .message
            .contains("held by Running execution wfe-run"),
        "{}",
        d.blockers[0].message
    );
    assert!(!d.blockers[0].clearable);
    assert_eq!(d.retry_at(), None);
}

#[test]
fn blocker_carries_the_execution_namespace() {
    let mut holder = rec("wfe-run", Phase::Running, 0);
    holder.namespace = "team-a".into();
    let d = decide_now(&[holder]);
    assert_eq!(
        (
            d.blockers[0].execution.as_str(),
            d.blockers[0].execution_namespace.as_str()
        ),
        ("wfe-run", "team-a")
    );
}

#[test]
fn recently_remediated_table() {
    // (completed seconds ago, same workflow, blocked)
    let cases = [
        (60, true, true),
        (299, true, true),
        (300, true, false),
        (3600, true, false),
        (60, false, false),
    ];
    for (ago, same_wf, blocked) in cases {
        let mut r = completed("wfe-done", ago);
        if !same_wf {
            r.workflow_id = "wf-other".into();
        }
        let d = decide_now(&[r]);
        assert_eq!(!d.allowed, blocked, "ago={ago} same_wf={same_wf}");
        if blocked {
            assert_eq!(
                summary(&d),
                [(RecentlyRemediated, "wfe-done", Some(at(300 - ago)))]
            );
            assert_eq!(d.retry_at(), Some(at(300 - ago)));
        }
    }
}

#[test]
fn recently_remediated_uses_latest_completion_and_ignores_failures() {
    let d = decide_now(&[completed("old", 250), completed("new", 100)]);
    assert_eq!(summary(&d), [(RecentlyRemediated, "new", Some(at(200)))]);
    // A failure of the same workflow is not a remediation: other rules handle it.
    let d = decide_now(&[pre_fail("f", 10)]);
    assert!(d.blockers.iter().all(|b| b.reason != RecentlyRemediated));
}

#[test]
fn cooldown_is_configurable() {
    let p = AdmissionPolicy {
        cooldown: Duration::from_secs(10),
        ..AdmissionPolicy::default()
    };
    let d = decide(
        &p,
        TARGET,
        WF,
        &[completed("c", 11)],
        now(),
        &mut FixedJitter(0.0),
    );
    assert!(d.allowed);
}

#[test]
fn previous_execution_failed_table() {
    type Case = (&'static str, Vec<ExecutionRecord>, Option<&'static str>);
    let cases: Vec<Case> = vec![
        (
            "last failed after start",
            vec![completed("ok", 9000), exec_fail("bad", 7200)],
            Some("bad"),
        ),
        (
            "days ago still blocks",
            vec![exec_fail("bad", 86_400 * 3)],
            Some("bad"),
        ),
        ("cleared", vec![cleared(exec_fail("bad", 7200))], None),
        (
            "success afterwards",
            vec![exec_fail("bad", 9000), completed("ok", 7200)],
            None,
        ),
        (
            "success before does not help",
            vec![completed("ok", 9000), exec_fail("bad", 7200)],
            Some("bad"),
        ),
        (
            "pre-execution failure afterwards does not hide it",
            vec![exec_fail("bad", 9000), pre_fail("pre", 7200)],
            Some("bad"),
        ),
        (
            "cancelled after start blocks",
            vec![cancelled("cx", 7200, true)],
            Some("cx"),
        ),
        (
            "cancelled before start does not",
            vec![cancelled("cx", 7200, false)],
            None,
        ),
        (
            "pre-start cancel does not hide it",
            vec![exec_fail("bad", 9000), cancelled("cx", 7200, false)],
            Some("bad"),
        ),
        (
            "skipped does not hide it",
            vec![exec_fail("bad", 9000), rec("sk", Phase::Skipped, 7200)],
            Some("bad"),
        ),
        (
            "older exec failure cleared by newer clearance",
            vec![exec_fail("a", 9000), cleared(pre_fail("b", 8000))],
            None,
        ),
        (
            "failure after clearance blocks again",
            vec![cleared(exec_fail("a", 9000)), exec_fail("b", 8000)],
            Some("b"),
        ),
    ];
    for (name, history, want) in cases {
        let d = decide_now(&history);
        let got = d
            .blockers
            .iter()
            .find(|b| b.reason == PreviousExecutionFailed);
        assert_eq!(got.map(|b| b.execution.as_str()), want, "{name}");
        if let Some(b) = got {
            assert_eq!((b.clears_at, b.clearable), (None, true), "{name}");
            assert_eq!(d.retry_at(), None, "{name}: only a person clears it");
        }
    }
}

#[test]
fn previous_execution_failed_message_names_reason_and_target() {
    let d = decide_now(&[exec_fail("wfe-bad", 100)]);
    let msg = &d.blockers[0].message;
    assert!(
        msg.contains("wfe-bad") && msg.contains("TaskFailed") && msg.contains(TARGET),
        "{msg}"
    );
}

#[test]
fn exponential_backoff_table() {
    // (history, expected blocker: (execution, clears_at offset from now))
    type Case = (
        &'static str,
        Vec<ExecutionRecord>,
        Option<(&'static str, i64)>,
    );
    let cases: Vec<Case> = vec![
        (
            "1 failure 30 s ago: 60 s",
            vec![pre_fail("f1", 30)],
            Some(("f1", 30)),
        ),
        ("1 failure 60 s ago: clear", vec![pre_fail("f1", 60)], None),
        (
            "2 failures: 120 s from the last",
            vec![pre_fail("f1", 500), pre_fail("f2", 100)],
            Some(("f2", 20)),
        ),
        (
            "2 failures, 120 s passed",
            vec![pre_fail("f1", 500), pre_fail("f2", 120)],
            None,
        ),
        (
            "success resets",
            vec![
                pre_fail("f1", 500),
                completed("ok", 400),
                pre_fail("f2", 10),
            ],
            Some(("f2", 50)),
        ),
        (
            "skipped ignored",
            vec![
                pre_fail("f1", 500),
                rec("sk", Phase::Skipped, 300),
                pre_fail("f2", 100),
            ],
            Some(("f2", 20)),
        ),
        (
            "pre-start cancel neutral",
            vec![
                pre_fail("f1", 500),
                cancelled("c", 300, false),
                pre_fail("f2", 100),
            ],
            Some(("f2", 20)),
        ),
        (
            "pre-start cancel alone",
            vec![cancelled("c", 10, false)],
            None,
        ),
        (
            "clearance resets the streak",
            vec![
                pre_fail("f1", 500),
                cleared(pre_fail("f2", 400)),
                pre_fail("f3", 10),
            ],
            Some(("f3", 50)),
        ),
        (
            "cleared newest: nothing",
            vec![pre_fail("f1", 500), cleared(pre_fail("f2", 10))],
            None,
        ),
    ];
    for (name, history, want) in cases {
        let d = decide_now(&history);
        let got = d.blockers.iter().find(|b| b.reason == ExponentialBackoff);
        let got = got.map(|b| (b.execution.as_str(), b.clears_at));
        assert_eq!(got, want.map(|(e, s)| (e, Some(at(s)))), "{name}");
        assert!(
            d.blockers.iter().all(|b| b.reason == ExponentialBackoff),
            "{name}: {:?}",
            summary(&d)
        );
    }
}

#[test]
fn backoff_uses_the_jitter_source() {
    let history = [pre_fail("f1", 30)];
    let p = AdmissionPolicy::default();
    let d = decide(&p, TARGET, WF, &history, now(), &mut FixedJitter(1.0));
    assert_eq!(summary(&d), [(ExponentialBackoff, "f1", Some(at(36)))]);
    let d = decide(&p, TARGET, WF, &history, now(), &mut FixedJitter(-1.0));
    assert_eq!(summary(&d), [(ExponentialBackoff, "f1", Some(at(24)))]);
    assert!(!d.blockers[0].clearable);
    assert!(
        d.blockers[0].message.contains("backoff of 54s"),
        "{}",
        d.blockers[0].message
    );
}

#[test]
fn exhausted_retries_table() {
    let three = |last_ago: i64| {
        vec![
            pre_fail("f1", last_ago + 400),
            pre_fail("f2", last_ago + 200),
            pre_fail("f3", last_ago),
        ]
    };
    type Case = (
        &'static str,
        Vec<ExecutionRecord>,
        Option<(&'static str, i64)>,
    );
    let mut four = three(30);
    four.push(pre_fail("f0", 5000));
    let mut cleared_three = three(30);
    cleared_three[2].block_cleared = true;
    let cases: Vec<Case> = vec![
        ("3 failures, 10 min ago", three(600), Some(("f3", 3000))),
        ("3 failures, 59 min ago", three(3540), Some(("f3", 60))),
        ("3 failures, 1 h ago: expired", three(3600), None),
        ("4 failures", four, Some(("f3", 3570))),
        ("cleared", cleared_three, None),
    ];
    for (name, history, want) in cases {
        let d = decide_now(&history);
        let got = d.blockers.iter().find(|b| b.reason == ExhaustedRetries);
        assert_eq!(
            got.map(|b| (b.execution.as_str(), b.clears_at)),
            want.map(|(e, s)| (e, Some(at(s)))),
            "{name}"
        );
        assert!(
            d.blockers.iter().all(|b| b.reason == ExhaustedRetries),
            "{name}: no backoff on top"
        );
        if let Some(b) = got {
            assert!(b.clearable, "{name}");
        }
    }
}

#[test]
fn max_consecutive_failures_is_configurable() {
    let history = [
        pre_fail("f1", 1000),
        pre_fail("f2", 600),
        pre_fail("f3", 10),
    ];
    let p = AdmissionPolicy {
        max_consecutive_failures: 5,
        ..AdmissionPolicy::default()
    };
    let d = decide(&p, TARGET, WF, &history, now(), &mut FixedJitter(0.0));
    assert_eq!(summary(&d), [(ExponentialBackoff, "f3", Some(at(230)))]);
    let p = AdmissionPolicy {
        max_consecutive_failures: 0,
        ..AdmissionPolicy::default()
    };
    let d = decide(
        &p,
        TARGET,
        WF,
        &[pre_fail("f1", 10)],
        now(),
        &mut FixedJitter(0.0),
    );
    assert_eq!(summary(&d), [(ExhaustedRetries, "f1", Some(at(3590)))]);
}

#[test]
fn write_order_decides_between_records_ending_in_the_same_second() {
    // Kubernetes times keep whole seconds: a failure and a later success on the same
    // target can share their completion second. The later write wins.
    let fail_then_success = [
        ExecutionRecord {
            sequence: 10,
            ..exec_fail("f", 60)
        },
        ExecutionRecord {
            sequence: 11,
            workflow_id: "other".into(),
            ..completed("s", 60)
        },
    ];
    let d = decide_now(&fail_then_success);
    assert!(
        !d.blockers
            .iter()
            .any(|b| b.reason == BlockReason::PreviousExecutionFailed),
        "{d:?}"
    );
    let success_then_fail = [
        ExecutionRecord {
            sequence: 11,
            ..exec_fail("f", 60)
        },
        ExecutionRecord {
            sequence: 10,
            workflow_id: "other".into(),
            ..completed("s", 60)
        },
    ];
    let d = decide_now(&success_then_fail);
    assert!(
        d.blockers
            .iter()
            .any(|b| b.reason == BlockReason::PreviousExecutionFailed),
        "{d:?}"
    );
}
