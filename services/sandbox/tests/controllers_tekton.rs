//! The simulated Tekton controller, driven through the sandbox's HTTP API with
//! kube-rs, on PipelineRuns shaped like the tekton-agent's (upstream §4.3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod controllers_support;

use controllers_support::{events_about, reasons, sandbox, sandbox_with, wait_for};
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use wfe_sandbox::SandboxConfig;

const NS: &str = "default";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("tekton.dev", "v1", kind), plural)
}

fn pipelineruns(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, &resource("PipelineRun", "pipelineruns"))
}

fn taskruns(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, &resource("TaskRun", "taskruns"))
}

/// A PipelineRun as the tekton-agent builds it, with extra params and spec fields.
fn pipelinerun(name: &str, params: &[(&str, &str)], extra: Value) -> DynamicObject {
    let mut all: Vec<Value> = params
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    all.push(json!({"name": "TARGET_RESOURCE", "value": "default/deployment/web"}));
    let mut spec = json!({
        "pipelineRef": {"resolver": "bundles", "params": [
            {"name": "bundle", "value": "quay.io/kubernaut/bundle:v1"},
            {"name": "name", "value": "workflow"},
            {"name": "kind", "value": "pipeline"},
        ]},
        "params": all,
        "taskRunTemplate": {"serviceAccountName": "runner", "podTemplate": {"securityContext": {"runAsNonRoot": true}}},
    });
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        s.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": name, "namespace": NS, "labels": {"kubernaut.ai/workflow-execution": name}},
        "spec": spec,
    }))
    .expect("valid pipelinerun")
}

async fn create(client: &Client, pr: &DynamicObject) -> Api<DynamicObject> {
    let api = pipelineruns(client);
    api.create(&PostParams::default(), pr)
        .await
        .expect("create pipelinerun");
    api
}

fn succeeded(obj: &DynamicObject) -> Option<(String, String, String)> {
    let c = obj.data.pointer("/status/conditions/0")?;
    let s = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some((s("status"), s("reason"), s("message")))
}

fn done(obj: Option<&DynamicObject>) -> bool {
    obj.and_then(succeeded)
        .is_some_and(|(s, _, _)| s != "Unknown")
}

fn running(obj: Option<&DynamicObject>) -> bool {
    obj.and_then(succeeded)
        .is_some_and(|(_, r, _)| r == "Running")
}

async fn taskruns_of(client: &Client, pr: &str) -> Vec<DynamicObject> {
    let lp = ListParams::default().labels(&format!("tekton.dev/pipelineRun={pr}"));
    let mut items = taskruns(client)
        .list(&lp)
        .await
        .expect("list taskruns")
        .items;
    items.sort_by_key(|t| t.metadata.name.clone());
    items
}

#[tokio::test]
async fn pipeline_of_three_tasks_succeeds_with_child_references() {
    let (sb, client) = sandbox().await;
    let api = create(
        &client,
        &pipelinerun(
            "wfe-ok",
            &[("SANDBOX_TASKS", "3"), ("SANDBOX_DURATION", "100ms")],
            json!({}),
        ),
    )
    .await;
    let first = wait_for(&api, "wfe-ok", "Running", running).await;
    assert!(
        succeeded(&first)
            .unwrap()
            .2
            .starts_with("Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 3")
    );
    let pr = wait_for(&api, "wfe-ok", "a finished run", done).await;
    assert_eq!(
        succeeded(&pr),
        Some((
            "True".into(),
            "Succeeded".into(),
            "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 0".into()
        ))
    );
    let status = &pr.data["status"];
    assert!(status["startTime"].is_string() && status["completionTime"].is_string());
    let refs = status["childReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 3);
    assert_eq!(
        refs[0],
        json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "wfe-ok-task-1", "pipelineTaskName": "task-1"})
    );
    let trs = taskruns_of(&client, "wfe-ok").await;
    assert_eq!(trs.len(), 3);
    for tr in &trs {
        assert_eq!(tr.data["status"]["conditions"][0]["reason"], "Succeeded");
        assert_eq!(tr.data["status"]["steps"][0]["terminated"]["exitCode"], 0);
        assert_eq!(
            tr.metadata.owner_references.as_ref().unwrap()[0].kind,
            "PipelineRun"
        );
        assert_eq!(
            tr.metadata.labels.as_ref().unwrap()["kubernaut.ai/workflow-execution"],
            "wfe-ok"
        );
        assert_eq!(tr.data["spec"]["serviceAccountName"], "runner");
    }
    let events = reasons(&events_about(&client, NS, "wfe-ok").await);
    assert!(events.iter().any(|(r, _)| r == "Succeeded"), "{events:?}");
    sb.shutdown().await;
}

#[tokio::test]
async fn failing_task_reports_exit_code_and_skips_the_rest() {
    let (sb, client) = sandbox().await;
    let params = [
        ("SANDBOX_TASKS", "3"),
        ("SANDBOX_DURATION", "0s"),
        ("SANDBOX_OUTCOME", "fail-task:1:7"),
    ];
    let api = create(&client, &pipelinerun("wfe-fail", &params, json!({}))).await;
    let pr = wait_for(&api, "wfe-fail", "a finished run", done).await;
    assert_eq!(
        succeeded(&pr),
        Some((
            "False".into(),
            "Failed".into(),
            "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1".into()
        ))
    );
    let trs = taskruns_of(&client, "wfe-fail").await;
    assert_eq!(trs.len(), 2);
    let failed = &trs[1].data["status"];
    assert_eq!(failed["conditions"][0]["status"], "False");
    assert_eq!(failed["steps"][0]["terminated"]["exitCode"], 7);
    assert_eq!(failed["steps"][0]["container"], "step-run");
    sb.shutdown().await;
}

#[tokio::test]
async fn hanging_pipeline_times_out() {
    let (sb, client) = sandbox().await;
    let extra = json!({"timeouts": {"pipeline": "1s"}});
    let api = create(
        &client,
        &pipelinerun("wfe-slow", &[("SANDBOX_OUTCOME", "hang")], extra),
    )
    .await;
    let pr = wait_for(&api, "wfe-slow", "a finished run", done).await;
    assert_eq!(
        succeeded(&pr),
        Some((
            "False".into(),
            "PipelineRunTimeout".into(),
            "PipelineRun \"wfe-slow\" failed to finish within \"1s\"".into()
        ))
    );
    let trs = taskruns_of(&client, "wfe-slow").await;
    assert_eq!(
        trs[0].data["status"]["conditions"][0]["reason"],
        "TaskRunCancelled"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn cancelling_stops_the_run() {
    let (sb, client) = sandbox().await;
    let api = create(
        &client,
        &pipelinerun("wfe-cancel", &[("SANDBOX_OUTCOME", "hang")], json!({})),
    )
    .await;
    wait_for(&api, "wfe-cancel", "Running", running).await;
    let patch = json!({"spec": {"status": "Cancelled"}});
    api.patch("wfe-cancel", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("cancel");
    let pr = wait_for(&api, "wfe-cancel", "a finished run", done).await;
    assert_eq!(
        succeeded(&pr),
        Some((
            "False".into(),
            "Cancelled".into(),
            "PipelineRun \"wfe-cancel\" was cancelled".into()
        ))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn unknown_bundle_is_couldnt_get_pipeline() {
    let (sb, client) = sandbox().await;
    let api = create(
        &client,
        &pipelinerun(
            "wfe-nobundle",
            &[("SANDBOX_OUTCOME", "bundle-not-found")],
            json!({}),
        ),
    )
    .await;
    let pr = wait_for(&api, "wfe-nobundle", "a finished run", done).await;
    let (status, reason, message) = succeeded(&pr).unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CouldntGetPipeline")
    );
    assert!(
        message.starts_with("Error retrieving pipeline for pipelinerun default/wfe-nobundle: "),
        "{message}"
    );
    assert!(taskruns_of(&client, "wfe-nobundle").await.is_empty());
    sb.shutdown().await;
}

#[tokio::test]
async fn without_tekton_crds_pipelineruns_are_not_served() {
    let config = SandboxConfig {
        install_tekton_crds: false,
        ..SandboxConfig::default()
    };
    let (sb, client) = sandbox_with(config).await;
    let err = pipelineruns(&client)
        .create(
            &PostParams::default(),
            &pipelinerun("wfe-x", &[], json!({})),
        )
        .await;
    match err {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    sb.shutdown().await;
}
