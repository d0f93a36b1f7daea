//! Raw HTTP: bad requests get Kubernetes `Status` errors (never a panic or a hung connection);
//! and a data directory keeps objects across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use wfe_sandbox::SandboxConfig;

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    ct: &str,
    body: &str,
) -> (u16, Value) {
    let resp = client
        .request(method.parse().unwrap(), url)
        .header("content-type", ct)
        .body(body.to_string())
        .send()
        .await
        .expect("server answers");
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON body");
    (code, body)
}

#[tokio::test]
async fn bad_requests_get_status_objects() {
    let sb = common::start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = sb.url();
    let cms = format!("{base}/api/v1/namespaces/default/configmaps");
    let cases: Vec<(&str, String, &str, &str, u16, &str)> = vec![
        (
            "POST",
            cms.clone(),
            "application/json",
            "{not json",
            400,
            "BadRequest",
        ),
        (
            "POST",
            cms.clone(),
            "application/json",
            "[1,2]",
            400,
            "BadRequest",
        ),
        (
            "POST",
            cms.clone(),
            "application/json",
            r#"{"metadata":{"name":"Bad_Name"}}"#,
            422,
            "Invalid",
        ),
        (
            "POST",
            cms.clone(),
            "application/json",
            r#"{"metadata":{}}"#,
            422,
            "Invalid",
        ),
        (
            "POST",
            cms.clone(),
            "application/json",
            r#"{"kind":"Secret","metadata":{"name":"x"}}"#,
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{base}/api/v1/namespaces/default/widgets"),
            "application/json",
            "",
            404,
            "NotFound",
        ),
        (
            "GET",
            format!("{base}/apis/nope.io/v1/things"),
            "application/json",
            "",
            404,
            "NotFound",
        ),
        (
            "GET",
            format!("{cms}/missing"),
            "application/json",
            "",
            404,
            "NotFound",
        ),
        (
            "GET",
            format!("{cms}?labelSelector=a%20in%20b"),
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{cms}?limit=x"),
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{cms}?continue=zz"),
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            "GET",
            format!("{cms}?watch=true&resourceVersion=abc"),
            "application/json",
            "",
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            format!("{cms}/missing"),
            "text/plain",
            "{}",
            415,
            "UnsupportedMediaType",
        ),
        (
            "PATCH",
            format!("{cms}/missing"),
            "application/merge-patch+json",
            "{}",
            404,
            "NotFound",
        ),
        (
            "PUT",
            cms.clone(),
            "application/json",
            "{}",
            405,
            "MethodNotAllowed",
        ),
        (
            "DELETE",
            format!("{cms}/x"),
            "application/json",
            r#"{"propagationPolicy":"Sideways"}"#,
            422,
            "Invalid",
        ),
    ];
    for (method, url, ct, body, want_code, want_reason) in cases {
        let (code, status) = call(&http, method, &url, ct, body).await;
        assert_eq!(code, want_code, "{method} {url} {body}: {status}");
        assert_eq!(status["kind"], "Status", "{status}");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], want_reason, "{method} {url}: {status}");
        assert_eq!(status["code"], want_code);
    }
    let (_, invalid) = call(
        &http,
        "POST",
        &cms,
        "application/json",
        r#"{"metadata":{"name":"Bad_Name"}}"#,
    )
    .await;
    assert_eq!(invalid["details"]["causes"][0]["field"], "metadata.name");

    // The server still works after all that.
    let api: Api<ConfigMap> = Api::namespaced(sb.kube_client().unwrap(), "default");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "ok"}})).unwrap(),
    )
    .await
    .unwrap();
    sb.shutdown().await;
}

#[tokio::test]
async fn data_dir_keeps_objects_and_crds_across_restart() {
    let dir = std::env::temp_dir().join(format!("sandbox-data-{}", uuid::Uuid::new_v4()));
    let config = SandboxConfig {
        data_dir: Some(dir.clone()),
        ..SandboxConfig::default()
    };
    let sb = common::start_with(config.clone()).await;
    let client = sb.kube_client().unwrap();
    common::install_widgets(&client).await;
    let created = common::widgets(&client, "default")
        .create(&PostParams::default(), &common::widget("keep", "ns/a"))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap(),
        )
        .await
        .unwrap();
    }
    api.delete("c0", &Default::default()).await.unwrap();
    let rv_before = sb.store().current_rv();
    sb.shutdown().await;

    let sb = common::start_with(config).await;
    let client = sb.kube_client().unwrap();
    let w = common::widgets(&client, "default")
        .get("keep")
        .await
        .expect("custom resource survived, CRD served");
    assert_eq!(w.metadata.uid, created.metadata.uid);
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["c1", "c2", "c3", "c4"]);
    assert!(
        sb.store().current_rv() >= rv_before,
        "resourceVersions keep increasing"
    );
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
