//! Release through the real processes: once a Completed execution's audit is recorded and
//! `--primitive-retention` passed, its Job or PipelineRun is deleted by its agent, and the
//! WorkflowExecution is not written for it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use wfe_e2e::clients::{PHASE_TIMEOUT, condition};
use wfe_e2e::v1::Phase;
use wfe_e2e::{Req, Stack, StackOptions};

async fn released(req: Req, kind: &str) {
    let opts = StackOptions::default().api_flag("--primitive-retention", "1s");
    let stack = Stack::start(opts).await.expect("stack");
    let exec = stack.run(&req).await.expect("ExecuteWorkflow");
    let done = stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed");
    let prim = done
        .status
        .as_ref()
        .and_then(|s| s.execution_ref.clone())
        .expect("executionRef");
    // The release waits for the completed event's AuditRecorded; take the resource as it
    // is once that is written.
    let name = exec.name.clone();
    let audited = wfe_e2e::eventually(PHASE_TIMEOUT, "AuditRecorded", || {
        let (stack, name) = (&stack, name.clone());
        async move {
            let e = stack.get(&name).await?;
            let ok =
                condition(&e, "AuditRecorded").is_some_and(|c| c.message.contains("completed"));
            Ok(ok.then_some(e))
        }
    })
    .await
    .expect("audit recorded");

    let kind = kind.to_lowercase();
    wfe_e2e::eventually(PHASE_TIMEOUT, "primitive deleted", || {
        let (stack, kind, prim) = (&stack, kind.clone(), prim.clone());
        async move {
            let out = stack
                .kubectl(&[
                    "get",
                    &kind,
                    "-n",
                    &prim.namespace,
                    "--ignore-not-found",
                    "-o",
                    "name",
                ])
                .await?;
            Ok(out.trim().is_empty().then_some(()))
        }
    })
    .await
    .expect("the agent deletes the primitive after the retention");

    let after = stack.get(&exec.name).await.expect("get");
    assert_eq!(
        after.resource_version, audited.resource_version,
        "releasing the primitive wrote the WorkflowExecution"
    );
    assert_eq!(wfe_e2e::clients::phase_of(&after), Phase::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_jobs_primitive_is_released_without_a_status_write() {
    released(Req::job("default/Deployment/rel-job"), "Job").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_pipelineruns_primitive_is_released_without_a_status_write() {
    released(Req::tekton("default/Deployment/rel-tekton"), "PipelineRun").await;
}
