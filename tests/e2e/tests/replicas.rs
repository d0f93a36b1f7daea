//! Two workflow-api processes on one sandbox, agents split between them: work
//! submitted to either replica runs once, and a target is held across replicas.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use wfe_e2e::v1::{BlockReason, Disposition, Phase};
use wfe_e2e::{Req, Stack, StackOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_replicas_share_work_and_target_locks() {
    let stack = Stack::start(StackOptions::default().counts(2, 2, 1))
        .await
        .expect("stack");
    let mut clients = Vec::new();
    for i in 0..2 {
        let c = stack
            .grpc_client_of(i, wfe_e2e::stack::OPERATOR_TOKEN)
            .await
            .expect("client");
        clients.push(c);
    }
    let mut names = Vec::new();
    for i in 0..4 {
        let req = Req::job(&format!("default/Deployment/app-{i}")).duration("1s");
        let res = clients[i % 2]
            .execute_workflow(req.build())
            .await
            .expect("execute")
            .into_inner();
        assert_eq!(res.disposition, Disposition::Created as i32);
        names.push(res.execution.expect("execution").name);
    }
    // The same target through the other replica while the first holds it.
    let busy = Req::job("default/Deployment/app-0").remediation("rr-again");
    let res = clients[1]
        .execute_workflow(busy.build())
        .await
        .expect("execute")
        .into_inner();
    assert_eq!(res.disposition, Disposition::Skipped as i32, "{res:?}");
    let skip = res.skip_details.expect("skip details");
    assert_eq!(skip.reason(), BlockReason::ResourceBusy);
    assert_eq!(skip.conflicting_execution.expect("holder").name, names[0]);

    for n in &names {
        stack
            .wait_phase(n, Phase::Completed)
            .await
            .expect("Completed");
    }
    let jobs = stack
        .kubectl(&["get", "jobs", "-n", "kubernaut-workflows", "-o", "name"])
        .await
        .expect("kubectl");
    assert_eq!(jobs.lines().count(), 4, "one Job per execution:\n{jobs}");
    let completed = stack
        .audit_events()
        .expect("audit")
        .into_iter()
        .filter(|e| e["event_type"] == "workflowexecution.workflow.completed")
        .count();
    assert_eq!(completed, 4, "each completion audited once across replicas");
}

/// Fifty concurrent ExecuteWorkflow calls on one target, alternating between two
/// workflow-api processes: exactly one runs, the other 49 are Skipped with ResourceBusy
/// naming it, and one Job is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_on_one_target_across_two_api_processes() {
    let stack = Stack::start(StackOptions::default().counts(2, 1, 0))
        .await
        .expect("stack");
    let mut clients = Vec::new();
    for i in 0..2 {
        let c = stack
            .grpc_client_of(i, wfe_e2e::stack::OPERATOR_TOKEN)
            .await
            .expect("client");
        clients.push(c);
    }
    let mut calls = Vec::new();
    for i in 0..50 {
        let mut c = clients[i % 2].clone();
        let req = Req::job("default/Deployment/contended")
            .remediation(&format!("rr-contended-{i}"))
            .duration("1s");
        calls.push(tokio::spawn(async move {
            c.execute_workflow(req.build())
                .await
                .expect("execute")
                .into_inner()
        }));
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("call"));
    }
    let created: Vec<_> = results
        .iter()
        .filter(|r| r.disposition == Disposition::Created as i32)
        .map(|r| r.execution.as_ref().expect("execution").name.clone())
        .collect();
    assert_eq!(created.len(), 1, "exactly one runs: {created:?}");
    for r in results
        .iter()
        .filter(|r| r.disposition != Disposition::Created as i32)
    {
        assert_eq!(r.disposition, Disposition::Skipped as i32, "{r:?}");
        let skip = r.skip_details.as_ref().expect("skip details");
        assert_eq!(skip.reason(), BlockReason::ResourceBusy);
        let holder = skip.conflicting_execution.as_ref().expect("holder");
        assert_eq!(holder.name, created[0], "{}", skip.message);
    }
    stack
        .wait_phase(&created[0], Phase::Completed)
        .await
        .expect("Completed");
    let jobs = stack
        .kubectl(&["get", "jobs", "-n", "kubernaut-workflows", "-o", "name"])
        .await
        .expect("kubectl");
    assert_eq!(jobs.lines().count(), 1, "one Job:\n{jobs}");
}
