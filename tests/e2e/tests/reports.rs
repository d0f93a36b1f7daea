//! Only the assignee reports. A second agent session, authenticated with the job-agent
//! token of the same cluster and assigned nothing, reports SUCCEEDED, FAILED, a
//! cancellation and a missing Job for a Running execution assigned to the job-agent,
//! under the current fencing token and under one from the future: every report is
//! refused (counted by reason, logged with the reporter's identity), the execution keeps
//! running with its Job, and the assigned agent still ends it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::agent::{hello, report};
use wfe_e2e::clients::{failure, phase_of};
use wfe_e2e::stack::agent_id;
use wfe_e2e::v1::{self, FailureReason, Phase};
use wfe_e2e::{Component, Req, Stack, StackOptions, eventually};
use wfe_proto::agent::PrimitivePhase;

/// The value of `workflowexecution_api_status_reports_refused_total{reason="…"}`.
fn refused(metrics: &str, reason: &str) -> f64 {
    let series =
        format!("workflowexecution_api_status_reports_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_cannot_end_another_sessions_execution() {
    let stack = Stack::start(StackOptions::default().counts(1, 1, 0))
        .await
        .expect("stack");
    let exec = stack
        .run_to(
            &Req::job("default/Deployment/web").outcome("hang"),
            Phase::Running,
        )
        .await
        .expect("Running");
    let assignment = exec.status.as_ref().unwrap().assignment.clone().unwrap();
    assert_eq!(assignment.agent_id, agent_id(Component::JobAgent(0)));
    let token = assignment.fencing_token;

    // Same token file binding (local cluster, job), no capacity: it is assigned nothing.
    let rogue = stack
        .agent_session(0, "e2e-job-token", hello("rogue-0", "job", 0))
        .await
        .expect("a second session");
    let failed = |reason: FailureReason| {
        let mut r = report(&exec, token, PrimitivePhase::Failed);
        r.failure = Some(v1::FailureDetails {
            reason: reason as i32,
            message: "from the second session".into(),
            ..Default::default()
        });
        r
    };
    let reports = [
        report(&exec, token, PrimitivePhase::Succeeded),
        failed(FailureReason::TaskFailed),
        failed(FailureReason::Cancelled),
        report(&exec, token, PrimitivePhase::Missing),
        report(&exec, token + 1, PrimitivePhase::Succeeded),
    ];
    let sent = reports.len() as f64;
    for r in reports {
        rogue.report(r).await.expect("report sent");
    }
    eventually(Duration::from_secs(20), "every report refused", || {
        let stack = &stack;
        async move {
            let n = refused(&stack.metrics(0).await?, "not_assignee");
            anyhow::ensure!(n >= sent, "{n} of {sent} refused");
            Ok(Some(()))
        }
    })
    .await
    .expect("refusals counted");

    let e = stack.get(&exec.name).await.expect("get");
    assert_eq!(phase_of(&e), Phase::Running, "{:?}", e.status);
    let jobs = stack
        .kubectl(&[
            "get",
            "jobs",
            "-A",
            "-l",
            &format!("kubernaut.ai/workflow-execution-uid={}", exec.uid),
            "-o",
            "name",
        ])
        .await
        .expect("kubectl");
    assert_eq!(jobs.lines().count(), 1, "its Job still runs: {jobs}");
    let log = stack.log(Component::Api(0));
    let line = log
        .lines()
        .find(|l| l.contains("status report refused") && l.contains("rogue-0"))
        .unwrap_or_else(|| panic!("a refusal naming the reporter in the API log:\n{log}"));
    for part in [rogue.session_id.as_str(), "engine=job", "not_assignee"] {
        assert!(line.contains(part), "{part} in {line}");
    }

    // The assignee's reports still count: cancelled, it stops the Job and says so.
    let mut c = stack.grpc_client().await.expect("client");
    c.cancel_workflow_execution(v1::CancelWorkflowExecutionRequest {
        name: exec.name.clone(),
        namespace: String::new(),
        reason: "done testing".into(),
    })
    .await
    .expect("cancel");
    let e = stack
        .wait_phase(&exec.name, Phase::Failed)
        .await
        .expect("Failed");
    assert_eq!(failure(&e).unwrap().reason(), FailureReason::Cancelled);
}
