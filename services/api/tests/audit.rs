//! Audit delivery to DataStorage through the outbox (outage, restart) and audit after a
//! crash between a status commit and its audit write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::agent;
use common::datastorage::FakeDataStorage;
use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, PostParams};
use wfe_k8s::WorkflowExecution;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1;

const STARTED: &str = "workflowexecution.workflow.started";
const COMPLETED: &str = "workflowexecution.workflow.completed";
/// What DataStorage receives for STARTED and COMPLETED: its contract and upstream send a
/// started run as selection.completed then execution.started (wfe_audit::wire).
const DELIVERED: [&str; 3] = [
    "workflowexecution.selection.completed",
    "workflowexecution.execution.started",
    COMPLETED,
];

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datastorage_outage_and_restart_deliver_every_event_once() {
    let env = Env::new().await;
    let ds = FakeDataStorage::start(false).await;
    let config = env.datastorage_config(&ds.url);
    let api = env.start(config.clone()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::job_agent(&api, "job-1", vec![]).await;
    let exec = c
        .clone()
        .execute_workflow(execute_req("default/Deployment/ds", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Running))
        .await;
    wait_audit_recorded(&c, &exec.name, &[STARTED]).await;
    // DataStorage is down: the event waits in the outbox and deliveries fail.
    eventually(10, "refused deliveries", || async {
        (ds.refused() >= 2).then_some(())
    })
    .await;
    let m = metrics(&api).await;
    assert_eq!(metric(&m, "workflowexecution_api_audit_outbox_depth"), 1.0);
    assert!(metric(&m, "workflowexecution_api_audit_delivery_failures_total") >= 1.0);
    assert!(ds.events().is_empty());

    // Crash, restart on the same outbox, finish the execution while DataStorage is down.
    api.abort();
    drop(ag);
    let api = env.start(config).await;
    let c = client(&api, CALLER_TOKEN).await;
    let running = agent::report(&assign, PrimitivePhase::Running);
    let mut ag = agent::job_agent(&api, "job-1", vec![running]).await;
    let resumed = ag.resumed(&assign).await;
    ag.report(agent::report(&resumed, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &exec.name, v1::Phase::Completed).await;
    wait_audit_recorded(&c, &exec.name, &[STARTED, COMPLETED]).await;
    assert!(ds.events().is_empty());

    ds.set_up(true);
    let types = eventually(20, "both events delivered", || async {
        let t = ds.types_for(&exec.name);
        (t.len() >= 3).then_some(t)
    })
    .await;
    assert_eq!(types, DELIVERED);
    assert!(ds.counts().values().all(|n| *n == 1), "{:?}", ds.counts());
    eventually(10, "an empty outbox", || {
        let api = &api;
        async move {
            let m = metrics(api).await;
            (metric(&m, "workflowexecution_api_audit_outbox_depth") == 0.0).then_some(())
        }
    })
    .await;
    api.shutdown().await;
}

/// Writes a terminal status directly, as if the API died after the commit and before the
/// audit write: Completed, with start and completion times, no AuditRecorded condition.
async fn complete_without_audit(api: &Api<WorkflowExecution>, name: &str) {
    let mut obj = api.get(name).await.unwrap();
    let now = jiff::Timestamp::now();
    let st = obj.status.get_or_insert_with(Default::default);
    st.phase = Some(wfe_core::Phase::Completed);
    st.start_time = Some(Time(now - jiff::SignedDuration::from_secs(30)));
    st.completion_time = Some(Time(now));
    st.duration = Some("30s".into());
    st.conditions.retain(|c| c.type_ != "AuditRecorded");
    api.replace_status(name, &PostParams::default(), &obj)
        .await
        .unwrap();
}

/// A copy of `name`'s spec under a new name (no idempotency label).
async fn copy_execution(api: &Api<WorkflowExecution>, name: &str, new_name: &str) {
    let src = api.get(name).await.unwrap();
    let copy = WorkflowExecution {
        metadata: ObjectMeta {
            name: Some(new_name.into()),
            namespace: src.metadata.namespace.clone(),
            ..Default::default()
        },
        spec: src.spec.clone(),
        status: None,
    };
    api.create(&PostParams::default(), &copy).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lost_in_a_crash_is_regenerated_exactly_once() {
    let env = Env::new().await;
    let kube = env.sandbox.kube_client().unwrap();
    let wfes: Api<WorkflowExecution> = Api::namespaced(kube, NS);
    let ds = FakeDataStorage::start(true).await;

    // An execution accepted by an API with no agent, then "completed" by a crashed one.
    let api = env.start(env.config()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let a = c
        .clone()
        .execute_workflow(execute_req("default/Deployment/crash", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap()
        .name;
    api.shutdown().await;
    complete_without_audit(&wfes, &a).await;

    let api = env.start(env.datastorage_config(&ds.url)).await;
    let c = client(&api, CALLER_TOKEN).await;
    wait_audit_recorded(&c, &a, &[STARTED, COMPLETED]).await;
    let types = eventually(10, "regenerated events delivered", || async {
        let t = ds.types_for(&a);
        (t.len() >= 3).then_some(t)
    })
    .await;
    assert_eq!(types, DELIVERED);
    let first = ds.events();
    assert_eq!(first[2]["event_data"]["duration"], "30s", "{first:#?}");
    api.shutdown().await;

    // Another restart regenerates nothing for `a`. `b` sorts after `a`, so once its
    // regenerated events arrived, a sweep went past `a` as well.
    let b = format!("{a}-zz");
    copy_execution(&wfes, &a, &b).await;
    complete_without_audit(&wfes, &b).await;
    let api = env.start(env.datastorage_config(&ds.url)).await;
    let c = client(&api, CALLER_TOKEN).await;
    wait_audit_recorded(&c, &b, &[STARTED, COMPLETED]).await;
    eventually(10, "b's events delivered", || async {
        (ds.types_for(&b).len() >= 3).then_some(())
    })
    .await;
    assert_eq!(ds.types_for(&a), DELIVERED);
    assert!(ds.counts().values().all(|n| *n == 1), "{:?}", ds.counts());
    api.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_kind_leaves_the_others_delivered() {
    let env = Env::new().await;
    let ds = FakeDataStorage::start(false).await;
    ds.refuse_action("skipped");
    let api = env.start(env.datastorage_config(&ds.url)).await;
    let mut c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::job_agent(&api, "job-1", vec![]).await;
    let target = "default/Deployment/refused";

    // A runs; B on the same target is skipped (ResourceBusy); A completes. DataStorage is
    // down meanwhile, so all of it waits in the outbox and goes out as one batch.
    let a = c
        .execute_workflow(execute_req(target, "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap()
        .name;
    let assign = ag.next_assign().await;
    ag.ack(&assign.assignment_id).await;
    ag.report(agent::report(&assign, PrimitivePhase::Running))
        .await;
    wait_audit_recorded(&c, &a, &[STARTED]).await;
    let b = c
        .execute_workflow(execute_req(target, "wf-2", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.disposition, v1::Disposition::Skipped as i32);
    let b = b.execution.unwrap().name;
    wait_audit_recorded(&c, &b, &["workflowexecution.workflow.skipped"]).await;
    ag.report(agent::report(&assign, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &a, v1::Phase::Completed).await;
    wait_audit_recorded(&c, &a, &[STARTED, COMPLETED]).await;

    ds.set_up(true);
    let types = eventually(20, "A's events delivered", || async {
        let t = ds.types_for(&a);
        (t.len() >= 3).then_some(t)
    })
    .await;
    assert_eq!(types, DELIVERED);
    let m = eventually(10, "the refused event counted", || {
        let api = &api;
        async move {
            let m = metrics(api).await;
            (metric(&m, "workflowexecution_api_audit_events_rejected_total") == 1.0).then_some(m)
        }
    })
    .await;
    assert_eq!(metric(&m, "workflowexecution_api_audit_outbox_depth"), 0.0);
    assert!(ds.types_for(&b).is_empty());
    assert!(ds.invalid_batches() >= 1, "DataStorage refused a batch");
    let kept: Vec<_> = std::fs::read_dir(
        env.datastorage_config(&ds.url)
            .audit_outbox_dir
            .join("rejected"),
    )
    .unwrap()
    .filter_map(|e| e.ok())
    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
    .collect();
    assert_eq!(kept.len(), 1, "only the skipped event is set aside");
    let kept = std::fs::read_to_string(kept[0].path()).unwrap();
    assert!(kept.contains("workflowexecution.workflow.skipped") && kept.contains(&b));
    api.shutdown().await;
}
