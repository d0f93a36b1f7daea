//! Shared helpers for the sandbox integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use wfe_sandbox::{Sandbox, SandboxConfig};

/// The Widget test CRD (printer columns, selectable field, schema with `self == oldSelf`).
pub const WIDGETS_CRD: &str = include_str!("../fixtures/widgets-crd.yaml");

/// A sandbox with the controllers off, so tests see only their own writes.
pub async fn start() -> Sandbox {
    start_with(SandboxConfig::default()).await
}

/// A sandbox with `config`, controllers off.
pub async fn start_with(config: SandboxConfig) -> Sandbox {
    let config = SandboxConfig {
        job_controller: false,
        tekton_controller: false,
        ..config
    };
    Sandbox::start(config).await.expect("sandbox starts")
}

/// The Widget CRD as JSON.
pub fn widgets_crd() -> Value {
    serde_yaml::from_str(WIDGETS_CRD).expect("fixture parses")
}

/// Create the Widget CRD through the API.
pub async fn install_widgets(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widgets_crd()).unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
}

/// The ApiResource of Widgets.
pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.sandbox.io", "v1", "Widget"),
        "widgets",
    )
}

/// Widgets in `ns`.
pub fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &widget_resource())
}

/// A Widget object.
pub fn widget(name: &str, target: &str) -> DynamicObject {
    let mut obj = DynamicObject::new(name, &widget_resource());
    obj.data = serde_json::json!({"spec": {"targetResource": target, "replicas": 1}});
    obj
}

/// Poll `check` until it returns Some, failing after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The API error code of a kube result.
pub fn code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}
