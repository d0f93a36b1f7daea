//! Two API replicas on one sandbox, an agent on each: every execution is assigned once,
//! by the replica of the agent that got it; neither replica calls the other's agent lost,
//! nor says NoAgentAvailable while the other has an agent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::agent::{self, FakeAgent};
use common::*;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use wfe_core::Engine;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::agent::session_response::Message;
use wfe_proto::v1;

type Seen = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

/// Acks every Assign and reports it Running; on `finish`, reports all Succeeded.
fn drive(mut ag: FakeAgent, seen: Seen) -> mpsc::Sender<()> {
    let (finish_tx, mut finish_rx) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            match finish_rx.try_recv() {
                Ok(()) => {
                    for a in &held {
                        ag.report(agent::report(a, PrimitivePhase::Succeeded)).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return, // the test ended
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let Ok(next) = ag.next_within(Duration::from_millis(50)).await else {
                return; // the API closed the session
            };
            let Some(Message::Assign(a)) = next else {
                continue;
            };
            let name = a.execution.as_ref().unwrap().name.clone();
            seen.lock()
                .entry(name)
                .or_default()
                .insert(ag.agent_id.clone());
            ag.ack(&a.assignment_id).await;
            ag.report(agent::report(&a, PrimitivePhase::Running)).await;
            held.push(a);
        }
    });
    finish_tx
}

fn replica_config(env: &Env, id: &str) -> wfe_api::Config {
    let mut c = env.config();
    c.instance_id = id.into();
    c.audit_file = env.dir.path().join(format!("{id}.jsonl"));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_agent_liveness_and_assign_each_execution_once() {
    let env = Env::new().await;
    let lease = env.config().lease_duration;
    let api_a = env.start(replica_config(&env, "api-a")).await;
    let api_b = env.start(replica_config(&env, "api-b")).await;
    let ca = client(&api_a, CALLER_TOKEN).await;
    let cb = client(&api_b, CALLER_TOKEN).await;
    let seen: Seen = Arc::default();

    // Only replica A has a job agent; B learns of it from its Lease.
    let ag_a = agent::connect(
        &api_a,
        "job-local",
        agent::hello("job-a", "", "job", vec![]),
    )
    .await
    .unwrap();
    let finish_a = drive(ag_a, seen.clone());
    eventually(10, "B to see A's agent", || async {
        api_b
            .ctx
            .liveness
            .any_elsewhere(Engine::Job, "")
            .then_some(())
    })
    .await;
    let via_b = cb
        .clone()
        .execute_workflow(execute_req("default/Deployment/r0", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    // B has no agent but knows A has one, so it waits for A rather than saying
    // NoAgentAvailable; A may even have assigned it before B's answer was written.
    let cond = condition(&via_b, "Dispatched").unwrap();
    assert!(
        ["AwaitingAgent", "Assigned"].contains(&cond.reason.as_str()),
        "{cond:?}"
    );

    // A assigns it (through its own index): wait for that before B gets an agent of its
    // own, which could otherwise take it first.
    eventually(10, "A to assign B's execution", || async {
        seen.lock().contains_key(&via_b.name).then_some(())
    })
    .await;

    // Now an agent on B as well, and executions through both replicas.
    let ag_b = agent::connect(
        &api_b,
        "job-local",
        agent::hello("job-b", "", "job", vec![]),
    )
    .await
    .unwrap();
    let finish_b = drive(ag_b, seen.clone());
    let mut names = vec![via_b.name.clone()];
    for i in 1..7 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        let e = c
            .clone()
            .execute_workflow(execute_req(&format!("default/Deployment/r{i}"), "wf-1", ""))
            .await
            .unwrap()
            .into_inner()
            .execution
            .unwrap();
        names.push(e.name);
    }
    for n in &names {
        wait_phase(&ca, n, v1::Phase::Running).await;
    }
    // Exposure window: three lease durations in which a replica that does not know the
    // other's agent would call it lost and reassign its executions (attempt 2).
    let until = tokio::time::Instant::now() + lease * 3;
    while tokio::time::Instant::now() < until {
        for n in &names {
            let e = get(&mut ca.clone(), n).await;
            let st = e.status.as_ref().unwrap();
            assert_eq!(st.attempt, 1, "{n} was reassigned: {st:?}");
            let d = condition(&e, "Dispatched").unwrap();
            assert_eq!(d.reason, "Assigned", "{n}: {d:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finish_a.send(()).await.unwrap();
    finish_b.send(()).await.unwrap();
    for n in &names {
        let e = wait_phase(&ca, n, v1::Phase::Completed).await;
        assert_eq!(e.status.as_ref().unwrap().attempt, 1, "{n}");
    }
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), names.len(), "{seen:?}");
    for (n, agents) in &seen {
        assert_eq!(agents.len(), 1, "{n} assigned to {agents:?}");
    }
    assert_eq!(seen[&via_b.name], BTreeSet::from(["job-a".to_owned()]));
    let used: BTreeSet<_> = seen.values().flatten().cloned().collect();
    assert_eq!(used.len(), 2, "both replicas assigned work: {seen:?}");
    api_a.shutdown().await;
    api_b.shutdown().await;
}
