//! Counts Kubernetes API writes as the sandbox's watch streams show them: one
//! ADDED, MODIFIED or DELETED event per write that changed an object. Writes that
//! changed nothing, and refused writes (409 Conflict), are not visible this way.
//!
//! The WorkflowExecution watch also records when each execution's assignment and
//! Running phase were first persisted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
};
use kube::{Api, Client};
use serde_json::Value;

/// The resource kinds the stack writes: (group, version, kind, plural).
pub const KINDS: [(&str, &str, &str, &str); 5] = [
    (
        "kubernaut.ai",
        "v1alpha1",
        "WorkflowExecution",
        "workflowexecutions",
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases"),
    ("batch", "v1", "Job", "jobs"),
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Event", "events"),
];

/// Label of agent liveness Leases: renewed per agent and heartbeat, not per execution.
pub const AGENT_LIVENESS: &str = "Lease (agent liveness)";
/// Label of target-lock Leases.
pub const TARGET_LOCK: &str = "Lease (target lock)";

/// Leases split by role (the API names agent liveness Leases `wfe-agent-…`).
fn lease_role(kind: &'static str, obj: &DynamicObject) -> &'static str {
    if kind != "Lease" {
        return kind;
    }
    match obj.metadata.name.as_deref() {
        Some(n) if n.starts_with("wfe-agent-") => AGENT_LIVENESS,
        _ => TARGET_LOCK,
    }
}

/// Write counts by (kind, event type).
pub type Counts = BTreeMap<(&'static str, &'static str), u64>;

/// When the sandbox's watch first showed an execution assigned and Running.
#[derive(Debug, Default, Clone, Copy)]
pub struct Persisted {
    /// First version with `status.assignment`.
    pub assigned: Option<Instant>,
    /// First version in phase Running.
    pub running: Option<Instant>,
}

/// Shared counters, filled by one watch task per kind.
#[derive(Debug, Default, Clone)]
pub struct WriteCounter {
    counts: Arc<Mutex<Counts>>,
    persisted: Arc<Mutex<HashMap<String, Persisted>>>,
    /// The last status seen of each WorkflowExecution, to tell what a write changed.
    last_status: Arc<Mutex<HashMap<String, Value>>>,
    /// WorkflowExecution writes by what they changed.
    changes: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl WriteCounter {
    /// The counts so far.
    pub fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// WorkflowExecution writes by what they changed, so far.
    pub fn changes(&self) -> BTreeMap<String, u64> {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the sandbox showed of execution `name`.
    pub fn persisted(&self, name: &str) -> Persisted {
        let map = self.persisted.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).copied().unwrap_or_default()
    }

    /// Starts one watch per kind of [`KINDS`], across all namespaces.
    pub fn spawn(&self, client: &Client) -> Vec<tokio::task::JoinHandle<()>> {
        KINDS
            .iter()
            .map(|&(g, v, k, plural)| {
                let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural);
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                tokio::spawn(self.clone().follow(api, k))
            })
            .collect()
    }

    async fn follow(self, api: Api<DynamicObject>, kind: &'static str) {
        loop {
            if let Err(e) = self.follow_once(&api, kind).await {
                eprintln!("sandbox watch of {kind}: {e}; watching again");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lists for a resourceVersion, then counts every change after it.
    async fn follow_once(
        &self,
        api: &Api<DynamicObject>,
        kind: &'static str,
    ) -> anyhow::Result<()> {
        let mut rv = api
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        loop {
            let wp = WatchParams::default().timeout(290);
            let mut stream = api.watch(&wp, &rv).await?.boxed();
            while let Some(ev) = stream.try_next().await? {
                let at = Instant::now();
                let (ty, obj) = match ev {
                    WatchEvent::Added(o) => ("ADDED", o),
                    WatchEvent::Modified(o) => ("MODIFIED", o),
                    WatchEvent::Deleted(o) => ("DELETED", o),
                    WatchEvent::Bookmark(b) => {
                        rv = b.metadata.resource_version;
                        continue;
                    }
                    WatchEvent::Error(e) => anyhow::bail!("watch error: {}", e.message),
                };
                rv = obj.metadata.resource_version.clone().unwrap_or(rv);
                self.count(lease_role(kind, &obj), ty);
                if kind == "WorkflowExecution" {
                    self.note_execution(&obj, at);
                    self.classify(&obj, ty);
                }
            }
        }
    }

    fn count(&self, kind: &'static str, ty: &'static str) {
        // (kind is a label of the report from here on)
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry((kind, ty)).or_default() += 1;
    }

    fn note_execution(&self, obj: &DynamicObject, at: Instant) {
        let Some(name) = obj.metadata.name.clone() else {
            return;
        };
        let status = &obj.data["status"];
        let mut map = self.persisted.lock().unwrap_or_else(|p| p.into_inner());
        let p = map.entry(name).or_default();
        if !status["assignment"].is_null() && p.assigned.is_none() {
            p.assigned = Some(at);
        }
        if status["phase"] == "Running" && p.running.is_none() {
            p.running = Some(at);
        }
    }
}

impl WriteCounter {
    /// Counts one WorkflowExecution write under what it changed in the status.
    fn classify(&self, obj: &DynamicObject, ty: &'static str) {
        let Some(name) = obj.metadata.name.clone() else {
            return;
        };
        let status = obj.data.get("status").cloned().unwrap_or(Value::Null);
        let before = {
            let mut last = self.last_status.lock().unwrap_or_else(|p| p.into_inner());
            last.insert(name, status.clone())
        };
        let label = match ty {
            "MODIFIED" => changed(&before.unwrap_or(Value::Null), &status),
            other => other.to_lowercase(),
        };
        let mut c = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(label).or_default() += 1;
    }
}

/// What differs between two statuses: `phase→Running`, changed top-level fields,
/// and the types of the conditions that changed (`conditions[Dispatched]`).
fn changed(before: &Value, after: &Value) -> String {
    let empty = serde_json::Map::new();
    let (b, a) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys.into_iter().filter(|k| b.get(*k) != a.get(*k)) {
        let (bk, ak) = (
            b.get(k).unwrap_or(&Value::Null),
            a.get(k).unwrap_or(&Value::Null),
        );
        match k.as_str() {
            "phase" => out.push(format!("phase→{}", ak.as_str().unwrap_or("?"))),
            "conditions" => out.push(format!("conditions[{}]", changed_conditions(bk, ak))),
            "observedGeneration" | "message" => {}
            _ => out.push(k.clone()),
        }
    }
    if out.is_empty() {
        "no status change".to_owned()
    } else {
        out.join(" ")
    }
}

/// Types of the conditions whose status, reason or message changed.
fn changed_conditions(before: &Value, after: &Value) -> String {
    let find = |list: &Value, ty: &str| -> Option<Value> {
        list.as_array()?.iter().find(|c| c["type"] == ty).cloned()
    };
    let mut types: Vec<String> = after
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str().map(str::to_owned))
        .filter(|t| {
            let strip = |c: Option<Value>| {
                c.map(|c| {
                    (
                        c["status"].clone(),
                        c["reason"].clone(),
                        c["message"].clone(),
                    )
                })
            };
            strip(find(before, t)) != strip(find(after, t))
        })
        .collect();
    types.sort();
    types.join(",")
}

/// `after - before`, kind by kind.
pub fn diff(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (*k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// A client of the sandbox at `url` (no credentials: the sandbox needs none).
pub async fn client(kubeconfig: &std::path::Path) -> anyhow::Result<Client> {
    wfe_control_plane::kubeconfig::client(kubeconfig).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_what_a_status_write_changed() {
        let before =
            json!({"phase": "Pending", "conditions": [{"type": "Dispatched", "status": "False"}]});
        let after = json!({"phase": "Running", "assignment": {"agentId": "a"},
            "conditions": [{"type": "Dispatched", "status": "True"}, {"type": "ExecutionRunning", "status": "True"}]});
        assert_eq!(
            changed(&before, &after),
            "assignment conditions[Dispatched,ExecutionRunning] phase→Running"
        );
        assert_eq!(changed(&Value::Null, &json!({})), "no status change");
    }
}
