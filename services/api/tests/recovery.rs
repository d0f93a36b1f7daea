//! An execution whose initial status was never written (its API died, or the status write
//! failed, between the create and the status write) is not left holding its target with no
//! phase: a retry of its idempotency key finishes its acceptance at once, and without a
//! retry the dispatcher does after `--accept-recovery-grace`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{self, FakeAgent};
use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use wfe_k8s::WorkflowExecution;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1::{self, BlockReason, Disposition};

/// Leaves behind what an API that crashed right after its create leaves: the target's
/// lock held by the execution, and the execution without status.
async fn orphan(env: &Env, target: &str, key: &str) -> String {
    let now = jiff::Timestamp::now();
    let req = wfe_api::convert::request_from_proto(
        NS.to_owned(),
        key.to_owned(),
        Some(spec(target, "wf-orphan")),
    )
    .unwrap();
    let valid = wfe_core::validate_request(&req, now).unwrap();
    let name = wfe_core::naming::execution_name(key);
    let obj = wfe_api::execute::build(&req, &valid, &name, now);
    let kube = env.sandbox.kube_client().unwrap();
    Api::<WorkflowExecution>::namespaced(kube.clone(), NS)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": wfe_api::lock::lease_name(target),
            "labels": {
                wfe_api::leases::COMPONENT_LABEL: "wfe-target-lock",
                wfe_k8s::labels::MANAGED_BY: wfe_k8s::labels::MANAGED_BY_VALUE,
            },
            "annotations": {wfe_k8s::labels::TARGET_RESOURCE_ANNOTATION: target},
        },
        "spec": {"holderIdentity": format!("{NS}/{name}"), "acquireTime": now.to_string()},
    }))
    .unwrap();
    Api::<Lease>::namespaced(kube, NS)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    name
}

async fn job_agent(running: &wfe_api::Running) -> FakeAgent {
    agent::connect(
        running,
        "job-local",
        agent::hello("job-1", "", "job", vec![]),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_the_key_finishes_an_unadmitted_execution() {
    let env = Env::new().await;
    let target = "default/Deployment/orphaned";
    let name = orphan(&env, target, "rr-orphan-1").await;
    let mut config = env.config();
    config.accept_recovery_grace = Duration::from_secs(3600); // only the retry may do it
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;

    let res = c
        .execute_workflow(execute_req(target, "wf-orphan", "rr-orphan-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.disposition, Disposition::AlreadyExisted as i32);
    let e = res.execution.unwrap();
    assert_eq!(e.name, name);
    assert_eq!(phase(&e), v1::Phase::Pending, "the retry wrote the status");
    let dispatched = condition(&e, "Dispatched").unwrap();
    assert_eq!(dispatched.reason, "NoAgentAvailable");
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_admits_an_unadmitted_execution_and_it_runs() {
    let env = Env::new().await;
    let target = "default/Deployment/orphaned";
    let name = orphan(&env, target, "rr-orphan-2").await;
    let mut config = env.config();
    config.accept_recovery_grace = Duration::from_millis(200);
    let api = env.start(config).await;
    let c = client(&api, CALLER_TOKEN).await;
    let mut ag = job_agent(&api).await;

    // It is admitted, holds its target (a second request is busy because of it) and runs.
    let assign = ag.next_assign().await;
    assert_eq!(assign.execution.as_ref().unwrap().name, name);
    let busy = c
        .clone()
        .execute_workflow(execute_req(target, "wf-other", ""))
        .await
        .unwrap()
        .into_inner();
    let skip = busy.skip_details.unwrap();
    assert_eq!(skip.reason, BlockReason::ResourceBusy as i32);
    assert_eq!(skip.conflicting_execution.unwrap().name, name);

    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Running))
        .await;
    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &name, v1::Phase::Completed).await;
    api.shutdown().await;
}
