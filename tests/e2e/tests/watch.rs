//! WatchWorkflowExecutions: initial state, changes, and resume after a disconnect
//! from the last resume token without losing or replaying events.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::clients::{Client, phase_of};
use wfe_e2e::v1::{self, Phase, WatchEventType};
use wfe_e2e::{Req, Stack, StackOptions};

const T: &str = "default/Deployment/web";

async fn watch(
    c: &mut Client,
    token: &str,
) -> tonic::Streaming<v1::WatchWorkflowExecutionsResponse> {
    let req = v1::WatchWorkflowExecutionsRequest {
        target_resource: T.to_owned(),
        resume_token: token.to_owned(),
        ..Default::default()
    };
    c.watch_workflow_executions(req)
        .await
        .expect("watch")
        .into_inner()
}

/// The next event that is not a heartbeat.
async fn next(
    s: &mut tonic::Streaming<v1::WatchWorkflowExecutionsResponse>,
) -> v1::WatchWorkflowExecutionsResponse {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), s.message())
            .await
            .expect("an event within 30 s")
            .expect("stream ok")
            .expect("stream open");
        if ev.r#type() != WatchEventType::Heartbeat {
            return ev;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_a_disconnect() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let mut c = stack.grpc_client().await.expect("client");
    let mut s = watch(&mut c, "").await;
    assert_eq!(
        next(&mut s).await.r#type(),
        WatchEventType::Synced,
        "empty initial state"
    );

    let exec = stack
        .run(&Req::job(T).duration("3s"))
        .await
        .expect("execute");
    // Follow until Running, then disconnect.
    let mut token;
    loop {
        let ev = next(&mut s).await;
        token = ev.resume_token.clone();
        let e = ev.execution.expect("execution on a change");
        assert_eq!(e.name, exec.name);
        if phase_of(&e) == Phase::Running {
            break;
        }
    }
    drop(s);
    stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed while away");

    // Resume: the changes missed while away arrive, no reset, no initial state again.
    let mut s = watch(&mut c, &token).await;
    loop {
        let ev = next(&mut s).await;
        assert_eq!(
            ev.r#type(),
            WatchEventType::Modified,
            "only missed changes: {ev:?}"
        );
        let e = ev.execution.expect("execution");
        assert_ne!(
            phase_of(&e),
            Phase::Pending,
            "nothing before the token replayed"
        );
        if phase_of(&e) == Phase::Completed {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_before_an_api_restart_gets_a_reset_and_the_state_now() {
    let mut stack = Stack::start(StackOptions::default()).await.expect("stack");
    let mut c = stack.grpc_client().await.expect("client");
    let mut s = watch(&mut c, "").await;
    assert_eq!(next(&mut s).await.r#type(), WatchEventType::Synced);
    let exec = stack
        .run(&Req::job(T).duration("3s"))
        .await
        .expect("execute");
    let token = next(&mut s).await.resume_token;
    drop(s);

    // The API dies (its change ring with it) and comes back; the execution finishes.
    stack
        .restart(wfe_e2e::Component::Api(0))
        .await
        .expect("restart");
    stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed across the restart");

    // The old token cannot be resumed from: RESET, then the whole state, then SYNCED.
    let mut c = stack.grpc_client().await.expect("client");
    let mut s = watch(&mut c, &token).await;
    assert_eq!(next(&mut s).await.r#type(), WatchEventType::Reset);
    let added = next(&mut s).await;
    assert_eq!(added.r#type(), WatchEventType::Added);
    let e = added.execution.expect("execution");
    assert_eq!(
        (e.name.as_str(), phase_of(&e)),
        (exec.name.as_str(), Phase::Completed)
    );
    let synced = next(&mut s).await;
    assert_eq!(synced.r#type(), WatchEventType::Synced);
    assert_ne!(synced.resume_token, token, "a token of the new process");
}
