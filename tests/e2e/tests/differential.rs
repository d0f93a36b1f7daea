//! The sandbox against a real control plane: one scripted sequence of API calls runs
//! on both, and what the product relies on must come out the same. Each step records
//! an observation (status codes and reasons, what was stored, what a selector, a
//! watch or the garbage collector returned); the two transcripts are compared line by
//! line. The differences the sandbox keeps on purpose are listed in [`KNOWN`] with
//! what each backend says, so a difference that appears, or one that goes away,
//! fails the test until the sandbox or the list is changed.
//!
//! It needs the real control plane (tests/control-plane/build): it runs in
//! tests/run's real pass (`WFE_E2E_BACKEND=real`) and says it skipped otherwise.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, PropagationPolicy, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use wfe_e2e::{Backend, Stack, StackOptions};

const NS: &str = "kubernaut-system";
const WORKFLOWS: &str = "kubernaut-workflows";

/// Steps whose observations differ on purpose: (step, sandbox says, real says). The
/// sandbox crate docs list each with why.
const KNOWN: &[(&str, &str, &str)] = &[(
    "pod refused by PodSecurity restricted",
    "created",
    "403 Forbidden violates PodSecurity",
)];

fn wfe_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubernaut.ai", "v1alpha1", "WorkflowExecution"),
        "workflowexecutions",
    )
}

fn wfe(name: &str, rr: &str, target: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "kubernaut.ai/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"name": name, "namespace": NS, "labels": {"differential": "yes", "which": name}},
        "spec": {
            "remediationRequestRef": {"name": rr, "namespace": NS},
            "targetResource": target,
            "workflowRef": {"workflowId": "wf", "workflowName": "wf", "actionType": "Restart",
                "version": "1.0.0", "containerImage": wfe_e2e::request::IMAGE},
            "notAField": "pruned"
        },
        "status": {"phase": "Completed"}
    }))
    .unwrap()
}

/// `code Reason` of a refused call, or `ok`.
fn outcome<T>(r: &Result<T, kube::Error>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(kube::Error::Api(s)) => format!("{} {}", s.code, s.reason),
        Err(other) => format!("error {other}"),
    }
}

/// A refusal with a phrase of its message the product (or a person) depends on.
fn refusal<T>(r: &Result<T, kube::Error>, phrase: &str) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.message.contains(phrase) => {
            format!("{} {} {phrase}", s.code, s.reason)
        }
        Err(kube::Error::Api(s)) => format!("{} {} (message: {})", s.code, s.reason, s.message),
        Ok(_) => "created".to_owned(),
        Err(other) => format!("error {other}"),
    }
}

fn names(list: &[DynamicObject]) -> String {
    let mut n: Vec<String> = list
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    n.sort();
    n.join(",")
}

/// Polls `f` for up to 60 s until it returns `Some`.
async fn within<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The script; returns (step, observation) in order.
async fn script(client: kube::Client) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &wfe_resource());
    let pp = PostParams::default();

    let created = api
        .create(&pp, &wfe("wfe-a", "rr-a", "default/Deployment/a"))
        .await;
    out.push(("create", outcome(&created)));
    let a = created.unwrap();
    out.push((
        "status dropped on create (status subresource)",
        format!("{:?}", a.data.get("status")),
    ));
    out.push((
        "unknown spec field pruned",
        format!("{:?}", a.data["spec"].get("notAField")),
    ));
    out.push((
        "defaults applied",
        format!("{}", a.data["spec"].get("executionEngine").is_some()),
    ));
    api.create(&pp, &wfe("wfe-b", "rr-b", "default/Deployment/b"))
        .await
        .unwrap();

    out.push((
        "create again",
        outcome(&api.create(&pp, &wfe("wfe-a", "rr-a", "x")).await),
    ));
    out.push(("get missing", outcome(&api.get("wfe-none").await)));

    let mut bad = wfe("wfe-bad", "rr-bad", "t");
    bad.data["spec"]["targetResource"] = json!(5);
    out.push(("schema: wrong type", outcome(&api.create(&pp, &bad).await)));
    let mut missing = wfe("wfe-missing", "rr-m", "t");
    missing.data["spec"]
        .as_object_mut()
        .unwrap()
        .remove("workflowRef");
    out.push((
        "schema: required field missing",
        outcome(&api.create(&pp, &missing).await),
    ));

    // The status subresource: a status write takes the status only, and carries the
    // resourceVersion it read.
    let mut with_status = a.clone();
    with_status.data["status"] = json!({"phase": "Running"});
    with_status.data["spec"]["targetResource"] = json!("changed/through/status");
    let written = api.replace_status("wfe-a", &pp, &with_status).await;
    out.push(("status write", outcome(&written)));
    let written = written.unwrap();
    out.push((
        "status write ignores spec",
        format!(
            "{} {}",
            written.data["spec"]["targetResource"], written.data["status"]["phase"]
        ),
    ));
    out.push((
        "status write with a stale resourceVersion",
        outcome(&api.replace_status("wfe-a", &pp, &with_status).await),
    ));

    // Spec is immutable (CEL self == oldSelf).
    let patch = json!({"spec": {"targetResource": "default/Deployment/other"}});
    out.push((
        "spec change refused by CEL",
        refusal(
            &api.patch("wfe-a", &PatchParams::default(), &Patch::Merge(&patch))
                .await,
            "spec is immutable",
        ),
    ));
    let labels = json!({"metadata": {"labels": {"extra": "1"}}});
    out.push((
        "metadata merge patch",
        outcome(
            &api.patch("wfe-a", &PatchParams::default(), &Patch::Merge(&labels))
                .await,
        ),
    ));

    // Selectors.
    let by_label = api
        .list(&ListParams::default().labels("differential=yes,which!=wfe-b"))
        .await
        .unwrap();
    out.push(("label selector", names(&by_label.items)));
    let by_field = api
        .list(&ListParams::default().fields("spec.remediationRequestRef.name=rr-b"))
        .await
        .unwrap();
    out.push(("selectableFields field selector", names(&by_field.items)));
    out.push((
        "field selector on a field that is not selectable",
        outcome(
            &api.list(&ListParams::default().fields("spec.rationale=x"))
                .await,
        ),
    ));
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    out.push((
        "paginated list",
        format!(
            "{} item, continue {}",
            page.items.len(),
            page.metadata.continue_.is_some()
        ),
    ));

    // Watch from a list's resourceVersion sees what follows; an ancient one is 410.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    api.patch("wfe-b", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    let seen = match next {
        Ok(Some(Ok(WatchEvent::Modified(o)))) => {
            format!("MODIFIED {}", o.metadata.name.unwrap_or_default())
        }
        other => format!("{other:?}"),
    };
    out.push(("watch resumes from a list's resourceVersion", seen));
    out.push((
        "watch from a compacted resourceVersion",
        ancient_watch(&api).await,
    ));

    // Table output (kubectl's printer columns).
    out.push(("printer columns", printer_columns(&client).await));

    gc_steps(&client, &mut out).await;
    quota_steps(&client, &mut out).await;
    out.push((
        "pod refused by PodSecurity restricted",
        privileged_pod(&client).await,
    ));
    out.push((
        "pod with a missing service account",
        missing_account_pod(&client).await,
    ));
    out
}

/// A watch from resourceVersion 1: long gone from any history after the writes above.
async fn ancient_watch(api: &Api<DynamicObject>) -> String {
    match api.watch(&WatchParams::default().timeout(5), "1").await {
        Err(e) => format!("refused: {}", outcome::<()>(&Err(e))),
        Ok(stream) => {
            let mut stream = stream.boxed();
            match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                Ok(Some(Ok(WatchEvent::Error(e)))) => format!("{} {}", e.code, e.reason),
                Ok(Some(Err(kube::Error::Api(e)))) => format!("{} {}", e.code, e.reason),
                other => format!("{other:?}"),
            }
        }
    }
}

async fn printer_columns(client: &kube::Client) -> String {
    let request = http::Request::get(format!(
        "/apis/kubernaut.ai/v1alpha1/namespaces/{NS}/workflowexecutions"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: Value = client.request(request).await.unwrap();
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    format!(
        "{} ({} rows)",
        columns.join(","),
        table["rows"].as_array().map_or(0, Vec::len)
    )
}

/// ownerReferences and propagation: background deletes the dependent, orphan keeps
/// it without the reference.
async fn gc_steps(client: &kube::Client, out: &mut Vec<(&'static str, String)>) {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    for (owner, policy, step) in [
        (
            "owner-bg",
            PropagationPolicy::Background,
            "background delete collects the dependent",
        ),
        (
            "owner-orphan",
            PropagationPolicy::Orphan,
            "orphan delete keeps the dependent",
        ),
    ] {
        let owner_map: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": owner}})).unwrap();
        let owner_map = maps.create(&pp, &owner_map).await.unwrap();
        let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {
            "name": format!("{owner}-dep"),
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner,
                                 "uid": owner_map.metadata.uid.clone().unwrap()}]
        }}))
        .unwrap();
        maps.create(&pp, &dependent).await.unwrap();
        let dp = DeleteParams {
            propagation_policy: Some(policy.clone()),
            ..Default::default()
        };
        maps.delete(owner, &dp).await.unwrap();
        let dep_name = format!("{owner}-dep");
        let seen = within(step, || {
            let (maps, dep_name, policy) = (maps.clone(), dep_name.clone(), policy.clone());
            async move {
                let dep = maps.get_opt(&dep_name).await.unwrap();
                match (policy, dep) {
                    (PropagationPolicy::Background, None) => Some("gone".to_owned()),
                    (PropagationPolicy::Orphan, Some(d))
                        if d.metadata
                            .owner_references
                            .as_ref()
                            .is_none_or(Vec::is_empty) =>
                    {
                        Some("kept, no owner".to_owned())
                    }
                    _ => None,
                }
            }
        })
        .await;
        out.push((step, seen));
    }
}

/// A quota of zero ConfigMaps refuses the next one with "exceeded quota", once the
/// quota's usage is known (at once on the sandbox; after the resourcequota controller
/// on a real cluster).
async fn quota_steps(client: &kube::Client, out: &mut Vec<(&'static str, String)>) {
    let quotas: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        WORKFLOWS,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ResourceQuota"),
            "resourcequotas",
        ),
    );
    let quota: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-maps", "namespace": WORKFLOWS},
        "spec": {"hard": {"count/configmaps": "1"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), WORKFLOWS);
    // kube-root-ca.crt (real) takes the one slot; on the sandbox a map of ours does.
    let refused = within("the quota refuses a ConfigMap", || {
        let maps = maps.clone();
        async move {
            let map: ConfigMap =
                serde_json::from_value(json!({"metadata": {"generateName": "over-"}})).unwrap();
            match maps.create(&PostParams::default(), &map).await {
                Ok(_) => None,
                r => Some(refusal(&r, "exceeded quota")),
            }
        }
    })
    .await;
    out.push(("quota refusal", refused));
}

fn pod(name: &str, account: &str, privileged: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "serviceAccountName": account,
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": wfe_e2e::request::IMAGE,
                "securityContext": {"privileged": privileged}}]
        }
    }))
    .unwrap()
}

async fn privileged_pod(client: &kube::Client) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), WORKFLOWS);
    let r = pods
        .create(&PostParams::default(), &pod("privileged", "default", true))
        .await;
    let seen = refusal(&r, "violates PodSecurity");
    let _ = pods.delete("privileged", &DeleteParams::default()).await;
    seen
}

async fn missing_account_pod(client: &kube::Client) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let r = pods
        .create(&PostParams::default(), &pod("no-account", "nobody", false))
        .await;
    refusal(&r, "serviceaccount \"nobody\" not found")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_answers_as_a_real_control_plane_does() {
    if Backend::from_env().expect("backend") != Backend::Real {
        eprintln!(
            "skipped: needs the real control plane (WFE_E2E_BACKEND=real, tests/run's second pass)"
        );
        return;
    }
    let only_cluster = |b| StackOptions::default().counts(0, 0, 0).on(b);
    let sandbox = Stack::start(only_cluster(Backend::Sandbox))
        .await
        .expect("sandbox");
    let real = Stack::start(only_cluster(Backend::Real))
        .await
        .expect("real cluster");
    let (on_sandbox, on_real) = tokio::join!(
        script(sandbox.kube_client().await.unwrap()),
        script(real.kube_client().await.unwrap())
    );
    let mut report = Vec::new();
    for ((step, s), (_, r)) in on_sandbox.iter().zip(&on_real) {
        let known = KNOWN.iter().find(|(k, _, _)| k == step);
        let fine = match known {
            Some((_, ks, kr)) => s == ks && r == kr,
            None => s == r,
        };
        if !fine {
            report.push(format!("{step}:\n    sandbox: {s}\n    real:    {r}"));
        }
    }
    assert_eq!(on_sandbox.len(), on_real.len());
    assert!(
        report.is_empty(),
        "the sandbox and the real control plane differ ({} steps; known differences: {KNOWN:?}):\n{}",
        on_real.len(),
        report.join("\n")
    );
}
