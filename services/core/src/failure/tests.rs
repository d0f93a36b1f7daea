use std::time::Duration;

use jiff::Timestamp;

use super::FailureReason::*;
use super::*;

fn details(reason: FailureReason, was_execution_failure: bool) -> FailureDetails {
    FailureDetails {
        reason,
        message: String::new(),
        failed_task_index: None,
        failed_task_name: None,
        failed_step_name: None,
        exit_code: None,
        failed_at: Timestamp::UNIX_EPOCH,
        execution_time_before_failure: None,
        natural_language_summary: String::new(),
        was_execution_failure,
    }
}

#[test]
fn reason_round_trip() {
    for r in FailureReason::ALL {
        assert_eq!(FailureReason::parse(r.as_str()), Ok(r));
        assert_eq!(r.to_string(), r.as_str());
    }
    assert_eq!(OOMKilled.as_str(), "OOMKilled");
    assert!(FailureReason::parse("oomkilled").is_err());
    assert!(FailureReason::parse("Deduplicated").is_err());
}

#[test]
fn was_execution_failure_table() {
    // (reason, started, expected)
    let cases = [
        // Reasons that prove nothing ran win over `started` (U-121..U-123).
        (ImagePullBackOff, true, false),
        (ConfigurationError, true, false),
        (ResourceExhausted, true, false),
        (UnsupportedEngine, true, false),
        // Reasons that prove code ran win the other way.
        (OOMKilled, false, true),
        (TaskFailed, false, true),
        (TaskFailed, true, true),
        // Otherwise `started` decides.
        (DeadlineExceeded, true, true),
        (DeadlineExceeded, false, false),
        (Forbidden, true, true),
        (Forbidden, false, false),
        (Cancelled, true, true),
        (Cancelled, false, false),
        (AgentLost, true, true),
        (AgentLost, false, false),
        (Unknown, true, true),
        (Unknown, false, false),
    ];
    for (reason, started, want) in cases {
        assert_eq!(
            was_execution_failure(reason, started),
            want,
            "{reason} started={started}"
        );
    }
}

#[test]
fn retry_safe_table() {
    for r in FailureReason::ALL {
        assert!(retry_safe(r, false), "{r}: nothing ran, a retry is safe");
    }
    let after_start = [
        (OOMKilled, false),
        (DeadlineExceeded, false),
        (Forbidden, false),
        (TaskFailed, false),
        (Cancelled, false),
        (AgentLost, false),
        (Unknown, false),
        (ImagePullBackOff, true),
        (ConfigurationError, true),
        (ResourceExhausted, true),
        (UnsupportedEngine, true),
    ];
    for (r, want) in after_start {
        assert_eq!(retry_safe(r, true), want, "{r} after start");
    }
}

#[test]
fn error_code_table_matches_reference() {
    let cases = [
        (ConfigurationError, false, "ERR_WORKFLOW_NOT_FOUND", false),
        (Forbidden, true, "ERR_WORKFLOW_NOT_FOUND", false),
        (OOMKilled, true, "ERR_PIPELINE_FAILED", true),
        (ResourceExhausted, false, "ERR_PIPELINE_FAILED", true),
        (DeadlineExceeded, true, "ERR_PIPELINE_FAILED", true),
        (ImagePullBackOff, false, "ERR_IMAGE_PULL", true),
        (TaskFailed, true, "ERR_PIPELINE_FAILED", false),
        (TaskFailed, false, "ERR_PIPELINE_FAILED", true),
        (Unknown, true, "ERR_PIPELINE_FAILED", true),
        (Cancelled, true, "ERR_PIPELINE_FAILED", true),
        (AgentLost, false, "ERR_PIPELINE_FAILED", true),
        (UnsupportedEngine, false, "ERR_PIPELINE_FAILED", true),
    ];
    for (reason, wef, code, retry) in cases {
        let (c, r) = error_code(reason, wef);
        assert_eq!((c.as_str(), r), (code, retry), "{reason} wef={wef}");
    }
}

#[test]
fn error_details_messages() {
    let none = error_details(None);
    assert_eq!(none.message, "Workflow execution failed with unknown error");
    assert_eq!(none.component, "workflowexecution");

    let mut d = details(TaskFailed, true);
    d.failed_task_name = Some("restart-pod".into());
    d.message = "Task restart-pod failed: exit code 1".into();
    let e = error_details(Some(&d));
    assert_eq!(
        e.message,
        "Pipeline failed at task 'restart-pod': Task restart-pod failed: exit code 1"
    );
    assert_eq!(
        (e.code, e.retry_possible),
        (ErrorCode::PipelineFailed, false)
    );

    d.failed_step_name = Some("apply".into());
    d.message.clear();
    assert_eq!(
        error_details(Some(&d)).message,
        "Pipeline failed at task 'restart-pod' step 'apply'"
    );

    let mut j = details(OOMKilled, true);
    j.message = "Container exceeded memory limit".into();
    assert_eq!(
        error_details(Some(&j)).message,
        "Workflow execution failed: Container exceeded memory limit"
    );
}

#[test]
fn tekton_classifier_table_from_reference() {
    let cases = [
        ("Failed", "Container killed: OOMKilled", OOMKilled),
        ("Failed", "task failed due to oom", OOMKilled),
        ("Failed", "Exit code 137 - OOMkilled by kernel", OOMKilled),
        ("PipelineRunTimeout", "Pipeline timed out", DeadlineExceeded),
        ("Failed", "Task timeout exceeded", DeadlineExceeded),
        ("Failed", "deadline exceeded for task", DeadlineExceeded),
        ("Failed", "RBAC: forbidden to create pods", Forbidden),
        ("Failed", "rbac error occurred", Forbidden),
        ("Failed", "permission denied for resource", Forbidden),
        ("Failed", "exceeded quota for namespace", ResourceExhausted),
        ("Failed", "resource exhausted in cluster", ResourceExhausted),
        (
            "Failed",
            "ImagePullBackOff: image not found",
            ImagePullBackOff,
        ),
        (
            "Failed",
            "failed to image pull from registry",
            ImagePullBackOff,
        ),
        ("Failed", "invalid parameter value", ConfigurationError),
        (
            "Failed",
            "configuration error in pipeline",
            ConfigurationError,
        ),
        ("TaskFailed", "something broke", TaskFailed),
        ("Failed", "Task restart-pod failed", TaskFailed),
        ("Failed", "Some unknown error occurred", Unknown),
        ("Failed", "", Unknown),
        ("TaskRunFailed", "Task exited with code 1", Unknown),
    ];
    for (reason, message, want) in cases {
        assert_eq!(
            classify_tekton_message(reason, message),
            want,
            "({reason:?}, {message:?})"
        );
    }
}

#[test]
fn summary_with_full_details() {
    let mut d = details(OOMKilled, true);
    d.message = "Container exceeded memory limit".into();
    d.execution_time_before_failure = Some(Duration::from_secs(150));
    let s = natural_language_summary("restart-pod", "default/deployment/my-app", Some(&d));
    let want = "Workflow 'restart-pod' failed on target 'default/deployment/my-app'.\n\
                Reason: OOMKilled\n\
                Error: Container exceeded memory limit\n\
                Failed after: 2m30s\n\
                Target: the workflow had started, so the target may have been partially changed; verify its state before retrying.\n\
                Recommendation: The workflow ran out of memory. Consider increasing task resource limits.";
    assert_eq!(s, want);
}

#[test]
fn summary_without_details() {
    let s = natural_language_summary("restart-deployment", "payment/deployment/payment-api", None);
    assert!(s.starts_with(
        "Workflow 'restart-deployment' failed on target 'payment/deployment/payment-api'."
    ));
    assert!(s.contains("Reason: Unknown - No failure details available."));
    assert!(s.contains("Recommendation: Check the execution logs"));
}

#[test]
fn summary_recommendation_per_reason() {
    let cases = [
        (OOMKilled, "out of memory"),
        (Forbidden, "RBAC permissions"),
        (DeadlineExceeded, "exceeded its timeout"),
        (ImagePullBackOff, "Unable to pull"),
        (ConfigurationError, "invalid"),
        (ResourceExhausted, "quota"),
        (Cancelled, "cancelled"),
        (AgentLost, "agent stopped reporting"),
        (UnsupportedEngine, "No executor agent"),
    ];
    for (reason, needle) in cases {
        let s = natural_language_summary("wf", "ns/Kind/x", Some(&details(reason, false)));
        let rec = s
            .lines()
            .find(|l| l.starts_with("Recommendation: "))
            .unwrap_or_default();
        assert!(rec.contains(needle), "{reason}: {rec:?}");
    }
    for reason in [TaskFailed, Unknown] {
        let s = natural_language_summary("wf", "ns/Kind/x", Some(&details(reason, true)));
        assert!(!s.contains("Recommendation"), "{reason}: {s}");
    }
}

#[test]
fn summary_says_whether_the_target_changed() {
    let pre = natural_language_summary("wf", "t", Some(&details(ImagePullBackOff, false)));
    assert!(pre.contains("the target was not changed"), "{pre}");
    assert!(!pre.contains("Failed after"));
    let post = natural_language_summary("wf", "t", Some(&details(Cancelled, true)));
    assert!(post.contains("may have been partially changed"), "{post}");
    assert!(post.contains("cancelled while running"), "{post}");
}

#[test]
fn new_classifies_and_with_summary_fills_the_summary() {
    let at = Timestamp::UNIX_EPOCH;
    let d = FailureDetails::new(ImagePullBackOff, "pull failed", true, at)
        .with_summary("wf", "ns/Kind/x");
    assert!(
        !d.was_execution_failure,
        "nothing ran even though the pod started"
    );
    assert!(d.retry_safe());
    assert!(
        d.natural_language_summary.contains("Error: pull failed"),
        "{}",
        d.natural_language_summary
    );
    let d = FailureDetails::new(Forbidden, "denied", true, at);
    assert!(d.was_execution_failure);
    assert!(!d.retry_safe());
    assert!(d.natural_language_summary.is_empty());
}

#[test]
fn job_classifier_table() {
    let base = JobFailureSignals::default();
    let cases = [
        (
            "oom",
            JobFailureSignals {
                terminated_reason: Some("OOMKilled"),
                exit_code: Some(137),
                condition_reason: "BackoffLimitExceeded",
                ..base
            },
            OOMKilled,
        ),
        (
            "image",
            JobFailureSignals {
                waiting_reason: Some("ErrImagePull"),
                condition_reason: "DeadlineExceeded",
                ..base
            },
            ImagePullBackOff,
        ),
        (
            "backoff image",
            JobFailureSignals {
                waiting_reason: Some("ImagePullBackOff"),
                ..base
            },
            ImagePullBackOff,
        ),
        (
            "bad secret ref",
            JobFailureSignals {
                waiting_reason: Some("CreateContainerConfigError"),
                ..base
            },
            ConfigurationError,
        ),
        (
            "deadline",
            JobFailureSignals {
                condition_reason: "DeadlineExceeded",
                terminated_reason: Some("Error"),
                exit_code: Some(143),
                ..base
            },
            DeadlineExceeded,
        ),
        (
            "exit 1",
            JobFailureSignals {
                condition_reason: "BackoffLimitExceeded",
                terminated_reason: Some("Error"),
                exit_code: Some(1),
                ..base
            },
            TaskFailed,
        ),
        (
            "terminated, no code",
            JobFailureSignals {
                condition_reason: "BackoffLimitExceeded",
                terminated_reason: Some("Error"),
                ..base
            },
            TaskFailed,
        ),
        (
            "quota at pod creation",
            JobFailureSignals {
                condition_reason: "FailedCreate",
                message: "pods is forbidden: exceeded quota",
                ..base
            },
            Forbidden,
        ),
        (
            "quota only",
            JobFailureSignals {
                condition_reason: "FailedCreate",
                message: "exceeded quota: compute",
                ..base
            },
            ResourceExhausted,
        ),
        (
            "nothing known",
            JobFailureSignals {
                condition_reason: "BackoffLimitExceeded",
                message: "Job has reached the specified backoff limit",
                ..base
            },
            Unknown,
        ),
        (
            "exit 0 is not a failure signal",
            JobFailureSignals {
                exit_code: Some(0),
                ..base
            },
            Unknown,
        ),
    ];
    for (name, signals, want) in cases {
        assert_eq!(classify_job_failure(&signals), want, "{name}");
    }
}
