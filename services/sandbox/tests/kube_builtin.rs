//! kube-rs against built-in resources: CRUD, concurrency, patches, status, selectors, paging,
//! finalizers and garbage collection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{code, eventually};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn configmap_crud_conflicts_and_patches() {
    let sb = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(sb.kube_client().unwrap(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(
        code(
            api.create(&PostParams::default(), &cm("a", json!({})))
                .await
        ),
        (409, "AlreadyExists".into())
    );

    // Update with the current resourceVersion works; reusing the old one is a 409 Conflict.
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "v2".to_string())].into());
    let updated = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());
    assert_eq!(
        code(api.replace("a", &PostParams::default(), &fresh).await),
        (409, "Conflict".into())
    );

    let merged = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.as_ref().unwrap()["m"], "1");
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "2"}])).unwrap();
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["j"], "2");
    let applied = api
        .patch("b", &PatchParams::apply("tests"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "1"}})))
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["x"], "1");
    let reapplied = api
        .patch("b", &PatchParams::apply("tests").force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "2"}})))
        .await
        .unwrap();
    assert_eq!(reapplied.data.as_ref().unwrap()["x"], "2");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(api.get("a").await), (404, "NotFound".into()));
    assert_eq!(
        code(api.delete("a", &DeleteParams::default()).await),
        (404, "NotFound".into())
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn generate_name_and_missing_namespace() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let obj: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert!(created.name_any().starts_with("gen-") && created.name_any().len() == 9);
    let nowhere: Api<ConfigMap> = Api::namespaced(client, "nowhere");
    assert_eq!(
        code(
            nowhere
                .create(&PostParams::default(), &cm("x", json!({})))
                .await
        )
        .0,
        404
    );
    sb.shutdown().await;
}

fn job(name: &str) -> Job {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .unwrap()
}

#[tokio::test]
async fn job_status_subresource_and_generation() {
    let sb = common::start().await;
    let api: Api<Job> = Api::namespaced(sb.kube_client().unwrap(), "default");
    let mut j = job("j");
    j.status = Some(serde_json::from_value(json!({"active": 5})).unwrap());
    let created = api.create(&PostParams::default(), &j).await.unwrap();
    assert!(created.status.is_none(), "status is ignored on create");
    assert_eq!(created.metadata.generation, Some(1));

    let st = api
        .patch_status(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"active": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.as_ref().unwrap().active, Some(1));
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    // A main-resource write cannot change status but spec changes bump generation.
    let patched = api
        .patch(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"parallelism": 2}, "status": {"active": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().unwrap().active, Some(1));
    assert_eq!(patched.metadata.generation, Some(2));
    let labels_only = api
        .patch(
            "j",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labels_only.metadata.generation, Some(2));

    // replace_status takes only the status of the body.
    let mut body = api.get_status("j").await.unwrap();
    body.status = Some(serde_json::from_value(json!({"succeeded": 1})).unwrap());
    body.spec.as_mut().unwrap().parallelism = Some(7);
    let replaced = api
        .replace_status("j", &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(replaced.status.as_ref().unwrap().succeeded, Some(1));
    assert_eq!(replaced.spec.as_ref().unwrap().parallelism, Some(2));
    sb.shutdown().await;
}

#[tokio::test]
async fn label_field_selectors_and_pagination() {
    let sb = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(sb.kube_client().unwrap(), "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        api.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"tier": tier, "n": i.to_string()})),
        )
        .await
        .unwrap();
    }
    let names = |l: kube::api::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=front"))
                .await
                .unwrap()
        ),
        ["c0", "c2", "c4", "c6"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier in (back),n notin (1)"))
                .await
                .unwrap()
        ),
        ["c3", "c5"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("!tier"))
                .await
                .unwrap()
        )
        .len(),
        0
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=c5"))
                .await
                .unwrap()
        ),
        ["c5"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name!=c5"))
                .await
                .unwrap()
        )
        .len(),
        6
    );
    assert_eq!(
        code(api.list(&ListParams::default().fields("data.k=v")).await).0,
        400
    );

    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        assert!(page.metadata.resource_version.is_some());
        seen.extend(names(page.clone()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sb = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(sb.kube_client().unwrap(), "default");
    let mut obj = cm("f", json!({}));
    obj.metadata.finalizers = Some(vec!["test/hold".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    let pending = api.delete("f", &DeleteParams::default()).await.unwrap();
    let held = pending.left().expect("object still present");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("f")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    api.patch(
        "f",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(code(api.get("f").await).0, 404);
    sb.shutdown().await;
}

async fn job_with_pod(client: &kube::Client, name: &str, block: bool) -> (Api<Job>, Api<Pod>) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let j = jobs
        .create(&PostParams::default(), &job(name))
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": format!("{name}-pod"), "ownerReferences": [{
        "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": j.uid().unwrap(), "controller": true, "blockOwnerDeletion": block}]},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    (jobs, pods)
}

#[tokio::test]
async fn propagation_policies_and_garbage_collection() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();

    let (jobs, pods) = job_with_pod(&client, "bg", false).await;
    jobs.delete("bg", &DeleteParams::background())
        .await
        .unwrap();
    eventually(5, "background GC removes the pod", || async {
        pods.get_opt("bg-pod")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    let (jobs, pods) = job_with_pod(&client, "orphan", false).await;
    jobs.delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    let pod = pods.get("orphan-pod").await.unwrap();
    assert!(
        pod.metadata.owner_references.unwrap_or_default().is_empty(),
        "orphaned pod lost its owner reference"
    );

    // Foreground: the owner stays (foregroundDeletion) until the blocking dependent is gone.
    let (jobs, pods) = job_with_pod(&client, "fg", true).await;
    let mut held: Pod = pods.get("fg-pod").await.unwrap();
    held.metadata.finalizers = Some(vec!["test/hold".into()]);
    pods.replace("fg-pod", &PostParams::default(), &held)
        .await
        .unwrap();
    jobs.delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let owner = eventually(5, "owner marked", || async {
        let j = jobs.get("fg").await.ok()?;
        j.metadata.deletion_timestamp.is_some().then_some(j)
    })
    .await;
    assert!(owner.finalizers().iter().any(|f| f == "foregroundDeletion"));
    eventually(5, "pod marked for deletion", || async {
        pods.get("fg-pod")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    assert!(
        jobs.get_opt("fg").await.unwrap().is_some(),
        "blocked by the pod's finalizer"
    );
    pods.patch(
        "fg-pod",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": []}})),
    )
    .await
    .unwrap();
    eventually(5, "owner deleted after dependent", || async {
        jobs.get_opt("fg").await.unwrap().is_none().then_some(())
    })
    .await;
    sb.shutdown().await;
}

#[tokio::test]
async fn namespace_deletion_removes_contents() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    nss.delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    eventually(5, "namespace gone", || async {
        nss.get_opt("team-a").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(cms.get_opt("c").await.unwrap().is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn metadata_views_and_delete_collection() {
    let sb = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(sb.kube_client().unwrap(), "default");
    for (name, tier) in [("m1", "a"), ("m2", "a"), ("m3", "b")] {
        api.create(&PostParams::default(), &cm(name, json!({"tier": tier})))
            .await
            .unwrap();
    }
    let meta = api.get_metadata("m1").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("m1"));
    let metas = api
        .list_metadata(&ListParams::default().labels("tier=a"))
        .await
        .unwrap();
    assert_eq!(metas.items.len(), 2);
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=a"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(left, ["m3"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_resource_quota_refuses_the_create_past_its_object_count() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let quota = serde_json::from_value(json!({
        "metadata": {"name": "two-configmaps"},
        "spec": {"hard": {"count/configmaps": "2", "cpu": "1"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &cm(name, json!({})))
            .await
            .unwrap();
    }
    let refused = cms
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("an API error: {refused}");
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "configmaps \"c\" is forbidden: exceeded quota: two-configmaps, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"
    );

    // Other namespaces and other resources are not limited; a deletion frees a slot.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    other
        .create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    cms.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
}
