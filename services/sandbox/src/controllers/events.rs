//! Kubernetes Events (`core/v1`) recorded the way client-go's legacy recorder does:
//! named `<object>.<hex nanos>`, with `source`, `count`, `firstTimestamp` and
//! `lastTimestamp`; an identical event repeated for the same object bumps `count`.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use parking_lot::Mutex;
use serde_json::json;

/// The node every simulated pod runs on.
pub const NODE_NAME: &str = "sandbox-node";

/// An event a decision function wants recorded about the object it decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDraft {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// Machine-readable reason, e.g. `SuccessfulCreate`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// `spec.containers{workflow}` for container-level kubelet events.
    pub field_path: Option<String>,
}

impl EventDraft {
    /// A `Normal` event.
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason: reason.to_string(),
            message: message.into(),
            field_path: None,
        }
    }

    /// A `Warning` event.
    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            ..Self::normal(reason, message)
        }
    }

    /// The same event, about one container of a pod.
    pub fn on_container(mut self, container: &str) -> Self {
        self.field_path = Some(format!("spec.containers{{{container}}}"));
        self
    }
}

/// Builds the Event object for a draft (pure; `count` and `first` from aggregation).
pub fn build_event(
    object: &ObjectReference,
    draft: &EventDraft,
    component: &str,
    name: String,
    first: Timestamp,
    now: Timestamp,
    count: i32,
) -> Event {
    let mut involved = object.clone();
    involved.field_path.clone_from(&draft.field_path);
    let host = (component == "kubelet").then(|| NODE_NAME.to_string());
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: object.namespace.clone(),
            ..Default::default()
        },
        involved_object: involved,
        reason: Some(draft.reason.clone()),
        message: Some(draft.message.clone()),
        type_: Some(if draft.warning { "Warning" } else { "Normal" }.to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: host.clone(),
        }),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(host.unwrap_or_else(|| component.to_string())),
        first_timestamp: Some(Time(first)),
        last_timestamp: Some(Time(now)),
        count: Some(count),
        ..Default::default()
    }
}

/// The name client-go gives an event: `<object name>.<hex unix nanos>`.
pub fn event_name(object_name: &str, now: Timestamp) -> String {
    format!("{object_name}.{:x}", now.as_nanosecond())
}

/// What identifies "the same event again" for aggregation.
type AggregationKey = (String, String, String, String, String, bool);

#[derive(Clone, Debug)]
struct Seen {
    name: String,
    count: i32,
}

/// Writes events through the API, aggregating repeats into `count`.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    seen: Arc<Mutex<HashMap<AggregationKey, Seen>>>,
}

/// The aggregation cache is bounded; past this it starts afresh (like client-go's LRU).
const MAX_SEEN: usize = 4096;

impl Recorder {
    /// A recorder for one reporting component (`job-controller`, `kubelet`, ...).
    pub fn new(client: Client, component: &str) -> Self {
        Self {
            client,
            component: component.to_string(),
            seen: Arc::default(),
        }
    }

    /// Records each draft about `object`; failures are logged, never fatal, because
    /// losing an event must not stop a controller (client-go behaves the same).
    pub async fn record_all(&self, object: &ObjectReference, drafts: &[EventDraft]) {
        for draft in drafts {
            if let Err(error) = self.record(object, draft).await {
                tracing::warn!(%error, reason = %draft.reason, "recording event failed");
            }
        }
    }

    async fn record(&self, object: &ObjectReference, draft: &EventDraft) -> kube::Result<()> {
        let namespace = object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = self.key(object, draft);
        let now = Timestamp::now();
        let previous = self.seen.lock().get(&key).cloned();
        if let Some(seen) = previous {
            let count = seen.count + 1;
            let patch = json!({"count": count, "lastTimestamp": Time(now)});
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(
                        key,
                        Seen {
                            name: seen.name,
                            count,
                        },
                    );
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let object_name = object.name.clone().unwrap_or_default();
        let name = event_name(&object_name, now);
        let event = build_event(object, draft, &self.component, name.clone(), now, now, 1);
        api.create(&PostParams::default(), &event).await?;
        self.remember(key, Seen { name, count: 1 });
        Ok(())
    }

    fn key(&self, object: &ObjectReference, draft: &EventDraft) -> AggregationKey {
        (
            object.uid.clone().unwrap_or_default(),
            draft.field_path.clone().unwrap_or_default(),
            draft.reason.clone(),
            draft.message.clone(),
            self.component.clone(),
            draft.warning,
        )
    }

    fn remember(&self, key: AggregationKey, seen: Seen) {
        let mut map = self.seen.lock();
        if map.len() >= MAX_SEEN {
            map.clear();
        }
        map.insert(key, seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_has_source_counts_and_times() {
        let object = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some("job-abcde".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let draft = EventDraft::warning("Failed", "Error: ErrImagePull").on_container("workflow");
        let first = Timestamp::from_second(100).unwrap_or(Timestamp::UNIX_EPOCH);
        let now = Timestamp::from_second(160).unwrap_or(Timestamp::UNIX_EPOCH);
        let e = build_event(
            &object,
            &draft,
            "kubelet",
            event_name("job-abcde", now),
            first,
            now,
            3,
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.count, Some(3));
        assert_eq!(
            e.involved_object.field_path.as_deref(),
            Some("spec.containers{workflow}")
        );
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        let source = e.source.unwrap_or_default();
        assert_eq!(source.component.as_deref(), Some("kubelet"));
        assert_eq!(source.host.as_deref(), Some(NODE_NAME));
        assert_eq!(e.first_timestamp, Some(Time(first)));
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        assert!(
            e.metadata
                .name
                .unwrap_or_default()
                .starts_with("job-abcde.")
        );
    }
}
