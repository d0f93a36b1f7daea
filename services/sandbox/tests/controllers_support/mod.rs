//! Shared helpers of the controller integration tests: an in-process sandbox with
//! controllers, object builders, and waits with deadlines (never blind sleeps).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use wfe_sandbox::{Sandbox, SandboxConfig};

/// How long any wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A sandbox with both controllers and its client.
pub async fn sandbox() -> (Sandbox, Client) {
    sandbox_with(SandboxConfig::default()).await
}

/// A sandbox with this config and its client.
pub async fn sandbox_with(config: SandboxConfig) -> (Sandbox, Client) {
    // `RUST_LOG=wfe_sandbox=debug` shows what the controllers do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sb = Sandbox::start(config).await.expect("sandbox starts");
    let client = sb.kube_client().expect("client");
    (sb, client)
}

/// Waits until `name` satisfies `cond` (a kube-rs watch), failing after [`DEADLINE`].
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let last = api.clone();
    match tokio::time::timeout(DEADLINE, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("{name}: deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("{name}: watch failed while waiting for {what}: {e}"),
        Err(_) => panic!(
            "{name}: no {what} within {DEADLINE:?}; last seen: {:#?}",
            last.get_opt(name).await
        ),
    }
}

/// Waits until `name` is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let gone = |obj: Option<&K>| obj.is_none();
    let _ = tokio::time::timeout(DEADLINE, await_condition(api.clone(), name, gone))
        .await
        .unwrap_or_else(|_| panic!("{name} still exists after {DEADLINE:?}"));
}

/// Polls `check` every 50 ms until it returns `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not true within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events in `namespace` about objects whose name starts with `prefix`.
pub async fn events_about(client: &Client, namespace: &str, prefix: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

/// `(reason, message)` of events.
pub fn reasons(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect()
}
