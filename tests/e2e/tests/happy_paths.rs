//! Job and Tekton happy paths through the real processes: Pending → Running →
//! Completed with conditions, one audit event per transition, metrics counted, and
//! the primitive visible to kubectl.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use wfe_e2e::clients::{condition, phase_of};
use wfe_e2e::v1::{Disposition, Phase};
use wfe_e2e::{Req, Stack, StackOptions};

/// Runs one workflow on `engine` to completion and checks what a user sees.
async fn happy_path(req: Req, engine: &str, primitive_kind: &str) {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let res = stack.execute(&req).await.expect("ExecuteWorkflow");
    assert_eq!(res.disposition, Disposition::Created as i32);
    let exec = res.execution.expect("execution");
    assert_eq!(phase_of(&exec), Phase::Pending, "accepted as Pending");

    let running = stack
        .wait_phase(&exec.name, Phase::Running)
        .await
        .expect("Running");
    let st = running.status.as_ref().expect("status");
    assert!(st.start_time.is_some(), "startTime set when Running");
    let prim = st
        .execution_ref
        .as_ref()
        .expect("executionRef when Running");
    assert_eq!(prim.kind, primitive_kind);
    assert_eq!(
        condition(&running, "ExecutionRunning")
            .expect("cond")
            .status,
        "True"
    );
    assert_eq!(
        condition(&running, "Dispatched").expect("cond").status,
        "True"
    );

    let done = stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed");
    let st = done.status.as_ref().expect("status");
    assert!(st.completion_time.is_some() && st.duration.is_some());
    assert_eq!(
        condition(&done, "ExecutionComplete").expect("cond").status,
        "True"
    );
    assert_eq!(condition(&done, "Ready").expect("cond").reason, "Ready");
    assert_eq!(st.summary.as_ref().expect("summary").completed_tasks, 1);

    let name = exec.name.clone();
    let events = wfe_e2e::eventually(wfe_e2e::clients::PHASE_TIMEOUT, "audit events", || {
        let stack = &stack;
        let name = name.clone();
        async move {
            let mine: Vec<_> = stack
                .audit_events()?
                .into_iter()
                .filter(|e| e.to_string().contains(&name))
                .collect();
            Ok((mine.len() >= 2).then_some(mine))
        }
    })
    .await
    .expect("audit");
    let types: Vec<_> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "workflowexecution.workflow.started",
            "workflowexecution.workflow.completed"
        ],
        "one audit event per transition"
    );
    assert_eq!(events[1]["event_data"]["execution_engine"], engine);

    let m = stack.metrics(0).await.expect("metrics");
    let line = format!(
        "workflowexecution_api_executions_total{{engine=\"{engine}\",outcome=\"Completed\"}} 1"
    );
    assert!(m.contains(&line), "{line} missing from:\n{m}");

    // The primitive exists in the execution namespace, as kubectl sees it.
    let kind = primitive_kind.to_lowercase();
    let obj = stack
        .kubectl_json(&["get", &kind, "-n", &prim.namespace, &prim.name])
        .await
        .expect("kubectl get primitive");
    assert_eq!(obj["metadata"]["name"], prim.name.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_happy_path() {
    happy_path(Req::job("default/Deployment/web"), "job", "Job").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_happy_path() {
    happy_path(
        Req::tekton("default/Deployment/api"),
        "tekton",
        "PipelineRun",
    )
    .await;
}
