//! Fifty concurrent ExecuteWorkflow calls on one target: exactly one Pending, the rest
//! Skipped/ResourceBusy naming the holder — with one and with two API instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use wfe_proto::v1::{self, BlockReason, Disposition};

async fn storm(clients: Vec<Client>, target: &str) -> Vec<v1::ExecuteWorkflowResponse> {
    let mut handles = Vec::new();
    for i in 0..50 {
        let mut c = clients[i % clients.len()].clone();
        let target = target.to_owned();
        handles.push(tokio::spawn(async move {
            c.execute_workflow(execute_req(&target, "wf-1", ""))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn check(results: &[v1::ExecuteWorkflowResponse]) {
    let created: Vec<_> = results
        .iter()
        .filter(|r| r.disposition == Disposition::Created as i32)
        .collect();
    assert_eq!(created.len(), 1, "exactly one execution starts");
    let holder = created[0].execution.as_ref().unwrap().name.clone();
    assert_eq!(
        phase(created[0].execution.as_ref().unwrap()),
        v1::Phase::Pending
    );
    for r in results
        .iter()
        .filter(|r| r.disposition != Disposition::Created as i32)
    {
        assert_eq!(r.disposition, Disposition::Skipped as i32);
        let skip = r.skip_details.as_ref().unwrap();
        assert_eq!(skip.reason, BlockReason::ResourceBusy as i32);
        let named = &skip.conflicting_execution.as_ref().unwrap().name;
        if *named != holder {
            let other = results
                .iter()
                .find(|r| r.execution.as_ref().unwrap().name == *named);
            panic!(
                "{} names {named}, which ended as {:?}; the holder is {holder}",
                skip.message,
                other.map(|o| o.execution.as_ref().unwrap().status.clone())
            );
        }
        let e = r.execution.as_ref().unwrap();
        assert_eq!(phase(e), v1::Phase::Skipped);
        let locked = condition(e, "ResourceLocked").unwrap();
        assert_eq!(
            (locked.status.as_str(), locked.reason.as_str()),
            ("True", "TargetResourceBusy")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_one_instance() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let results = storm(vec![c.clone()], "default/Deployment/hot").await;
    check(&results);
    let m = metrics(&api).await;
    assert!(
        m.contains("workflowexecution_api_skips_total{reason=\"ResourceBusy\"} 49"),
        "{m}"
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_two_instances() {
    let env = Env::new().await;
    let a = env.start(env.config()).await;
    let b = env.start(env.config()).await;
    let ca = client(&a, CALLER_TOKEN).await;
    let cb = client(&b, CALLER_TOKEN).await;
    let results = storm(vec![ca, cb], "default/Deployment/hotter").await;
    check(&results);
    a.shutdown().await;
    b.shutdown().await;
}
