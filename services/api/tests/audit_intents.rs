//! A transition's write lists its audit events before they are recorded, behind an intent
//! in a journal. An API that dies in between leaves the intent; the next start replays it
//! from the stored execution, so the listed events are recorded after all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::agent;
use common::*;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_left_by_a_dead_process_are_replayed_at_start() {
    let env = Env::new().await;
    let config = env.config();
    let api = env.start(config.clone()).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::connect(&api, "job-local", agent::hello("a1", "", "job", vec![]))
        .await
        .unwrap();
    let name = start_execution(&mut c, "default/Deployment/w", "wf-1").await;
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;
    let e = wait_phase(&c, &name, v1::Phase::Completed).await;
    let listed = condition(&e, "AuditRecorded").unwrap().message.clone();
    assert!(listed.contains("workflow.completed"), "{listed}");
    api.abort();

    // As if the process died after the commit, before recording: the events are not in
    // the audit file, and the intent is still in the journal.
    std::fs::write(env.audit_path(), "").unwrap();
    let intent = serde_json::json!({
        "namespace": NS,
        "name": name,
        "types": ["workflowexecution.workflow.started", "workflowexecution.workflow.completed"],
    });
    // An intent for a write that never committed names an execution that implies nothing.
    let never = serde_json::json!({"namespace": NS, "name": "we-never", "types": ["workflowexecution.workflow.failed"]});
    std::fs::write(config.audit_intents_path(), format!("{intent}\n{never}\n")).unwrap();

    let api = env.start(config.clone()).await;
    let events = eventually(10, "the replayed events", || async {
        let ev = env.audit_events();
        (ev.len() >= 2).then_some(ev)
    })
    .await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "workflowexecution.workflow.started",
            "workflowexecution.workflow.completed"
        ]
    );
    eventually(10, "the journal emptied after the replay", || async {
        std::fs::read_to_string(config.audit_intents_path())
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    api.shutdown().await;
}
