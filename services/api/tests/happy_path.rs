//! Created → Pending → dispatched → Running → Completed, with conditions, timestamps, one
//! audit event per transition and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::agent::{self, FakeAgent};
use common::*;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1::{self, Disposition};

async fn job_agent(running: &wfe_api::Running, id: &str) -> FakeAgent {
    agent::connect(running, "job-local", agent::hello(id, "", "job", vec![]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_runs_to_completion() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = job_agent(&api, "job-agent-1").await;

    let res = c
        .execute_workflow(execute_req("default/Deployment/web", "wf-1", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.disposition, Disposition::Created as i32);
    let exec = res.execution.unwrap();
    assert_eq!(phase(&exec), v1::Phase::Pending);
    assert!(
        !exec.uid.is_empty(),
        "answered only after the resource was persisted"
    );

    let assign = ag.next_assign().await;
    assert_eq!(assign.execution.as_ref().unwrap().name, exec.name);
    assert_eq!(assign.fencing_token, 1);
    assert_eq!(assign.attempt, 1);
    assert_eq!(assign.target_resource, "default/Deployment/web");
    assert!(assign.primitive_name.starts_with("wfe-"));
    // The assignment was persisted before it was sent; the Ack itself costs no write.
    let e = get(&mut c, &exec.name).await;
    let a = e.status.as_ref().unwrap().assignment.clone().unwrap();
    assert!(!a.acknowledged);
    let dispatched = condition(&e, "Dispatched").unwrap();
    assert_eq!(
        (dispatched.status.as_str(), dispatched.reason.as_str()),
        ("True", "Assigned")
    );
    ag.ack(&assign.assignment_id).await;

    ag.report(agent::report(&assign, PrimitivePhase::Running))
        .await;
    let e = wait_phase(&c, &exec.name, v1::Phase::Running).await;
    let a = e.status.as_ref().unwrap().assignment.clone().unwrap();
    assert!(a.acknowledged, "the first report persists the ack");
    let st = e.status.as_ref().unwrap();
    assert!(st.start_time.is_some());
    assert_eq!(
        st.execution_ref.as_ref().unwrap().name,
        assign.primitive_name
    );
    assert_eq!(condition(&e, "ExecutionCreated").unwrap().status, "True");
    assert_eq!(condition(&e, "ExecutionRunning").unwrap().status, "True");

    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;
    let e = wait_phase(&c, &exec.name, v1::Phase::Completed).await;
    let st = e.status.as_ref().unwrap();
    assert!(st.completion_time.is_some() && st.duration.is_some());
    assert_eq!(condition(&e, "ExecutionComplete").unwrap().status, "True");
    assert_eq!(condition(&e, "Ready").unwrap().reason, "Ready");
    assert_eq!(st.summary.as_ref().unwrap().completed_tasks, 1);
    // A repeated terminal report changes nothing (at-least-once delivery).
    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;

    let events = eventually(10, "AuditRecorded and two audit events", || {
        let mut c = c.clone();
        let name = exec.name.clone();
        let env = &env;
        async move {
            let e = get(&mut c, &name).await;
            let ok = condition(&e, "AuditRecorded")
                .is_some_and(|c| c.status == "True" && c.message.contains("completed"));
            ok.then(|| env.audit_events())
        }
    })
    .await;
    let types: Vec<_> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "workflowexecution.workflow.started",
            "workflowexecution.workflow.completed"
        ]
    );
    assert_eq!(events[1]["event_data"]["execution_engine"], "job");
    assert_eq!(events[1]["correlation_id"], "rr-1");
    assert_ne!(events[0]["event_id"], events[1]["event_id"]);

    let m = metrics(&api).await;
    assert!(
        m.contains(
            "workflowexecution_api_executions_total{engine=\"job\",outcome=\"Completed\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("workflowexecution_api_connected_agents{engine=\"job\",cluster=\"local\"} 1"),
        "{m}"
    );
    assert!(
        m.contains(
            "workflowexecution_api_grpc_requests_total{method=\"ExecuteWorkflow\",code=\"Ok\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("workflowexecution_api_dispatch_latency_seconds_count 1"),
        "{m}"
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_same_execution() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let first = c
        .execute_workflow(execute_req("default/Deployment/idem", "wf-1", "rr-uid-1"))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .execute_workflow(execute_req("default/Deployment/idem", "wf-1", "rr-uid-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.disposition, Disposition::Created as i32);
    assert_eq!(again.disposition, Disposition::AlreadyExisted as i32);
    assert_eq!(first.execution.unwrap().uid, again.execution.unwrap().uid);
    api.shutdown().await;

    // Across a restart, from the resources alone.
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let after = c
        .execute_workflow(execute_req("default/Deployment/idem", "wf-1", "rr-uid-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.disposition, Disposition::AlreadyExisted as i32);
    let list = c
        .list_workflow_executions(v1::ListWorkflowExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.executions.len(), 1);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_keeps_it_pending_with_a_reason() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut req = execute_req("default/Deployment/lonely", "wf-1", "");
    req.spec.as_mut().unwrap().cluster_id = "far-away".into();
    let exec = c
        .execute_workflow(req)
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let cond = condition(&exec, "Dispatched").unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "NoAgentAvailable")
    );
    assert!(
        cond.message.contains("far-away") && cond.message.contains("job"),
        "{}",
        cond.message
    );
    assert_eq!(phase(&get(&mut c, &exec.name).await), v1::Phase::Pending);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_trace_context_reaches_the_agent() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = job_agent(&api, "job-agent-1").await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = tonic::Request::new(execute_req("default/Deployment/traced", "wf-1", ""));
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let exec = c
        .execute_workflow(req)
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let assign = ag.next_assign().await;
    assert_eq!(assign.execution.as_ref().unwrap().name, exec.name);
    assert_eq!(
        assign.trace_context.get("traceparent").map(String::as_str),
        Some(traceparent)
    );
    api.shutdown().await;
}
