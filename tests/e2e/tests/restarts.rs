//! Every component SIGKILLed and restarted mid-flight: the execution still
//! completes, exactly once, with exactly one primitive.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use wfe_e2e::v1::Phase;
use wfe_e2e::{Component, Req, Stack, StackOptions};

/// Primitives kubectl finds for an execution, by the label that ties them to it.
async fn primitives(stack: &Stack, kind: &str, uid: &str) -> Vec<String> {
    let selector = format!("kubernaut.ai/workflow-execution-uid={uid}");
    let out = stack
        .kubectl(&["get", kind, "-A", "-l", &selector, "-o", "name"])
        .await
        .expect("kubectl get");
    out.lines().map(str::to_owned).collect()
}

/// Runs `req`, restarts `order` one by one while it runs, and checks the outcome.
async fn survives(req: Req, order: &[Component], kind: &str) {
    let mut stack = Stack::start(StackOptions::default()).await.expect("stack");
    let exec = stack.run(&req).await.expect("execute");
    stack
        .wait_phase(&exec.name, Phase::Running)
        .await
        .expect("Running");
    for &c in order {
        stack.kill(c).expect("SIGKILL");
        stack.restart(c).await.expect("restart");
    }
    stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed");
    assert_eq!(
        primitives(&stack, kind, &exec.uid).await.len(),
        1,
        "exactly one {kind} was ever created"
    );
    let completed = stack
        .audit_events()
        .expect("audit")
        .into_iter()
        .filter(|e| {
            e["event_type"] == "workflowexecution.workflow.completed"
                && e.to_string().contains(&exec.name)
        })
        .count();
    assert_eq!(completed, 1, "completed exactly once");
    // A replayed intent may write a started line again, but never a second event.
    let mut started: Vec<String> = stack
        .audit_events()
        .expect("audit")
        .into_iter()
        .filter(|e| {
            e["event_type"] == "workflowexecution.workflow.started"
                && e.to_string().contains(&exec.name)
        })
        .map(|e| e["event_id"].to_string())
        .collect();
    started.sort();
    started.dedup();
    assert_eq!(started.len(), 1, "started generated once: {started:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_survives_a_restart_of_every_component() {
    let order = [
        Component::Api(0),
        Component::JobAgent(0),
        Component::Sandbox,
    ];
    survives(
        Req::job("default/Deployment/web").duration("6s"),
        &order,
        "jobs",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_survives_a_restart_of_every_component() {
    let order = [
        Component::Sandbox,
        Component::TektonAgent(0),
        Component::Api(0),
    ];
    survives(
        Req::tekton("default/Deployment/web").duration("6s"),
        &order,
        "pipelineruns",
    )
    .await;
}
