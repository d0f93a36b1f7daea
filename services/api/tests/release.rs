//! Release of a terminal execution's primitive: after its audit is recorded, retried until
//! an agent acknowledges it (also when the first agent is gone), and never sent again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::agent::{self, FakeAgent};
use common::*;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::agent::session_response::Message;
use wfe_proto::v1;

async fn job_agent(running: &wfe_api::Running, id: &str) -> FakeAgent {
    agent::connect(running, "job-local", agent::hello(id, "", "job", vec![]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primitive_released_after_audit_retried_until_acked_and_only_once() {
    let env = Env::new().await;
    let config = env.config();
    let ack_timeout = config.ack_timeout;
    let api = env.start(config).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut first = job_agent(&api, "job-1").await;
    let exec = c
        .execute_workflow(execute_req("default/Deployment/rel", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let a = first.next_assign().await;
    first.ack(&a.assignment_id).await;
    first
        .report(agent::report(&a, PrimitivePhase::Succeeded))
        .await;

    let r = first.next_release().await;
    let e = get(&mut c, &exec.name).await;
    let audit = condition(&e, "AuditRecorded").expect("audit recorded before the release");
    assert!(audit.message.contains("completed"), "{}", audit.message);
    assert_eq!(r.primitive.as_ref().unwrap().name, a.primitive_name);
    assert_eq!(r.execution.as_ref().unwrap().name, exec.name);
    assert_eq!(r.fencing_token, a.fencing_token);
    assert!(condition(&e, "PrimitiveReleased").is_none());

    // The agent dies without acknowledging; the next agent of the engine gets it.
    drop(first);
    let mut second = job_agent(&api, "job-2").await;
    let again = second.next_release().await;
    assert_eq!(again.primitive, r.primitive);
    second.ack(&again.command_id).await;
    let e = eventually(10, "PrimitiveReleased", || {
        let mut c = c.clone();
        let name = exec.name.clone();
        async move {
            let e = get(&mut c, &name).await;
            condition(&e, "PrimitiveReleased")
                .is_some_and(|c| c.status == "True")
                .then_some(e)
        }
    })
    .await;
    let cond = condition(&e, "PrimitiveReleased").unwrap();
    assert!(cond.message.contains("job-2"), "{}", cond.message);
    assert_eq!(phase(&e), v1::Phase::Completed);

    // Acknowledged: not sent again, though three ack timeouts pass.
    let deadline = tokio::time::Instant::now() + ack_timeout * 3;
    while let Some(m) = second
        .try_next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert!(!matches!(m, Message::Release(_)), "released twice: {m:?}");
    }
    // Nor after a restart, from the condition.
    api.shutdown().await;
    let api = env.start(env.config()).await;
    let mut third = job_agent(&api, "job-3").await;
    let m = third.try_next(Duration::from_millis(1200)).await;
    assert!(
        !matches!(m, Some(Message::Release(_))),
        "released twice: {m:?}"
    );
    api.shutdown().await;
}
