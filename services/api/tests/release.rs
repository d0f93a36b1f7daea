//! Release of a terminal execution's primitive: after its audit is recorded, sent to an agent
//! that holds it (its reports or its Hello's inventory say so), resent until acknowledged,
//! never sent for a primitive no agent lists, and acknowledged without a status write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{self, FakeAgent};
use common::*;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::agent::session_response::Message;

/// Asserts that no Release reaches the agent within `within`.
async fn no_release(a: &mut FakeAgent, within: Duration, why: &str) {
    let deadline = tokio::time::Instant::now() + within;
    while let Some(m) = a
        .try_next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert!(!matches!(m, Message::Release(_)), "{why}: {m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primitive_released_by_its_holder_after_audit_until_acked_without_a_write() {
    let env = Env::new().await;
    let config = env.config();
    let ack_timeout = config.ack_timeout;
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut first = agent::job_agent(&api, "job-1", vec![]).await;
    let exec = c
        .execute_workflow(execute_req("default/Deployment/rel", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let a = first.next_assign().await;
    first.ack(&a.assignment_id).await;
    let done = agent::report(&a, PrimitivePhase::Succeeded);
    first.report(done.clone()).await;

    let r = first.next_release().await;
    let e = get(&mut c, &exec.name).await;
    let audit = condition(&e, "AuditRecorded").expect("audit recorded before the release");
    assert!(audit.message.contains("completed"), "{}", audit.message);
    assert_eq!(r.primitive.as_ref().unwrap().name, a.primitive_name);
    assert_eq!(r.execution.as_ref().unwrap().name, exec.name);
    assert_eq!(r.fencing_token, a.fencing_token);

    // The agent dies without acknowledging. An agent whose inventory does not list the
    // primitive is not asked; one whose inventory lists it is.
    drop(first);
    let mut empty = agent::job_agent(&api, "job-2", vec![]).await;
    no_release(
        &mut empty,
        ack_timeout * 3,
        "released to an agent not holding it",
    )
    .await;
    let mut holder = agent::job_agent(&api, "job-3", vec![done.clone()]).await;
    let again = holder.next_release().await;
    assert_eq!(again.primitive, r.primitive);
    let rv = get(&mut c, &exec.name).await.resource_version;
    holder.ack(&again.command_id).await;

    // Acknowledged: not sent again, though three ack timeouts pass, and not written.
    no_release(&mut holder, ack_timeout * 3, "released twice").await;
    let e = get(&mut c, &exec.name).await;
    assert_eq!(e.resource_version, rv, "the release cost a status write");
    assert_eq!(phase(&e), wfe_proto::v1::Phase::Completed);
    api.shutdown().await;

    // After a restart: an agent whose inventory no longer lists it is not asked; one whose
    // inventory still does (its Job survived: say the delete never happened) is.
    let api = env.start(env.config()).await;
    let mut gone = agent::job_agent(&api, "job-4", vec![]).await;
    no_release(
        &mut gone,
        Duration::from_millis(1200),
        "released after a restart",
    )
    .await;
    let mut still = agent::job_agent(&api, "job-5", vec![done]).await;
    let left_over = still.next_release().await;
    assert_eq!(left_over.primitive, r.primitive);
    api.shutdown().await;
}
