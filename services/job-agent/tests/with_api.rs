//! The real workflow-api (in-process, on the sandbox) with real job-agents (in-process,
//! each on its own tokio runtime so that killing one stops every task it spawned, as a
//! SIGKILL would): an agent killed mid-execution and restarted or replaced by another
//! replica, and the agent ↔ API connection cut and restored.
//!
//! Every Job ever created is recorded by a watch on the sandbox (distinct uids per
//! execution), so "exactly one primitive" means one creation, not one survivor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Stack, execute, wait_until};
use wfe_proto::v1::Phase;

/// `succeed` for `secs` (real seconds: the stack runs with time_scale 1).
fn params(secs: u32) -> Vec<(&'static str, String)> {
    vec![
        ("SANDBOX_OUTCOME", "succeed".into()),
        ("SANDBOX_DURATION", format!("{secs}s")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_execution_and_restarted_creates_one_job() {
    let stack = Stack::start().await;
    let api = stack.api().await;
    let agent = stack.agent("job-agent-0", api.grpc_addr);
    let mut c = stack.client(&api).await;
    let we = execute(&mut c, "kill-restart", &params(4)).await;
    let running = stack.wait_phase(&c, &we.name, Phase::Running).await;
    let job_uid = running.status.unwrap().execution_ref.unwrap().uid;
    agent.kill();
    // Same replica identity comes back (a restarted pod): it resyncs its inventory.
    let _agent = stack.agent("job-agent-0", api.grpc_addr);
    let done = stack.wait_phase(&c, &we.name, Phase::Completed).await;
    let status = done.status.unwrap();
    assert_eq!(status.execution_ref.unwrap().uid, job_uid);
    assert_eq!(stack.jobs_created(&we.uid), vec![job_uid]);
    assert!(status.start_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_execution_is_replaced_by_another_replica_without_a_second_job() {
    let stack = Stack::start().await;
    let api = stack.api().await;
    let mut agents = [
        Some(stack.agent("job-agent-a", api.grpc_addr)),
        Some(stack.agent("job-agent-b", api.grpc_addr)),
    ];
    let mut c = stack.client(&api).await;
    let we = execute(&mut c, "kill-replace", &params(5)).await;
    let running = stack.wait_phase(&c, &we.name, Phase::Running).await;
    let status = running.status.unwrap();
    let job_uid = status.execution_ref.unwrap().uid;
    let holder = status.assignment.unwrap().agent_id;
    let victim = usize::from(holder == "job-agent-b");
    agents[victim].take().unwrap().kill();
    let done = stack.wait_phase(&c, &we.name, Phase::Completed).await;
    let status = done.status.unwrap();
    let assignment = status.assignment.unwrap();
    assert_ne!(
        assignment.agent_id, holder,
        "the surviving replica finished it"
    );
    assert!(assignment.fencing_token >= 2, "{assignment:?}");
    assert_eq!(status.execution_ref.unwrap().uid, job_uid);
    assert_eq!(stack.jobs_created(&we.uid), vec![job_uid]);
}

/// The TCP path between agent and API is cut while the Job starts and completes: both
/// transitions happen while the agent cannot report. After the cut heals the agent
/// reconnects, resyncs, and the API ends Completed with the start recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_and_restored_loses_no_status_change() {
    let stack = Stack::start().await;
    let api = stack.api().await;
    let proxy = support::Proxy::start(api.grpc_addr).await;
    let _agent = stack.agent("job-agent-0", proxy.addr());
    let mut c = stack.client(&api).await;
    // Slow start-up is not configurable, so the run is long enough to cut before it ends.
    let we = execute(&mut c, "cut", &params(3)).await;
    wait_until(20, "the Job to exist", || {
        (!stack.jobs_created(&we.uid).is_empty()).then_some(())
    })
    .await;
    proxy.cut();
    stack.wait_job_finished(&we.uid).await;
    let during = stack.get(&c, &we.name).await;
    assert_ne!(
        support::phase(&during),
        Phase::Completed,
        "no report got through"
    );
    proxy.restore();
    let done = stack.wait_phase(&c, &we.name, Phase::Completed).await;
    let status = done.status.unwrap();
    assert!(
        status.start_time.is_some(),
        "Running was recorded: {status:?}"
    );
    assert_eq!(stack.jobs_created(&we.uid).len(), 1);
    // The audit is written right after the status commits: wait for it, don't race it.
    let has = |types: &[String], t: &str| types.iter().any(|x| x == t);
    let types = wait_until(20, "the started and completed audit events", || {
        let types = stack.audit_types(&we.name);
        (has(&types, "workflowexecution.workflow.started")
            && has(&types, "workflowexecution.workflow.completed"))
        .then_some(types)
    })
    .await;
    assert_eq!(types.len(), 2, "each event once: {types:?}");
}

/// workflow-api itself dies while the Job runs and a new instance takes over (the proxy
/// plays the Service's stable address): the agent reconnects to it and the new instance
/// converges from the agent's inventory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_replaced_mid_execution_converges_from_the_agent_inventory() {
    let stack = Stack::start().await;
    let api = stack.api().await;
    let proxy = support::Proxy::start(api.grpc_addr).await;
    let _agent = stack.agent("job-agent-0", proxy.addr());
    let mut c = stack.client(&api).await;
    let we = execute(&mut c, "api-restart", &params(3)).await;
    stack.wait_phase(&c, &we.name, Phase::Running).await;
    proxy.cut();
    api.abort();
    stack.wait_job_finished(&we.uid).await;
    let api = stack.api().await;
    proxy.retarget(api.grpc_addr);
    proxy.restore();
    let c = stack.client(&api).await;
    let done = stack.wait_phase(&c, &we.name, Phase::Completed).await;
    assert!(done.status.unwrap().start_time.is_some());
    assert_eq!(stack.jobs_created(&we.uid).len(), 1);
    tokio::time::timeout(Duration::from_secs(10), api.shutdown())
        .await
        .expect("API shut down");
}
