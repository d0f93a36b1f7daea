//! Fewer status writes: a report that changes no phase (the primitive was created) waits for
//! the execution's next write, or is written alone when the coalescing window ends, and so
//! does the started event's AuditRecorded; a terminal write lists its own events (behind an
//! intent).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent;
use common::*;
use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use wfe_k8s::WorkflowExecution;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1;

fn has(e: &WorkflowExecution, condition: &str) -> bool {
    e.status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == condition))
}

fn phase_of(e: &WorkflowExecution) -> String {
    e.status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_without_a_phase_change_ride_along_with_the_next_write() {
    let env = Env::new().await;
    let mut config = env.config();
    config.status_coalesce_window = Duration::from_secs(2);
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let ag = agent::connect(&api, "job-local", agent::hello("a1", "", "job", vec![]))
        .await
        .unwrap();
    let mut ag = ag;
    // Every stored version of every execution, as a watcher sees them.
    let wfes: Api<WorkflowExecution> = Api::namespaced(env.sandbox.kube_client().unwrap(), NS);
    let versions = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<WorkflowExecution>::new()));
    let recorder = {
        let versions = versions.clone();
        tokio::spawn(async move {
            let mut s = std::pin::pin!(watcher(wfes, Default::default()).applied_objects());
            while let Some(Ok(o)) = s.next().await {
                versions.lock().push(o);
            }
        })
    };

    let quick = start_execution(&mut c, "default/Deployment/quick", "wf-1").await;
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Pending))
        .await;
    ag.report(agent::report(&assign, PrimitivePhase::Running))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &quick, v1::Phase::Completed).await;
    wait_audit_recorded(
        &c,
        &quick,
        &[
            "workflowexecution.workflow.started",
            "workflowexecution.workflow.completed",
        ],
    )
    .await;

    let slow = start_execution(&mut c, "default/Deployment/slow", "wf-1").await;
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Pending))
        .await;
    let e = eventually(10, "ExecutionCreated written alone", || {
        let mut c = c.clone();
        let slow = slow.clone();
        async move {
            let e = get(&mut c, &slow).await;
            condition(&e, "ExecutionCreated").is_some().then_some(e)
        }
    })
    .await;
    assert_eq!(phase(&e), v1::Phase::Pending);
    recorder.abort();

    let versions = versions.lock().clone();
    let of = |name: &str| -> Vec<WorkflowExecution> {
        versions
            .iter()
            .filter(|v| v.metadata.name.as_deref() == Some(name))
            .cloned()
            .collect()
    };
    let quick_versions = of(&quick);
    let first_created = quick_versions
        .iter()
        .find(|v| has(v, "ExecutionCreated"))
        .expect("ExecutionCreated stored");
    assert_eq!(
        phase_of(first_created),
        "Running",
        "the created primitive was written with Running, not on its own"
    );
    let audit_message = |v: &WorkflowExecution| {
        v.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "AuditRecorded"))
            .map(|c| c.message.clone())
    };
    let first_audit = quick_versions
        .iter()
        .find(|v| has(v, "AuditRecorded"))
        .expect("AuditRecorded stored");
    assert_eq!(
        phase_of(first_audit),
        "Completed",
        "the started event rode along with the Completed write"
    );
    assert!(
        audit_message(first_audit)
            .unwrap()
            .contains("workflow.started")
    );
    let completed = quick_versions
        .iter()
        .find(|v| phase_of(v) == "Completed")
        .unwrap();
    assert!(
        audit_message(completed)
            .unwrap()
            .contains("workflow.completed"),
        "listed by the Completed write"
    );
    // created, Pending, Running, Completed: no more.
    assert!(
        quick_versions.len() <= 4,
        "{} stored versions: {:#?}",
        quick_versions.len(),
        quick_versions
            .iter()
            .map(|v| (
                phase_of(v),
                v.status.as_ref().map(|s| s
                    .conditions
                    .iter()
                    .map(|c| c.type_.clone())
                    .collect::<Vec<_>>())
            ))
            .collect::<Vec<_>>()
    );
    api.shutdown().await;
}
