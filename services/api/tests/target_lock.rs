//! The target lock is one Lease per target, reused: a finished holder leaves it in place and
//! the next execution on the target takes it over (one write, no delete); a lock idle past
//! `--lock-idle-ttl` is deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{self, FakeAgent};
use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1;

const TARGET: &str = "default/Deployment/reused";

fn holder(l: &Lease) -> String {
    l.spec.as_ref().unwrap().holder_identity.clone().unwrap()
}

/// Runs one execution on TARGET to Completed and returns its name.
async fn run_to_completion(c: &mut Client, ag: &mut FakeAgent, workflow: &str) -> String {
    let name = start_execution(c, TARGET, workflow).await;
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;
    wait_phase(c, &name, v1::Phase::Completed).await;
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_holder_leaves_its_lock_to_the_next_execution_and_idle_locks_go() {
    let env = Env::new().await;
    let mut config = env.config();
    config.cooldown = Duration::ZERO;
    config.lock_idle_ttl = Duration::from_millis(1500);
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::connect(&api, "job-local", agent::hello("a1", "", "job", vec![]))
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(env.sandbox.kube_client().unwrap(), NS);
    let lock = wfe_api::lock::lease_name(TARGET);

    let first = run_to_completion(&mut c, &mut ag, "wf-a").await;
    let l = leases.get(&lock).await.unwrap();
    assert_eq!(
        holder(&l),
        format!("{NS}/{first}"),
        "kept after the holder finished"
    );

    let second = run_to_completion(&mut c, &mut ag, "wf-b").await;
    let taken = leases.get(&lock).await.unwrap();
    assert_eq!(holder(&taken), format!("{NS}/{second}"));
    assert_eq!(
        taken.metadata.uid, l.metadata.uid,
        "taken over in place, not deleted and created again"
    );

    // Idle past the TTL: the collector deletes it (it runs every half TTL).
    eventually(10, "the idle lock deleted", || {
        let leases = leases.clone();
        let lock = lock.clone();
        async move { leases.get_opt(&lock).await.unwrap().is_none().then_some(()) }
    })
    .await;
    // And the target is still usable: the next execution creates the lock again.
    run_to_completion(&mut c, &mut ag, "wf-c").await;
    api.shutdown().await;
}
