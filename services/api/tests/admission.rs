//! Every admission rule through ExecuteWorkflow and PreflightWorkflow, and ClearBlock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{self, FakeAgent};
use common::*;
use tonic::Code;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1::{self, BlockReason, Disposition};

const REASON: &str = "the target was checked by the on-call engineer and is healthy again now";

async fn preflight(c: &mut Client, target: &str, wf: &str) -> v1::PreflightWorkflowResponse {
    let spec = execute_req(target, wf, "").spec;
    c.preflight_workflow(v1::PreflightWorkflowRequest {
        namespace: String::new(),
        spec,
    })
    .await
    .unwrap()
    .into_inner()
}

/// Runs one execution to an outcome through the fake agent.
async fn run(
    c: &mut Client,
    ag: &mut FakeAgent,
    target: &str,
    wf: &str,
    outcome: Option<(v1::FailureReason, bool)>,
) -> String {
    let res = c
        .execute_workflow(execute_req(target, wf, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        res.disposition,
        Disposition::Created as i32,
        "{:?}",
        res.skip_details
    );
    let name = res.execution.unwrap().name;
    let a = ag.next_assign().await;
    ag.ack(&a.assignment_id).await;
    match outcome {
        None => {
            ag.report(agent::report(&a, PrimitivePhase::Running)).await;
            ag.report(agent::report(&a, PrimitivePhase::Succeeded))
                .await;
            wait_phase(c, &name, v1::Phase::Completed).await;
        }
        Some((reason, started)) => {
            ag.report(agent::failed(&a, reason, started)).await;
            wait_phase(c, &name, v1::Phase::Failed).await;
        }
    }
    name
}

fn skipped_for(res: &v1::ExecuteWorkflowResponse, reason: BlockReason, by: &str) {
    assert_eq!(res.disposition, Disposition::Skipped as i32);
    let skip = res.skip_details.as_ref().unwrap();
    assert_eq!(skip.reason, reason as i32, "{}", skip.message);
    assert_eq!(skip.conflicting_execution.as_ref().unwrap().name, by);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recently_remediated_and_previous_execution_failed_with_clear_block() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::connect(&api, "job-local", agent::hello("job-1", "", "job", vec![]))
        .await
        .unwrap();

    // ResourceBusy through Preflight.
    let t0 = "default/Deployment/busy";
    let busy = c
        .execute_workflow(execute_req(t0, "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let p = preflight(&mut c, t0, "wf-1").await;
    assert!(!p.would_start && p.agent_available);
    assert_eq!(p.blockers[0].reason, BlockReason::ResourceBusy as i32);
    assert_eq!(p.blockers[0].execution.as_ref().unwrap().name, busy.name);
    assert!(
        p.earliest_start.is_none(),
        "busy clears when the holder finishes, not by time"
    );
    let a = ag.next_assign().await;
    ag.report(agent::report(&a, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &busy.name, v1::Phase::Completed).await;

    // RecentlyRemediated: the same workflow just completed; another workflow may run.
    let t = "default/Deployment/api";
    let done = run(&mut c, &mut ag, t, "wf-1", None).await;
    let p = preflight(&mut c, t, "wf-1").await;
    assert!(!p.would_start);
    assert_eq!(p.blockers[0].reason, BlockReason::RecentlyRemediated as i32);
    assert!(p.earliest_start.is_some());
    let res = c
        .execute_workflow(execute_req(t, "wf-1", ""))
        .await
        .unwrap()
        .into_inner();
    skipped_for(&res, BlockReason::RecentlyRemediated, &done);
    assert!(res.skip_details.unwrap().next_allowed_execution.is_some());

    // PreviousExecutionFailed: a failure after start blocks every workflow until cleared.
    let failed = run(
        &mut c,
        &mut ag,
        t,
        "wf-2",
        Some((v1::FailureReason::TaskFailed, true)),
    )
    .await;
    let p = preflight(&mut c, t, "wf-3").await;
    assert_eq!(
        p.blockers[0].reason,
        BlockReason::PreviousExecutionFailed as i32
    );
    assert!(p.earliest_start.is_none(), "only ClearBlock lifts it");
    let res = c
        .execute_workflow(execute_req(t, "wf-3", ""))
        .await
        .unwrap()
        .into_inner();
    skipped_for(&res, BlockReason::PreviousExecutionFailed, &failed);

    let short = v1::ClearBlockRequest {
        target_resource: t.into(),
        reason: "fixed".into(),
        ..Default::default()
    };
    assert_eq!(
        c.clear_block(short).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let ok = v1::ClearBlockRequest {
        target_resource: t.into(),
        reason: REASON.into(),
        ..Default::default()
    };
    let cleared = c.clear_block(ok.clone()).await.unwrap().into_inner();
    let bc = cleared
        .execution
        .as_ref()
        .unwrap()
        .status
        .as_ref()
        .unwrap()
        .block_clearance
        .clone()
        .unwrap();
    assert_eq!(
        (bc.cleared_by.as_str(), bc.clear_reason.as_str()),
        ("alice", REASON)
    );
    assert!(
        cleared.remaining_blockers.is_empty(),
        "{:?}",
        cleared.remaining_blockers
    );
    assert!(preflight(&mut c, t, "wf-3").await.would_start);
    // Nothing left to clear.
    assert_eq!(
        c.clear_block(ok).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    let events = env.audit_events();
    let cleared_events: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "workflowexecution.block.cleared")
        .collect();
    assert_eq!(cleared_events.len(), 1, "{events:#?}");
    assert_eq!(cleared_events[0]["actor_id"], "alice");
    let res = c
        .execute_workflow(execute_req(t, "wf-3", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.disposition, Disposition::Created as i32);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_backoff_then_exhausted_retries() {
    let env = Env::new().await;
    let mut config = env.config();
    config.backoff_base = Duration::from_secs(2);
    config.backoff_max = Duration::from_secs(4);
    config.max_consecutive_failures = 2;
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::connect(&api, "job-local", agent::hello("job-1", "", "job", vec![]))
        .await
        .unwrap();
    let t = "default/Deployment/flaky";
    let pre = Some((v1::FailureReason::ConfigurationError, false));

    let first = run(&mut c, &mut ag, t, "wf-1", pre).await;
    let res = c
        .execute_workflow(execute_req(t, "wf-1", ""))
        .await
        .unwrap()
        .into_inner();
    skipped_for(&res, BlockReason::ExponentialBackoff, &first);
    let p = preflight(&mut c, t, "wf-1").await;
    assert_eq!(p.blockers[0].reason, BlockReason::ExponentialBackoff as i32);
    assert!(p.earliest_start.is_some());
    // The backoff passes by itself.
    eventually(15, "the backoff to pass", || {
        let mut c = c.clone();
        async move { preflight(&mut c, t, "wf-1").await.would_start.then_some(()) }
    })
    .await;
    let second = run(&mut c, &mut ag, t, "wf-1", pre).await;
    let res = c
        .execute_workflow(execute_req(t, "wf-1", ""))
        .await
        .unwrap()
        .into_inner();
    skipped_for(&res, BlockReason::ExhaustedRetries, &second);
    let ok = v1::ClearBlockRequest {
        target_resource: t.into(),
        reason: REASON.into(),
        ..Default::default()
    };
    c.clear_block(ok).await.unwrap();
    assert!(preflight(&mut c, t, "wf-1").await.would_start);
    api.shutdown().await;
}

/// The same `namespace/Kind/name` in another cluster is another resource: an execution
/// there does not hold the local target (nor the local one it), while a second one in the
/// same cluster is ResourceBusy; Preflight tells them apart the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_in_another_cluster_is_another_target() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let t = "default/Deployment/web";
    let in_cluster = |cluster: &str, key: &str| {
        let mut r = execute_req(t, "wf-1", key);
        r.spec.as_mut().unwrap().cluster_id = cluster.into();
        r
    };
    let mut names = Vec::new();
    for (cluster, key) in [("east", "east-1"), ("", "local-1"), ("west", "west-1")] {
        let res = c
            .execute_workflow(in_cluster(cluster, key))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            res.disposition,
            Disposition::Created as i32,
            "{cluster:?}: {:?}",
            res.skip_details
        );
        names.push(res.execution.unwrap().name);
    }
    let again = c
        .execute_workflow(in_cluster("east", "east-2"))
        .await
        .unwrap()
        .into_inner();
    skipped_for(&again, BlockReason::ResourceBusy, &names[0]);
    let message = &again.skip_details.as_ref().unwrap().message;
    assert!(message.contains("default/Deployment/web@east"), "{message}");

    let spec = in_cluster("north", "").spec;
    let free = c
        .preflight_workflow(v1::PreflightWorkflowRequest {
            namespace: String::new(),
            spec,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(free.would_start, "{:?}", free.blockers);
    api.shutdown().await;
}
