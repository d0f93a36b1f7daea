//! InvalidArgument naming each field, NotFound, Unauthenticated, PermissionDenied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::agent;
use common::*;
use tonic::Code;
use tonic_types::StatusExt;
use wfe_proto::v1;

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_field_is_named() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    type Mutate = fn(&mut v1::ExecuteWorkflowRequest);
    let cases: Vec<(&str, Mutate)> = vec![
        ("spec", |r| r.spec = None),
        ("spec.target_resource", |r| {
            r.spec.as_mut().unwrap().target_resource = "a//b".into()
        }),
        ("spec.execution_engine", |r| {
            r.spec.as_mut().unwrap().execution_engine = "ansible".into()
        }),
        ("spec.workflow_ref.container_image", |r| {
            r.spec
                .as_mut()
                .unwrap()
                .workflow_ref
                .as_mut()
                .unwrap()
                .container_image = "nginx:latest".into()
        }),
        ("spec.workflow_ref.workflow_id", |r| {
            r.spec
                .as_mut()
                .unwrap()
                .workflow_ref
                .as_mut()
                .unwrap()
                .workflow_id = String::new()
        }),
        ("spec.remediation_request_ref.name", |r| {
            r.spec
                .as_mut()
                .unwrap()
                .remediation_request_ref
                .as_mut()
                .unwrap()
                .name = String::new()
        }),
        ("spec.parameters[bad-key]", |r| {
            r.spec
                .as_mut()
                .unwrap()
                .parameters
                .insert("bad-key".into(), "v".into());
        }),
        ("spec.confidence", |r| {
            r.spec.as_mut().unwrap().confidence = 7.0
        }),
        ("spec.execution_config.timeout", |r| {
            r.spec.as_mut().unwrap().execution_config = Some(v1::ExecutionConfig {
                deadline: Some(v1::execution_config::Deadline::Timeout(
                    prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    },
                )),
                ..Default::default()
            })
        }),
        ("namespace", |r| r.namespace = "not-served".into()),
    ];
    for (field, mutate) in cases {
        let mut req = execute_req("default/Deployment/x", "wf-1", "");
        mutate(&mut req);
        let err = c.execute_workflow(req).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            fields(&err).iter().any(|f| f == field),
            "{field} not in {:?}",
            fields(&err)
        );
        // Preflight validates the same way.
    }
    let mut bad = execute_req("default/Deployment/x", "wf-1", "")
        .spec
        .unwrap();
    bad.target_resource = String::new();
    let err = c
        .preflight_workflow(v1::PreflightWorkflowRequest {
            namespace: String::new(),
            spec: Some(bad),
        })
        .await
        .unwrap_err();
    assert!(fields(&err).contains(&"spec.target_resource".to_owned()));
    // Nothing was created by any of them.
    let list = c
        .list_workflow_executions(v1::ListWorkflowExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.executions.is_empty());
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_bad_token_and_foreign_agent() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let err = c
        .get_workflow_execution(v1::GetWorkflowExecutionRequest {
            name: "we-nope".into(),
            namespace: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .cancel_workflow_execution(v1::CancelWorkflowExecutionRequest {
            name: "we-nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut bad = client(&api, "wrong-token").await;
    let err = bad
        .execute_workflow(execute_req("default/Deployment/x", "wf-1", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = bad
        .list_workflow_executions(v1::ListWorkflowExecutionsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // An agent whose token is bound to cluster "east" claiming the local cluster.
    let err = agent::connect(&api, "job-east", agent::hello("a1", "", "job", vec![]))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = agent::connect(&api, "job-local", agent::hello("a1", "", "tekton", vec![]))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = agent::connect(&api, "nope", agent::hello("a1", "", "job", vec![]))
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::Unauthenticated);

    // An east agent never receives a local execution.
    let mut east = agent::connect(
        &api,
        "job-east",
        agent::hello("east-1", "east", "job", vec![]),
    )
    .await
    .unwrap();
    let exec = c
        .execute_workflow(execute_req("default/Deployment/local", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let mut req = execute_req("default/Deployment/remote", "wf-1", "");
    req.spec.as_mut().unwrap().cluster_id = "east".into();
    let remote = c
        .execute_workflow(req)
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let assign = east.next_assign().await;
    assert_eq!(assign.execution.as_ref().unwrap().name, remote.name);
    // Reporting on the local execution is refused: it stays Pending.
    let mut forged = assign.clone();
    forged.execution.as_mut().unwrap().name = exec.name.clone();
    forged.execution.as_mut().unwrap().uid = exec.uid.clone();
    east.report(agent::report(
        &forged,
        wfe_proto::agent::PrimitivePhase::Running,
    ))
    .await;
    east.report(agent::report(
        &assign,
        wfe_proto::agent::PrimitivePhase::Running,
    ))
    .await;
    wait_phase(&c, &remote.name, v1::Phase::Running).await;
    assert_eq!(phase(&get(&mut c, &exec.name).await), v1::Phase::Pending);
    api.shutdown().await;
}
