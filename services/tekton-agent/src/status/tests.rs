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
