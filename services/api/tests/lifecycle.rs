//! Restart mid-execution, agent loss and reassignment, cancel, watch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::agent;
use common::*;
use futures::StreamExt;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1::{self, WatchEventType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_execution_loses_and_duplicates_nothing() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::job_agent(&api, "job-1", vec![]).await;
    let exec = c
        .clone()
        .execute_workflow(execute_req("default/Deployment/restart", "wf-1", "key-1"))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Running))
        .await;
    wait_phase(&c, &exec.name, v1::Phase::Running).await;
    // Hard stop: nothing drained.
    api.abort();
    drop(ag);

    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    assert_eq!(
        phase(&get(&mut c, &exec.name).await),
        v1::Phase::Running,
        "state rebuilt from the resources"
    );
    // The agent reconnects with its inventory; its new session is assigned the execution
    // anew (only the assigned session reports), then it reports completion.
    let running = agent::report(&assign, PrimitivePhase::Running);
    let mut ag = agent::job_agent(&api, "job-1", vec![running]).await;
    let resumed = ag.resumed(&assign).await;
    ag.report(agent::report(&resumed, PrimitivePhase::Succeeded))
        .await;
    let e = wait_phase(&c, &exec.name, v1::Phase::Completed).await;
    assert_eq!(e.status.as_ref().unwrap().attempt, 1, "not reassigned");
    let again = c
        .execute_workflow(execute_req("default/Deployment/restart", "wf-1", "key-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.disposition, v1::Disposition::AlreadyExisted as i32);
    let list = c
        .list_workflow_executions(v1::ListWorkflowExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.executions.len(), 1);
    let types = eventually(10, "the completed audit event", || async {
        let t: Vec<String> = env
            .audit_events()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_owned())
            .collect();
        t.iter().any(|x| x.ends_with("completed")).then_some(t)
    })
    .await;
    assert_eq!(
        types,
        [
            "workflowexecution.workflow.started",
            "workflowexecution.workflow.completed"
        ]
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_agent_work_is_adopted_by_another_with_a_new_fencing_token() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let mut first = agent::job_agent(&api, "job-a", vec![]).await;
    let exec = c
        .clone()
        .execute_workflow(execute_req("default/Deployment/lost", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let a1 = first.next_assign().await;
    first.ack(&a1.assignment_id).await;
    first
        .report(agent::report(&a1, PrimitivePhase::Running))
        .await;
    wait_phase(&c, &exec.name, v1::Phase::Running).await;

    let mut second = agent::job_agent(&api, "job-b", vec![]).await;
    first.kill(); // stream closes, heartbeats stop
    let a2 = second.next_assign().await;
    assert_eq!(a2.execution.as_ref().unwrap().name, exec.name);
    assert!(a2.adopt, "the new agent adopts the existing primitive");
    assert_eq!(a2.fencing_token, a1.fencing_token + 1);
    assert_eq!(
        a2.primitive_name, a1.primitive_name,
        "same primitive, not a second one"
    );
    let e = get(&mut c.clone(), &exec.name).await;
    let d = condition(&e, "Dispatched").unwrap();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("False", "AgentLost")
    );
    second.ack(&a2.assignment_id).await;
    // A stale report from the old assignment is refused; the new one is accepted.
    second
        .report(agent::failed(&a1, v1::FailureReason::TaskFailed, true))
        .await;
    second
        .report(agent::report(&a2, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &exec.name, v1::Phase::Completed).await;
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_agent_that_stops_heartbeating_is_lost() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let mut hung = agent::job_agent(&api, "job-hung", vec![]).await;
    let exec = start_execution(&mut c.clone(), "default/Deployment/hung", "wf-1").await;
    let a1 = hung.next_assign().await;
    hung.ack(&a1.assignment_id).await;
    hung.report(agent::report(&a1, PrimitivePhase::Running))
        .await;
    wait_phase(&c, &exec, v1::Phase::Running).await;

    let mut second = agent::job_agent(&api, "job-b", vec![]).await;
    hung.go_silent(); // the stream stays open: only the missing heartbeats tell
    let a2 = second.next_assign().await;
    assert_eq!(a2.execution.as_ref().unwrap().name, exec);
    assert!(a2.adopt);
    let e = get(&mut c.clone(), &exec).await;
    let d = condition(&e, "Dispatched").unwrap();
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("False", "AgentLost")
    );
    drop(hung);
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_pending_at_once_and_running_through_the_agent() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let pending = c
        .execute_workflow(execute_req("default/Deployment/c1", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let req = v1::CancelWorkflowExecutionRequest {
        name: pending.name.clone(),
        namespace: String::new(),
        reason: "operator request".into(),
    };
    let e = c
        .cancel_workflow_execution(req)
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(phase(&e), v1::Phase::Failed);
    let fd = e.status.as_ref().unwrap().failure_details.as_ref().unwrap();
    assert_eq!(fd.reason, v1::FailureReason::Cancelled as i32);
    assert!(!fd.was_execution_failure);

    let mut ag = agent::job_agent(&api, "job-1", vec![]).await;
    let running = c
        .execute_workflow(execute_req("default/Deployment/c2", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let a = ag.next_assign().await;
    ag.ack(&a.assignment_id).await;
    ag.report(agent::report(&a, PrimitivePhase::Running)).await;
    wait_phase(&c, &running.name, v1::Phase::Running).await;
    let req = v1::CancelWorkflowExecutionRequest {
        name: running.name.clone(),
        namespace: String::new(),
        reason: "stop".into(),
    };
    let e = c
        .cancel_workflow_execution(req)
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    assert_eq!(
        phase(&e),
        v1::Phase::Running,
        "a running execution waits for its agent"
    );
    let cancel = ag.next_cancel().await;
    assert_eq!(cancel.fencing_token, a.fencing_token);
    ag.ack(&cancel.command_id).await;
    ag.report(agent::failed(&a, v1::FailureReason::Cancelled, true))
        .await;
    let e = wait_phase(&c, &running.name, v1::Phase::Failed).await;
    assert_eq!(
        e.status
            .as_ref()
            .unwrap()
            .failure_details
            .as_ref()
            .unwrap()
            .reason,
        v1::FailureReason::Cancelled as i32
    );
    let types = eventually(10, "two cancelled events", || async {
        let t: Vec<String> = env
            .audit_events()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_owned())
            .collect();
        (t.iter().filter(|x| x.ends_with("cancelled")).count() == 2).then_some(t)
    })
    .await;
    assert!(
        !types.iter().any(|t| t.ends_with("workflow.failed")),
        "{types:?}"
    );
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_state_changes_and_resumes() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let first = c
        .execute_workflow(execute_req("default/Deployment/w1", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let mut stream = c
        .watch_workflow_executions(v1::WatchWorkflowExecutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ev = stream.next().await.unwrap().unwrap();
    assert_eq!(
        (ev.r#type, ev.execution.unwrap().name),
        (WatchEventType::Added as i32, first.name.clone())
    );
    let synced = stream.next().await.unwrap().unwrap();
    assert_eq!(synced.r#type, WatchEventType::Synced as i32);
    let second = c
        .execute_workflow(execute_req("default/Deployment/w2", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let mut token = synced.resume_token.clone();
    let mut saw_second = false;
    let mut saw_heartbeat = false;
    while !(saw_second && saw_heartbeat) {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        saw_second |= ev.execution.as_ref().is_some_and(|e| e.name == second.name);
        saw_heartbeat |= ev.r#type == WatchEventType::Heartbeat as i32;
        if !saw_second {
            token = ev.resume_token.clone();
        }
    }
    drop(stream);
    // Resuming from before the second execution replays it, without a fresh snapshot.
    let req = v1::WatchWorkflowExecutionsRequest {
        resume_token: token,
        ..Default::default()
    };
    let mut resumed = c.watch_workflow_executions(req).await.unwrap().into_inner();
    let ev = resumed.next().await.unwrap().unwrap();
    assert_ne!(ev.r#type, WatchEventType::Reset as i32);
    assert_eq!(ev.execution.unwrap().name, second.name);
    // A token of another server instance gets RESET and the full state.
    let req = v1::WatchWorkflowExecutionsRequest {
        resume_token: "other.5".into(),
        ..Default::default()
    };
    let mut reset = c.watch_workflow_executions(req).await.unwrap().into_inner();
    assert_eq!(
        reset.next().await.unwrap().unwrap().r#type,
        WatchEventType::Reset as i32
    );
    api.shutdown().await;
}
