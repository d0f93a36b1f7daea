//! In-memory object store with one global resourceVersion and a bounded watch history.
//!
//! ```text
//!   writers ──lock──► objects + rv counter + history ring ──► notify (tokio watch: latest rv)
//!                            │                                        │
//!                            └──► persistence channel (ordered)       └──► watch streams read the
//!                                                                          ring from their cursor
//! ```
//!
//! The lock is held only to check a precondition, bump the counter and insert; request parsing,
//! patching, validation and serialisation all happen outside it. Objects are immutable
//! `Arc<Value>`s so readers share them without copying.

mod history;
pub mod persist;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

pub use history::History;

/// A stored object (immutable once committed).
pub type Obj = Arc<Value>;

/// Storage identity of a resource: group and plural (all served versions share one storage).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    /// API group, empty for the core group.
    pub group: Arc<str>,
    /// Plural resource name, e.g. `configmaps`.
    pub plural: Arc<str>,
}

impl ResKey {
    /// Key for `plural` in `group`.
    pub fn new(group: &str, plural: &str) -> Self {
        Self {
            group: Arc::from(group),
            plural: Arc::from(plural),
        }
    }
}

/// Identity of an object inside a resource; ordering gives list order (namespace, then name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjKey {
    /// Key for `name` in `namespace` (empty namespace for cluster-scoped objects).
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Watch event types the store produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

/// One committed change, kept in the history ring and sent to persistence.
#[derive(Debug)]
pub struct StoredEvent {
    /// resourceVersion the change was committed at.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Resource of the object.
    pub res: ResKey,
    /// Object identity.
    pub key: ObjKey,
    /// The object after the change (for Deleted: the last state, with the deletion's rv).
    pub object: Obj,
    /// The object before the change, so filtered watches can turn it into ADDED/DELETED.
    pub old: Option<Obj>,
    /// `object` as JSON, encoded by the first watch that sends it and shared by the others
    /// (every watch of the resource sends the same bytes).
    encoded: OnceLock<Bytes>,
}

impl StoredEvent {
    /// `object` serialised as compact JSON, computed once per event.
    pub fn encoded_object(&self) -> &Bytes {
        self.encoded.get_or_init(|| {
            Bytes::from(serde_json::to_vec(self.object.as_ref()).unwrap_or_default())
        })
    }
}

/// Why a store write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Create of an existing key.
    #[error("already exists")]
    AlreadyExists,
    /// Update/delete of a missing key.
    #[error("not found")]
    NotFound,
    /// Expected resourceVersion differs from the stored one.
    #[error("resourceVersion conflict")]
    Conflict,
}

/// A watch asked for history that was compacted away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "resource version {requested} is older than the kept history (compacted through {compacted})"
)]
pub struct Expired {
    /// The resourceVersion the client asked for.
    pub requested: u64,
    /// Every event at or below this rv is gone.
    pub compacted: u64,
}

/// A dependent found through the owner index.
pub type Dependent = (ResKey, ObjKey);

struct Inner {
    rv: u64,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Obj>>,
    history: History,
    /// owner uid → dependents that list it in ownerReferences.
    owners: HashMap<String, HashSet<Dependent>>,
    sinks: Vec<mpsc::UnboundedSender<Arc<StoredEvent>>>,
}

/// The object store shared by the HTTP layer, the garbage collector and persistence.
pub struct Store {
    inner: Mutex<Inner>,
    latest: watch::Sender<u64>,
    /// Bumped by [`Store::expire_watches`]; open watches end with 410 when it changes.
    epoch: watch::Sender<u64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("rv", &self.current_rv())
            .finish()
    }
}

impl Store {
    /// An empty store keeping at most `history_cap` watch events.
    pub fn new(history_cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: HashMap::new(),
                history: History::new(history_cap),
                owners: HashMap::new(),
                sinks: Vec::new(),
            }),
            latest: watch::Sender::new(0),
            epoch: watch::Sender::new(0),
        }
    }

    /// Send every future committed event to `tx`, in commit order and without loss (unlike the
    /// bounded history): used by persistence and the garbage collector.
    pub fn add_sink(&self, tx: mpsc::UnboundedSender<Arc<StoredEvent>>) {
        self.inner.lock().sinks.push(tx);
    }

    /// Load objects recovered from disk, before serving. Sets the rv counter to `rv`.
    pub fn restore(&self, rv: u64, objects: Vec<(ResKey, ObjKey, Value)>) {
        let mut inner = self.inner.lock();
        inner.rv = rv;
        inner.history.reset(rv);
        for (res, key, obj) in objects {
            let obj = Arc::new(obj);
            index_owners(&mut inner.owners, &res, &key, None, Some(&obj));
            inner.objects.entry(res).or_default().insert(key, obj);
        }
        drop(inner);
        self.latest.send_replace(rv);
    }

    /// Stop feeding sinks (their receivers then drain and end): part of shutdown.
    pub fn close_sinks(&self) {
        self.inner.lock().sinks.clear();
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.inner.lock().rv
    }

    /// One object.
    pub fn get(&self, res: &ResKey, key: &ObjKey) -> Option<Obj> {
        self.inner
            .lock()
            .objects
            .get(res)
            .and_then(|m| m.get(key))
            .cloned()
    }

    /// Up to `limit` objects of `res` (in `namespace` if given) after `after`, passing `filter`.
    /// Returns the items, the current rv, and the key of the last item when more may follow.
    pub fn list(
        &self,
        res: &ResKey,
        namespace: Option<&str>,
        after: Option<&ObjKey>,
        limit: Option<usize>,
        filter: &dyn Fn(&Value) -> bool,
    ) -> (Vec<Obj>, u64, Option<ObjKey>) {
        use std::ops::Bound;
        let inner = self.inner.lock();
        let rv = inner.rv;
        let Some(map) = inner.objects.get(res) else {
            return (Vec::new(), rv, None);
        };
        let start = match (after, namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included(ObjKey::new(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let mut items = Vec::new();
        let mut last_key: Option<&ObjKey> = None;
        for (key, obj) in map.range((start, Bound::Unbounded)) {
            if namespace.is_some_and(|ns| ns != key.namespace) {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                return (items, rv, last_key.cloned());
            }
            items.push(obj.clone());
            last_key = Some(key);
        }
        (items, rv, None)
    }

    /// Every object of `res` in `namespace` (used by the namespace controller).
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<Dependent> {
        let inner = self.inner.lock();
        let mut out = Vec::new();
        for (res, map) in &inner.objects {
            let from = ObjKey::new(namespace, "");
            for (key, _) in map.range(from..) {
                if key.namespace != namespace {
                    break;
                }
                out.push((res.clone(), key.clone()));
            }
        }
        out
    }

    /// Objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<Dependent> {
        let inner = self.inner.lock();
        inner
            .owners
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Insert a new object; fails when the key exists.
    pub fn create(&self, res: &ResKey, key: &ObjKey, obj: Value) -> Result<Obj, StoreError> {
        self.commit(res, key, None, obj, Op::Create)
    }

    /// Replace an object when its rv still equals `expected_rv`.
    pub fn update(
        &self,
        res: &ResKey,
        key: &ObjKey,
        expected_rv: u64,
        obj: Value,
    ) -> Result<Obj, StoreError> {
        self.commit(res, key, Some(expected_rv), obj, Op::Update)
    }

    /// Remove an object (when its rv equals `expected_rv`, if given).
    pub fn delete(
        &self,
        res: &ResKey,
        key: &ObjKey,
        expected_rv: Option<u64>,
    ) -> Result<Obj, StoreError> {
        self.commit(res, key, expected_rv, Value::Null, Op::Delete)
    }

    fn commit(
        &self,
        res: &ResKey,
        key: &ObjKey,
        expected: Option<u64>,
        mut obj: Value,
        op: Op,
    ) -> Result<Obj, StoreError> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let map = inner.objects.entry(res.clone()).or_default();
        let old = map.get(key).cloned();
        match (&old, op) {
            (Some(_), Op::Create) => return Err(StoreError::AlreadyExists),
            (None, Op::Update | Op::Delete) => return Err(StoreError::NotFound),
            _ => {}
        }
        if let (Some(want), Some(cur)) = (expected, &old)
            && object_rv(cur) != want
        {
            return Err(StoreError::Conflict);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let (kind, object) = match op {
            Op::Delete => {
                // The DELETED event carries the last state stamped with the deletion's rv, as the real server does.
                let mut last = old.as_deref().cloned().unwrap_or(Value::Null);
                set_rv(&mut last, rv);
                map.remove(key);
                (EventType::Deleted, Arc::new(last))
            }
            Op::Create | Op::Update => {
                set_rv(&mut obj, rv);
                let obj = Arc::new(obj);
                map.insert(key.clone(), obj.clone());
                let kind = if op == Op::Create {
                    EventType::Added
                } else {
                    EventType::Modified
                };
                (kind, obj)
            }
        };
        let new_for_index = (kind != EventType::Deleted).then_some(&object);
        index_owners(&mut inner.owners, res, key, old.as_ref(), new_for_index);
        let event = Arc::new(StoredEvent {
            rv,
            kind,
            res: res.clone(),
            key: key.clone(),
            object: object.clone(),
            old,
            encoded: OnceLock::new(),
        });
        // A closed sink stopped during shutdown; drop it, the write still succeeds in memory.
        inner.sinks.retain(|tx| tx.send(event.clone()).is_ok());
        inner.history.push(event);
        drop(guard);
        self.latest.send_replace(rv);
        Ok(object)
    }

    /// Events committed after `rv`, or [`Expired`] when some of them were compacted away.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<StoredEvent>>, Expired> {
        self.inner.lock().history.since(rv)
    }

    /// Receiver that changes whenever something is committed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Receiver that changes when [`Store::expire_watches`] runs.
    pub fn subscribe_epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Starts the watch window at the current resourceVersion, as a starting
    /// kube-apiserver's watch caches do: a watch from any earlier resourceVersion gets
    /// 410 Gone and must relist. Open watches are not ended (none is open yet).
    pub fn start_watch_window(&self) {
        let mut inner = self.inner.lock();
        let rv = inner.rv;
        inner.history.reset(rv);
    }

    /// Test hook: drop the whole watch history and end every open watch with 410 Expired, as a
    /// real API server does when a watch falls out of its cache window. Clients must relist.
    pub fn expire_watches(&self) {
        {
            let mut inner = self.inner.lock();
            let rv = inner.rv;
            inner.history.reset(rv);
        }
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Every stored object with its keys (for snapshots).
    pub fn snapshot(&self) -> (u64, Vec<(ResKey, ObjKey, Obj)>) {
        let inner = self.inner.lock();
        let mut out = Vec::new();
        for (res, map) in &inner.objects {
            for (key, obj) in map {
                out.push((res.clone(), key.clone(), obj.clone()));
            }
        }
        (inner.rv, out)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
    Delete,
}

/// `metadata.resourceVersion` as a number (0 when absent or malformed).
pub fn object_rv(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// Owner uids of an object's ownerReferences.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn index_owners(
    owners: &mut HashMap<String, HashSet<Dependent>>,
    res: &ResKey,
    key: &ObjKey,
    old: Option<&Obj>,
    new: Option<&Obj>,
) {
    let old_uids = old.map(|o| owner_uids(o)).unwrap_or_default();
    let new_uids = new.map(|o| owner_uids(o)).unwrap_or_default();
    if old_uids == new_uids {
        return;
    }
    let dep = (res.clone(), key.clone());
    for uid in old_uids.iter().filter(|u| !new_uids.contains(u)) {
        if let Some(set) = owners.get_mut(uid) {
            set.remove(&dep);
            if set.is_empty() {
                owners.remove(uid);
            }
        }
    }
    for uid in new_uids {
        owners.entry(uid).or_default().insert(dep.clone());
    }
}

#[cfg(test)]
mod tests;
