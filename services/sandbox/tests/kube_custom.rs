//! kube-rs against custom resources: CRD establishment, schema validation (422 naming the
//! field), `self == oldSelf`, pruning and defaults, selectable fields, status subresource, and
//! watchers/reflectors that survive a history compaction (410 Gone) by relisting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{code, eventually, widget, widgets};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, conditions, reflector, wait::await_condition, watcher};
use serde_json::json;
use wfe_sandbox::SandboxConfig;

#[tokio::test]
async fn crd_becomes_established_and_served() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let est = await_condition(
        crds,
        "widgets.test.sandbox.io",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(5), est)
        .await
        .unwrap()
        .unwrap();
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery.get("test.sandbox.io").expect("group discovered");
    let (ar, caps) = group.recommended_kind("Widget").expect("kind discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    sb.shutdown().await;
}

#[tokio::test]
async fn schema_validation_defaults_and_pruning() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let api = widgets(&client, "default");

    let mut w = widget("w1", "default/deploy-a");
    w.data["spec"]["unknown"] = json!("dropped");
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["mode"], "fast", "default applied");
    assert!(
        created.data["spec"].get("unknown").is_none(),
        "unknown field pruned"
    );

    let mut missing = widget("w2", "x");
    missing.data["spec"] = json!({"replicas": 50, "mode": "warp"});
    let err = api
        .create(&PostParams::default(), &missing)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("api error expected")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    for field in ["spec.targetResource", "spec.replicas", "spec.mode"] {
        assert!(
            status.message.contains(field),
            "message names {field}: {}",
            status.message
        );
    }

    // Immutable field (CEL `self == oldSelf`): changing it is rejected with the CRD's message.
    let err = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"targetResource": "default/other"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("api error expected")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.targetResource") && status.message.contains("immutable"),
        "{}",
        status.message
    );
    let ok = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(ok.data["spec"]["replicas"], 3);
    assert_eq!(ok.metadata.generation, Some(2));
    sb.shutdown().await;
}

#[tokio::test]
async fn custom_status_subresource_and_selectable_fields() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let api = widgets(&client, "default");
    api.create(&PostParams::default(), &widget("a", "default/x"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &widget("b", "default/y"))
        .await
        .unwrap();

    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "reason": "Up"}]}});
    let st = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Running");
    assert_eq!(st.metadata.generation, Some(1));
    let main = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.data["status"]["phase"], "Running",
        "main resource writes keep status"
    );
    let applied = api
        .patch_status("a", &PatchParams::apply("tests").force(), &Patch::Apply(json!({"apiVersion": "test.sandbox.io/v1", "kind": "Widget", "status": {"phase": "Done"}})))
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Done");

    let hits = api
        .list(&ListParams::default().fields("spec.targetResource=default/y"))
        .await
        .unwrap();
    assert_eq!(
        hits.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(),
        ["b"]
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn watch_from_compacted_version_gets_410() {
    let sb = common::start_with(SandboxConfig {
        history_size: 4,
        ..SandboxConfig::default()
    })
    .await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let api = widgets(&client, "default");
    let first = api
        .create(&PostParams::default(), &widget("w0", "ns/a"))
        .await
        .unwrap();
    for i in 1..10 {
        api.create(&PostParams::default(), &widget(&format!("w{i}"), "ns/a"))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Expired, got {other:?}"),
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn reflector_relists_after_history_compaction_and_converges() {
    let sb = common::start_with(SandboxConfig {
        history_size: 16,
        ..SandboxConfig::default()
    })
    .await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let api = widgets(&client, "default");

    let writer = reflector::store::Writer::new(common::widget_resource());
    let reader = writer.as_reader();
    let inits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = inits.clone();
    let stream = watcher(api.clone(), watcher::Config::default())
        .map(move |ev| {
            if matches!(ev, Ok(watcher::Event::Init)) {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            ev
        })
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
    let task = tokio::spawn(stream);
    reader.wait_until_ready().await.unwrap();

    // More events than the ring holds, then a compaction that ends the open watch with 410.
    for i in 0..40 {
        api.create(&PostParams::default(), &widget(&format!("w{i}"), "ns/a"))
            .await
            .unwrap();
    }
    sb.expire_watches();
    for i in 0..20 {
        api.delete(&format!("w{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    api.patch(
        "w30",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
    )
    .await
    .unwrap();

    eventually(10, "reflector converges on the server state", || async {
        let names: std::collections::BTreeSet<String> =
            reader.state().iter().map(|o| o.name_any()).collect();
        let labelled = reader
            .state()
            .iter()
            .any(|o| o.name_any() == "w30" && o.labels().get("seen").is_some());
        (names.len() == 20
            && names.iter().all(|n| n[1..].parse::<u32>().unwrap() >= 20)
            && labelled)
            .then_some(())
    })
    .await;
    assert!(
        inits.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the watcher relisted after 410"
    );
    task.abort();
    sb.shutdown().await;
}

#[tokio::test]
async fn label_filtered_watch_sees_objects_leave_and_enter() {
    let sb = common::start().await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let api = widgets(&client, "default");
    let mut w = widget("w", "ns/a");
    w.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    let wp = WatchParams::default().labels("team=a");
    let mut stream = api
        .watch(&wp, &created.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    )
    .await
    .unwrap();
    let kinds: Vec<&str> = stream
        .by_ref()
        .take(2)
        .map(|e| match e.unwrap() {
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Added(_) => "ADDED",
            _ => "OTHER",
        })
        .collect()
        .await;
    assert_eq!(kinds, ["DELETED", "ADDED"]);
    assert_eq!(code(api.get("nope").await).0, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn idle_watch_gets_bookmarks_and_ends_at_timeout() {
    let config = SandboxConfig {
        bookmark_interval: Duration::from_millis(50),
        ..SandboxConfig::default()
    };
    let sb = common::start_with(config).await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let api = widgets(&client, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().timeout(2);
    let mut stream = api.watch(&wp, &rv).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
    {
        Some(Ok(WatchEvent::Bookmark(b))) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // The server closes the stream once timeoutSeconds passed.
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        rest.iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_))))
    );
    sb.shutdown().await;
}
