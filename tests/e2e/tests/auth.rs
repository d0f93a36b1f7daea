//! Identity: an agent with an unknown token is Unauthenticated, one claiming another
//! cluster than its token's is PermissionDenied; neither receives work. A caller
//! with a bad token is Unauthenticated.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::clients::{condition, phase_of};
use wfe_e2e::stack::AgentSpec;
use wfe_e2e::v1::Phase;
use wfe_e2e::{Req, Stack, StackOptions, eventually};

/// Starts a job-agent with `token` claiming the local cluster and checks it is
/// refused with `code` (in its log), never ready, and never given the execution.
async fn refused_agent(token: &str, code: tonic::Code) {
    // The agent logs the status with the code's description.
    let code = code.description();
    let mut stack = Stack::start(StackOptions::default().counts(1, 0, 0))
        .await
        .expect("stack");
    let agent = stack
        .spawn_agent(AgentSpec {
            engine: "job",
            token: token.to_owned(),
            cluster_id: String::new(),
            stuck_grace_seconds: None,
            api: 0,
            kubeconfig: None,
        })
        .await
        .expect("spawn agent");
    let exec = stack
        .run(&Req::job("default/Deployment/web"))
        .await
        .expect("execute");
    let log = eventually(
        Duration::from_secs(20),
        &format!("{code} in the agent log"),
        || {
            let log = stack.log(agent);
            async move { Ok(log.contains(code).then_some(log)) }
        },
    )
    .await
    .expect("refused");
    assert!(
        log.contains("cannot open session") || log.contains("session lost"),
        "{log}"
    );
    let (status, body) = stack.readyz(agent).await.expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not connected"), "{body}");
    let e = stack.get(&exec.name).await.expect("get");
    assert_eq!(
        phase_of(&e),
        Phase::Pending,
        "the refused agent got no work"
    );
    let d = condition(&e, "Dispatched").expect("Dispatched");
    assert_eq!(d.reason, "NoAgentAvailable", "{d:?}");
    assert!(
        stack
            .kubectl(&["get", "jobs", "-A", "-o", "name"])
            .await
            .expect("kubectl")
            .trim()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_a_wrong_token_is_unauthenticated() {
    refused_agent("not-a-known-token", tonic::Code::Unauthenticated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_another_clusters_identity_is_permission_denied() {
    // The token is bound to cluster "east"; the agent says it is the local cluster.
    refused_agent("e2e-east-job-token", tonic::Code::PermissionDenied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_with_a_bad_token_is_unauthenticated() {
    let stack = Stack::start(StackOptions::default().counts(1, 0, 0))
        .await
        .expect("stack");
    let mut c = stack
        .grpc_client_of(0, "stolen-token")
        .await
        .expect("client");
    let err = c
        .execute_workflow(Req::job("default/Deployment/web").build())
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let listed = stack
        .kubectl(&["get", "wfe", "-o", "name"])
        .await
        .expect("kubectl");
    assert!(listed.trim().is_empty(), "nothing persisted: {listed}");
}
