use super::*;
use serde_json::{Value, json};
use wfe_proto::agent::ExecutionKey;

fn pr(cond: Value, children: &[&str]) -> PipelineRun {
    let children: Vec<Value> = children
        .iter()
        .map(|c| json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": c, "pipelineTaskName": c}))
        .collect();
    let conditions = if cond.is_null() {
        json!([])
    } else {
        json!([cond])
    };
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": "wfe-1-a1"},
        "spec": {},
        "status": {"conditions": conditions, "startTime": "2025-01-01T00:00:00Z",
                   "completionTime": "2025-01-01T00:02:00Z", "childReferences": children}
    }))
    .expect("valid pipelinerun")
}

fn cond(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Succeeded", "status": status, "reason": reason, "message": message})
}

fn tr(name: &str, status: &str, reason: &str, steps: Value) -> TaskRun {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": name}, "spec": {},
        "status": {"conditions": [cond(status, reason, "")], "startTime": "2025-01-01T00:00:01Z", "steps": steps}
    }))
    .expect("valid taskrun")
}

fn owner() -> Owner {
    Owner {
        key: ExecutionKey {
            name: "we".into(),
            namespace: "ns".into(),
            uid: "u".into(),
        },
        attempt: 1,
        fencing_token: 1,
        workflow_id: "wf".into(),
        target: "ns/Deployment/app".into(),
    }
}

fn now() -> Timestamp {
    "2025-01-01T00:03:00Z".parse().expect("valid")
}

#[test]
fn phases_and_progress() {
    let ok = tr("t1", "True", "Succeeded", json!([]));
    let running = tr("t2", "Unknown", "Running", json!([]));
    let trs = [&ok, &running];
    let cases = [
        (
            pr(Value::Null, &[]),
            PrimitivePhase::Pending,
            "Pending",
            (0, 0),
        ),
        (
            pr(cond("Unknown", "Running", ""), &["t1", "t2"]),
            PrimitivePhase::Running,
            "Running",
            (1, 2),
        ),
        (
            // The tally names two tasks; only one TaskRun is known here.
            pr(cond("True", "Succeeded", "Tasks Completed: 2"), &["t1"]),
            PrimitivePhase::Succeeded,
            "Succeeded",
            (1, 2),
        ),
        (
            // Later tasks have no TaskRun yet: the tally still counts them.
            pr(
                cond(
                    "Unknown",
                    "Running",
                    "Tasks Completed: 1 (Failed: 0, Cancelled 0), Incomplete: 2, Skipped: 0",
                ),
                &["t1", "t2"],
            ),
            PrimitivePhase::Running,
            "Running",
            (1, 3),
        ),
    ];
    for (p, phase, reason, (done, total)) in cases {
        let o = pipeline_run_state(&p, &trs, &owner(), now());
        assert_eq!((o.phase, o.reason.as_str()), (phase, reason));
        assert_eq!((o.progress.completed, o.progress.total), (done, total));
    }
}

#[test]
fn failure_table() {
    let ok = tr(
        "t1",
        "True",
        "Succeeded",
        json!([{"name": "s", "terminated": {"exitCode": 0}}]),
    );
    let failed_step = tr(
        "t2",
        "False",
        "Failed",
        json!([
            {"name": "prepare", "terminated": {"exitCode": 0, "reason": "Completed"}},
            {"name": "apply", "terminated": {"exitCode": 3, "reason": "Error"}}
        ]),
    );
    let oom = tr(
        "t2",
        "False",
        "Failed",
        json!([{"name": "apply", "terminated": {"exitCode": 137, "reason": "OOMKilled"}}]),
    );
    let pull = tr("t1", "False", "TaskRunImagePullFailed", json!([]));
    let hang = tr("t1", "False", "TaskRunTimeout", json!([]));
    // Tekton stopped the step that was running at the deadline: its exit code is the kill's.
    let stopped = tr(
        "t1",
        "False",
        "TaskRunTimeout",
        json!([{"name": "apply", "terminated": {"exitCode": 1, "reason": "TaskRunTimeout"}}]),
    );
    // (name, pr, taskruns, reason, task, index, step, exit, wasExecutionFailure)
    type Row<'a> = (
        &'a str,
        PipelineRun,
        Vec<&'a TaskRun>,
        FailureReason,
        Option<&'a str>,
        Option<u32>,
        Option<&'a str>,
        Option<i32>,
        bool,
    );
    let rows: Vec<Row> = vec![
        (
            "step exit code",
            pr(
                cond("False", "Failed", "Tasks Completed: 2 (Failed: 1)"),
                &["t1", "t2"],
            ),
            vec![&ok, &failed_step],
            FailureReason::TaskFailed,
            Some("t2"),
            Some(1),
            Some("apply"),
            Some(3),
            true,
        ),
        (
            "oom",
            pr(
                cond("False", "Failed", "Tasks Completed: 1 (Failed: 1)"),
                &["t2"],
            ),
            vec![&oom],
            FailureReason::OOMKilled,
            Some("t2"),
            Some(0),
            Some("apply"),
            Some(137),
            true,
        ),
        (
            "timeout",
            pr(
                cond(
                    "False",
                    "PipelineRunTimeout",
                    "PipelineRun \"x\" failed to finish within \"1m0s\"",
                ),
                &["t1"],
            ),
            vec![&hang],
            FailureReason::DeadlineExceeded,
            Some("t1"),
            Some(0),
            None,
            None,
            true,
        ),
        (
            "timeout that stopped a running step: no exit code either",
            pr(
                cond(
                    "False",
                    "PipelineRunTimeout",
                    "PipelineRun \"x\" failed to finish within \"3s\"",
                ),
                &["t1"],
            ),
            vec![&stopped],
            FailureReason::DeadlineExceeded,
            Some("t1"),
            Some(0),
            Some("apply"),
            None,
            true,
        ),
        (
            "cancelled",
            pr(
                cond("False", "Cancelled", "PipelineRun \"x\" was cancelled"),
                &["t1"],
            ),
            vec![&hang],
            FailureReason::Cancelled,
            Some("t1"),
            Some(0),
            None,
            None,
            true,
        ),
        (
            "bundle not found",
            pr(
                cond(
                    "False",
                    "CouldntGetPipeline",
                    "Error retrieving pipeline for pipelinerun: bundle not found",
                ),
                &[],
            ),
            vec![],
            FailureReason::ConfigurationError,
            None,
            None,
            None,
            None,
            false,
        ),
        (
            "image pull",
            pr(
                cond("False", "Failed", "Tasks Completed: 1 (Failed: 1)"),
                &["t1"],
            ),
            vec![&pull],
            FailureReason::ImagePullBackOff,
            Some("t1"),
            Some(0),
            None,
            None,
            false,
        ),
    ];
    for (name, p, trs, reason, task, index, step, exit, wef) in rows {
        let o = pipeline_run_state(&p, &trs, &owner(), now());
        assert_eq!(o.phase, PrimitivePhase::Failed, "{name}");
        let f = o.failure.expect("failure");
        assert_eq!(f.reason, reason, "{name}");
        assert_eq!(o.reason, reason.as_str(), "{name}");
        assert_eq!(f.failed_task_name.as_deref(), task, "{name}");
        assert_eq!(f.failed_task_index, index, "{name}");
        assert_eq!(f.failed_step_name.as_deref(), step, "{name}");
        assert_eq!(f.exit_code, exit, "{name}");
        assert_eq!(f.was_execution_failure, wef, "{name}");
        assert!(
            !f.message.is_empty() && f.natural_language_summary.contains("wf"),
            "{name}"
        );
    }
}

#[test]
fn tally_total_counts_tasks_not_yet_created() {
    let cases = [
        (
            "Tasks Completed: 1 (Failed: 0, Cancelled 0), Incomplete: 2, Skipped: 0",
            Some(3),
        ),
        (
            "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1",
            Some(3),
        ),
        (
            "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 0",
            Some(3),
        ),
        ("Pipeline pending", None),
        ("", None),
    ];
    for (message, total) in cases {
        assert_eq!(tally_total(message), total, "{message}");
    }
}

/// The sandbox's (and Tekton's) message for a pod waiting on a missing workspace Secret.
const MOUNT_MISSING: &str = r#"pod status "PodReadyToStartContainers":"False"; message: "MountVolume.SetUp failed for volume \"ws-creds\" : secret \"creds\" not found""#;

/// A TaskRun created at 00:01:00 that is Succeeded=Unknown with `reason`/`message`.
fn pending_tr(name: &str, reason: &str, message: &str) -> TaskRun {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun",
        "metadata": {"name": name, "creationTimestamp": "2025-01-01T00:01:00Z"}, "spec": {},
        "status": {"conditions": [cond("Unknown", reason, message)],
                   "startTime": "2025-01-01T00:01:00Z",
                   "steps": [{"name": "apply", "container": "step-apply"}]}
    }))
    .expect("valid taskrun")
}

fn running_pr(children: &[&str]) -> PipelineRun {
    let mut p = pr(cond("Unknown", "Running", ""), children);
    if let Some(s) = p.status.as_mut() {
        s.completion_time = None;
    }
    p
}

fn grace(secs: u64) -> Policy {
    Policy {
        stuck_grace: Duration::from_secs(secs),
    }
}

#[test]
fn missing_secret_within_grace_is_still_running() {
    let t = pending_tr("t1", "Pending", MOUNT_MISSING);
    // now() is 00:03:00: the TaskRun has waited 120 s.
    let s = run_state(&running_pr(&["t1"]), &[&t], &owner(), &grace(121), now());
    assert_eq!(s.observation.phase, PrimitivePhase::Running);
    assert!(s.observation.failure.is_none());
    assert!(!s.abort);
    // It already says what it waits on.
    assert_eq!(s.observation.reason, "CreateContainerConfigError");
    assert!(
        s.observation.message.contains("secret \"creds\" not found")
            && s.observation.message.contains("121s stuck grace"),
        "{}",
        s.observation.message
    );
}

#[test]
fn missing_reference_past_grace_is_configuration_error() {
    let env_ref = r#"build step "step-apply" is pending with reason "secret \"creds\" not found""#;
    let cases = [
        (
            "workspace mount",
            "Pending",
            MOUNT_MISSING,
            "secret \"creds\" not found",
        ),
        (
            "env reference",
            "Pending",
            env_ref,
            "secret \"creds\" not found",
        ),
        (
            "config map",
            "Pending",
            r#"MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found"#,
            "configmap \"settings\" not found",
        ),
        (
            "container config error",
            "CreateContainerConfigError",
            "couldn't find key token in Secret ns/creds",
            "couldn't find key token in Secret ns/creds",
        ),
    ];
    for (name, reason, message, names) in cases {
        let t = pending_tr("t2", reason, message);
        let ok = tr("t1", "True", "Succeeded", json!([]));
        let s = run_state(
            &running_pr(&["t1", "t2"]),
            &[&ok, &t],
            &owner(),
            &grace(120),
            now(),
        );
        assert_eq!(s.observation.phase, PrimitivePhase::Failed, "{name}");
        assert!(s.abort, "{name}: the run must be stopped");
        let f = s.observation.failure.expect("failure");
        assert_eq!(f.reason, FailureReason::ConfigurationError, "{name}");
        assert!(!f.was_execution_failure, "{name}: no workflow code ran");
        assert_eq!(f.exit_code, None, "{name}");
        assert_eq!(f.execution_time_before_failure, None, "{name}");
        assert_eq!(
            (f.failed_task_name.as_deref(), f.failed_task_index),
            (Some("t2"), Some(1)),
            "{name}"
        );
        assert!(f.message.contains(names), "{name}: {}", f.message);
        assert!(f.natural_language_summary.contains("wf"), "{name}");
    }
}

#[test]
fn unrelated_pending_reasons_are_not_classified() {
    let cases = [
        (
            "Pending",
            r#"pod status "PodScheduled":"False"; message: "0/3 nodes are available: 3 Insufficient cpu.""#,
        ),
        (
            "Pending",
            r#"MountVolume.SetUp failed for volume "data" : rpc error: code = DeadlineExceeded"#,
        ),
        ("ExceededNodeResources", "secret \"creds\" not found"),
        ("Running", MOUNT_MISSING),
    ];
    for (reason, message) in cases {
        let t = pending_tr("t1", reason, message);
        let s = run_state(&running_pr(&["t1"]), &[&t], &owner(), &grace(1), now());
        assert_eq!(
            s.observation.phase,
            PrimitivePhase::Running,
            "{reason}: {message}"
        );
        assert!(!s.abort, "{reason}: {message}");
    }
}

#[test]
fn a_run_being_stopped_reports_the_cause_without_stopping_again() {
    let t = pending_tr("t1", "Pending", MOUNT_MISSING);
    let mut p = running_pr(&["t1"]);
    p.spec.status = Some("Cancelled".into());
    let s = run_state(&p, &[&t], &owner(), &grace(1), now());
    assert_eq!(
        s.observation.reason,
        FailureReason::ConfigurationError.as_str()
    );
    assert!(!s.abort);
}

#[test]
fn a_finished_run_keeps_tektons_verdict() {
    let t = pending_tr("t1", "Pending", MOUNT_MISSING);
    let p = pr(cond("False", "PipelineRunTimeout", "timed out"), &["t1"]);
    let s = run_state(&p, &[&t], &owner(), &grace(1), now());
    assert_eq!(
        s.observation.reason,
        FailureReason::DeadlineExceeded.as_str()
    );
    assert!(!s.abort);
}
