//! The natural-language failure summary a person reads in an alert (upstream §3.9 layout).

use super::{FailureDetails, FailureReason};
use crate::duration::format_go;

/// Builds the summary, one statement per line:
///
/// ```text
/// Workflow '<workflow_id>' failed on target '<target>'.
/// Reason: <reason>
/// Error: <message>                 (if any)
/// Failed after: <2m30s>            (if it started)
/// Target: <may have been changed / was not changed>
/// Recommendation: <per reason>     (if there is one)
/// ```
///
/// `None` details give upstream's "No failure details available" form.
pub fn natural_language_summary(
    workflow_id: &str,
    target: &str,
    details: Option<&FailureDetails>,
) -> String {
    let mut lines = vec![format!(
        "Workflow '{workflow_id}' failed on target '{target}'."
    )];
    let Some(d) = details else {
        lines.push("Reason: Unknown - No failure details available.".to_owned());
        lines.push(
            "Recommendation: Check the execution logs (Job or PipelineRun) for detailed failure information."
                .to_owned(),
        );
        return lines.join("\n");
    };
    lines.push(format!("Reason: {}", d.reason));
    if !d.message.is_empty() {
        lines.push(format!("Error: {}", d.message));
    }
    if let Some(elapsed) = d.execution_time_before_failure {
        lines.push(format!("Failed after: {}", format_go(elapsed)));
    }
    lines.push(target_effect(d.was_execution_failure).to_owned());
    if let Some(advice) = recommendation(d.reason, d.was_execution_failure) {
        lines.push(format!("Recommendation: {advice}"));
    }
    lines.join("\n")
}

/// Says whether someone must look at the target before anything else runs on it.
fn target_effect(was_execution_failure: bool) -> &'static str {
    if was_execution_failure {
        "Target: the workflow had started, so the target may have been partially changed; \
         verify its state before retrying."
    } else {
        "Target: the workflow never started, so the target was not changed."
    }
}

/// One actionable sentence per reason a person can act on.
fn recommendation(reason: FailureReason, started: bool) -> Option<&'static str> {
    use FailureReason::*;
    Some(match reason {
        OOMKilled => "The workflow ran out of memory. Consider increasing task resource limits.",
        Forbidden => {
            "The service account lacks required RBAC permissions. Grant appropriate permissions or use an alternative workflow."
        }
        DeadlineExceeded => {
            "The workflow exceeded its timeout. Consider increasing the timeout or investigating why the workflow is slow."
        }
        ImagePullBackOff => {
            "Unable to pull the workflow container image. Verify the image reference, its digest and the registry credentials."
        }
        ConfigurationError => {
            "The execution request or workflow definition is invalid. Fix the workflow parameters or configuration and submit a new request."
        }
        ResourceExhausted => {
            "The execution namespace ran out of quota or the cluster lacks capacity. Free resources or raise the quota, then retry."
        }
        Cancelled if started => {
            "The execution was cancelled while running. Inspect the target, then clear the block before running another workflow on it."
        }
        Cancelled => "The execution was cancelled before it started. It can be resubmitted.",
        AgentLost => {
            "The executor agent stopped reporting. Check the agent and whether the Job or PipelineRun still exists before retrying."
        }
        UnsupportedEngine => {
            "No executor agent runs the requested engine. Start an agent for it or choose the other engine."
        }
        TaskFailed | Unknown => return None,
    })
}
