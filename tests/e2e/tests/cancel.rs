//! Cancellation of a Pending execution (fails at once) and of a Running one (the
//! agent stops the Job or the PipelineRun first).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::clients::{condition, failure, phase_of};
use wfe_e2e::v1::{self, FailureReason, Phase};
use wfe_e2e::{Req, Stack, StackOptions, eventually};

fn cancel(name: &str) -> v1::CancelWorkflowExecutionRequest {
    v1::CancelWorkflowExecutionRequest {
        name: name.to_owned(),
        namespace: String::new(),
        reason: "operator changed their mind".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_pending_execution_fails_it_at_once() {
    // No job-agent: the execution stays Pending and says why.
    let stack = Stack::start(StackOptions::default().counts(1, 0, 1))
        .await
        .expect("stack");
    let exec = stack
        .run(&Req::job("default/Deployment/web"))
        .await
        .expect("execute");
    let waiting = eventually(Duration::from_secs(15), "NoAgentAvailable", || {
        let stack = &stack;
        let name = exec.name.clone();
        async move {
            let e = stack.get(&name).await?;
            let c = condition(&e, "Dispatched").cloned();
            Ok(c.filter(|c| c.reason == "NoAgentAvailable").map(|c| (e, c)))
        }
    })
    .await
    .expect("Dispatched=False/NoAgentAvailable");
    assert_eq!(phase_of(&waiting.0), Phase::Pending);
    assert_eq!(waiting.1.status, "False");
    assert!(
        waiting.1.message.contains("job"),
        "names the engine: {}",
        waiting.1.message
    );

    let mut c = stack.grpc_client().await.expect("client");
    let res = c
        .cancel_workflow_execution(cancel(&exec.name))
        .await
        .expect("cancel");
    let e = res.into_inner().execution.expect("execution");
    assert_eq!(
        phase_of(&e),
        Phase::Failed,
        "a Pending execution fails at once"
    );
    let f = failure(&e).expect("failure");
    assert_eq!(f.reason(), FailureReason::Cancelled);
    assert!(!f.was_execution_failure, "it never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_execution_stops_its_job() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let exec = stack
        .run(&Req::job("default/Deployment/web").outcome("hang"))
        .await
        .expect("execute");
    let running = stack
        .wait_phase(&exec.name, Phase::Running)
        .await
        .expect("Running");
    let job = running
        .status
        .and_then(|s| s.execution_ref)
        .expect("executionRef");

    let mut c = stack.grpc_client().await.expect("client");
    c.cancel_workflow_execution(cancel(&exec.name))
        .await
        .expect("cancel");
    let failed = stack
        .wait_phase(&exec.name, Phase::Failed)
        .await
        .expect("Failed");
    let f = failure(&failed).expect("failure");
    assert_eq!(f.reason(), FailureReason::Cancelled, "{f:?}");
    assert!(f.was_execution_failure, "it had started");
    let name = format!("job/{}", job.name);
    eventually(Duration::from_secs(20), "the Job deleted", || {
        let stack = &stack;
        let (ns, name) = (job.namespace.clone(), name.clone());
        async move {
            let out = stack
                .kubectl(&["get", &name, "-n", &ns, "--ignore-not-found"])
                .await?;
            Ok(out.trim().is_empty().then_some(()))
        }
    })
    .await
    .expect("cancel deletes the Job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_tekton_execution_cancels_its_pipelinerun() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let exec = stack
        .run(&Req::tekton("default/Deployment/api").outcome("hang"))
        .await
        .expect("execute");
    let running = stack
        .wait_phase(&exec.name, Phase::Running)
        .await
        .expect("Running");
    let run = running
        .status
        .and_then(|s| s.execution_ref)
        .expect("executionRef");
    assert_eq!(run.kind, "PipelineRun");

    let mut c = stack.grpc_client().await.expect("client");
    c.cancel_workflow_execution(cancel(&exec.name))
        .await
        .expect("cancel");
    let failed = stack
        .wait_phase(&exec.name, Phase::Failed)
        .await
        .expect("Failed");
    let f = failure(&failed).expect("failure");
    assert_eq!(f.reason(), FailureReason::Cancelled, "{f:?}");
    assert!(f.was_execution_failure, "it had started");
    // Tekton's way to stop a run: spec.status Cancelled, the run kept for its record.
    let pr = stack
        .kubectl_json(&["get", "pipelinerun", "-n", &run.namespace, &run.name])
        .await
        .expect("kubectl get pipelinerun");
    assert_eq!(pr["spec"]["status"], "Cancelled", "{pr}");
}
