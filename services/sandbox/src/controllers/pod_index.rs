//! Cached Pods by the UID of their controller owner.
//!
//! "The pods of this Job" used to be a scan of every cached Pod on each Job reconcile and
//! each kubelet decision; Pods of finished Jobs stay in the cache, so the cost grew with the
//! cluster's history. The index turns it into a lookup. It is fed the reflector's events
//! after the store applied them and only ever holds candidates: every lookup re-reads the
//! Pod from the store and checks its owner, so a stale entry can never be returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use parking_lot::Mutex;

/// Owner UID → Pods that named it as their controller.
#[derive(Clone, Default)]
pub(crate) struct OwnerIndex {
    by_owner: Arc<Mutex<HashMap<String, HashSet<ObjectRef<Pod>>>>>,
}

impl OwnerIndex {
    /// Follows one reflector event; `store` already reflects it.
    pub(crate) fn observe(&self, event: &watcher::Event<Pod>, store: &Store<Pod>) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => self.insert(pod),
            watcher::Event::Delete(pod) => self.remove(pod),
            // A relist may have missed deletes: rebuild from the complete new state.
            watcher::Event::InitDone => self.rebuild(&store.state()),
            watcher::Event::Init => {}
        }
    }

    /// The cached Pods whose controller owner has `owner_uid`.
    pub(crate) fn pods(&self, store: &Store<Pod>, owner_uid: &str) -> Vec<Arc<Pod>> {
        let refs: Vec<ObjectRef<Pod>> = match self.by_owner.lock().get(owner_uid) {
            Some(refs) => refs.iter().cloned().collect(),
            None => return Vec::new(),
        };
        refs.iter()
            .filter_map(|r| store.get(r))
            .filter(|p| controller_uid(p) == Some(owner_uid))
            .collect()
    }

    fn insert(&self, pod: &Pod) {
        let Some(owner) = controller_uid(pod) else {
            return;
        };
        let mut index = self.by_owner.lock();
        index
            .entry(owner.to_owned())
            .or_default()
            .insert(ObjectRef::from_obj(pod));
    }

    fn remove(&self, pod: &Pod) {
        let Some(owner) = controller_uid(pod) else {
            return;
        };
        let mut index = self.by_owner.lock();
        if let Some(refs) = index.get_mut(owner) {
            refs.remove(&ObjectRef::from_obj(pod));
            if refs.is_empty() {
                index.remove(owner);
            }
        }
    }

    fn rebuild(&self, pods: &[Arc<Pod>]) {
        let mut fresh: HashMap<String, HashSet<ObjectRef<Pod>>> = HashMap::new();
        for pod in pods {
            if let Some(owner) = controller_uid(pod) {
                fresh
                    .entry(owner.to_owned())
                    .or_default()
                    .insert(ObjectRef::from_obj(pod.as_ref()));
            }
        }
        *self.by_owner.lock() = fresh;
    }
}

/// UID of the owner reference marked `controller: true`.
pub(crate) fn controller_uid(pod: &Pod) -> Option<&str> {
    let owners = pod.metadata.owner_references.as_ref()?;
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::runtime::reflector;

    use super::*;

    fn pod(name: &str, owner: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.owner_references = Some(vec![OwnerReference {
            uid: owner.into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        p
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        let mut n: Vec<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn follows_applies_and_deletes_and_checks_the_store() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = OwnerIndex::default();
        let mut feed = |event: watcher::Event<Pod>| {
            writer.apply_watcher_event(&event);
            index.observe(&event, &store);
        };
        feed(watcher::Event::Apply(pod("a", "job-1")));
        feed(watcher::Event::Apply(pod("b", "job-1")));
        feed(watcher::Event::Apply(pod("c", "job-2")));
        assert_eq!(names(&index.pods(&store, "job-1")), ["a", "b"]);
        feed(watcher::Event::Delete(pod("a", "job-1")));
        assert_eq!(names(&index.pods(&store, "job-1")), ["b"]);
        // Re-owned: the old owner's stale entry is filtered by the store check.
        feed(watcher::Event::Apply(pod("b", "job-2")));
        assert!(index.pods(&store, "job-1").is_empty());
        assert_eq!(names(&index.pods(&store, "job-2")), ["b", "c"]);
    }

    #[test]
    fn a_relist_drops_pods_deleted_meanwhile() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = OwnerIndex::default();
        let mut feed = |event: watcher::Event<Pod>| {
            writer.apply_watcher_event(&event);
            index.observe(&event, &store);
        };
        feed(watcher::Event::Apply(pod("a", "job-1")));
        feed(watcher::Event::Init);
        feed(watcher::Event::InitApply(pod("b", "job-1")));
        feed(watcher::Event::InitDone);
        assert_eq!(names(&index.pods(&store, "job-1")), ["b"]);
        assert_eq!(index.by_owner.lock()["job-1"].len(), 1);
    }
}
