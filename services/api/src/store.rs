//! The in-memory index of WorkflowExecutions, fed by kube-rs watchers, and its change feed.
//!
//! ```text
//!  API server ──watch──► watcher task ──► Index (by key, target, phase, agent, idempotency key)
//!  our own writes ─────────────────────►   │  every change gets a sequence number
//!                                          ├──► broadcast ──► Watch RPC streams
//!                                          ├──► ring of recent changes (resume tokens)
//!                                          └──► Notify ──► dispatcher
//! ```
//!
//! The resources are the source of truth: after a restart the index is rebuilt from the
//! initial list. Writes of this process are applied at once (read-your-writes), and a watch
//! event with an older resourceVersion never overwrites a newer object.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use parking_lot::RwLock;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;
use wfe_core::Phase;
use wfe_k8s::WorkflowExecution;
use wfe_k8s::labels::IDEMPOTENCY_KEY_HASH;

/// Identifies an execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ExecKey {
    /// The key of an object.
    pub fn of(obj: &WorkflowExecution) -> Self {
        Self {
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
        }
    }
}

impl std::fmt::Display for ExecKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What happened to an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New.
    Added,
    /// Changed.
    Modified,
    /// Deleted (the object is the last known state).
    Deleted,
}

/// One entry of the change feed.
#[derive(Debug, Clone)]
pub struct Change {
    /// Strictly increasing within one [`Index`].
    pub seq: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change.
    pub obj: Arc<WorkflowExecution>,
}

/// The phase of an execution; an unset phase is Pending (just created).
pub fn phase_of(obj: &WorkflowExecution) -> Phase {
    obj.status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(Phase::Pending)
}

fn rv_of(obj: &WorkflowExecution) -> Option<u64> {
    obj.resource_version().and_then(|rv| rv.parse().ok())
}

fn agent_of(obj: &WorkflowExecution) -> Option<String> {
    obj.status
        .as_ref()?
        .assignment
        .as_ref()
        .map(|a| a.agent_id.clone())
}

fn idem_of(obj: &WorkflowExecution) -> Option<(String, String)> {
    let hash = obj.labels().get(IDEMPOTENCY_KEY_HASH)?;
    Some((obj.namespace().unwrap_or_default(), hash.clone()))
}

/// Drops what the index never reads before an object is stored: `managedFields` (field
/// ownership kept by a real API server as a JSON tree per manager; no response or write of
/// ours uses it, and a PUT without it keeps the server's) and the spare capacity
/// deserializing left in the conditions.
fn compact(obj: &mut WorkflowExecution) {
    obj.metadata.managed_fields = None;
    if let Some(st) = obj.status.as_mut() {
        st.conditions.shrink_to_fit();
    }
}

/// Keys are shared: the object table and every secondary index hold the same allocation
/// instead of a copy of both strings each (with 10,000 stored executions the copies and the
/// one-entry sets per target cost about 0.8 KB per execution).
type SharedKey = Arc<ExecKey>;

#[derive(Default)]
struct Inner {
    objects: HashMap<SharedKey, Arc<WorkflowExecution>>,
    by_target: HashMap<String, BTreeSet<SharedKey>>,
    by_phase: HashMap<Phase, BTreeSet<SharedKey>>,
    by_agent: HashMap<String, BTreeSet<SharedKey>>,
    by_idem: HashMap<(String, String), SharedKey>,
    seq: u64,
    ring: VecDeque<Change>,
}

/// The cluster-qualified target an execution is indexed (and admitted, and locked) by.
pub fn target_of(obj: &WorkflowExecution) -> String {
    wfe_core::naming::qualified_target(&obj.spec.cluster_id, &obj.spec.target_resource)
}

impl Inner {
    fn unindex(&mut self, key: &SharedKey, obj: &WorkflowExecution) {
        let target = target_of(obj);
        if let Some(s) = self.by_target.get_mut(&target) {
            s.remove(key);
            if s.is_empty() {
                self.by_target.remove(&target);
            }
        }
        if let Some(s) = self.by_phase.get_mut(&phase_of(obj)) {
            s.remove(key);
        }
        if let Some(a) = agent_of(obj)
            && let Some(s) = self.by_agent.get_mut(&a)
        {
            s.remove(key);
        }
        if let Some(i) = idem_of(obj)
            && self.by_idem.get(&i) == Some(key)
        {
            self.by_idem.remove(&i);
        }
    }

    fn index(&mut self, key: &SharedKey, obj: &WorkflowExecution) {
        self.by_target
            .entry(target_of(obj))
            .or_default()
            .insert(key.clone());
        self.by_phase
            .entry(phase_of(obj))
            .or_default()
            .insert(key.clone());
        if let Some(a) = agent_of(obj) {
            self.by_agent.entry(a).or_default().insert(key.clone());
        }
        if let Some(i) = idem_of(obj) {
            self.by_idem.insert(i, key.clone());
        }
    }

    fn push(&mut self, kind: ChangeKind, obj: Arc<WorkflowExecution>, cap: usize) -> Change {
        self.seq += 1;
        let change = Change {
            seq: self.seq,
            kind,
            obj,
        };
        if self.ring.len() >= cap {
            self.ring.pop_front();
        }
        self.ring.push_back(change.clone());
        change
    }
}

/// The index and its change feed.
pub struct Index {
    inner: RwLock<Inner>,
    tx: broadcast::Sender<Change>,
    synced: watch::Sender<bool>,
    notify: Notify,
    epoch: String,
    ring_size: usize,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// A resume token older than the ring (or from another server instance).
#[derive(Debug)]
pub struct TooOld;

impl Index {
    /// An empty, unsynced index keeping `ring_size` changes for resuming watches.
    pub fn new(ring_size: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(4096);
        let (synced, _) = watch::channel(false);
        Arc::new(Self {
            inner: RwLock::new(Inner::default()),
            tx,
            synced,
            notify: Notify::new(),
            epoch: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            ring_size,
        })
    }

    /// Identifies this index instance inside resume tokens.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Upserts an object unless the index already holds a newer version.
    pub fn apply(&self, obj: WorkflowExecution) {
        self.upsert(obj);
    }

    /// [`Index::apply`], returning the index's key of the object.
    fn upsert(&self, mut obj: WorkflowExecution) -> SharedKey {
        compact(&mut obj);
        let key = ExecKey::of(&obj);
        let mut inner = self.inner.write();
        let (key, kind) = match inner.objects.get_key_value(&key) {
            Some((shared, cur)) => {
                let same_uid = cur.uid() == obj.uid();
                match (rv_of(cur), rv_of(&obj)) {
                    (Some(a), Some(b)) if same_uid && b <= a => return shared.clone(),
                    _ => (shared.clone(), ChangeKind::Modified),
                }
            }
            None => (Arc::new(key), ChangeKind::Added),
        };
        if let Some(old) = inner.objects.get(&key).cloned() {
            inner.unindex(&key, &old);
        }
        inner.index(&key, &obj);
        let obj = Arc::new(obj);
        inner.objects.insert(key.clone(), obj.clone());
        let change = inner.push(kind, obj, self.ring_size);
        // Under the lock: streams must receive changes in seq order (they drop a seq
        // at or below the last one they forwarded).
        self.publish(change);
        key
    }

    /// Removes an object.
    pub fn delete(&self, obj: &WorkflowExecution) {
        let key = ExecKey::of(obj);
        {
            let mut inner = self.inner.write();
            let Some((key, old)) = inner.objects.remove_entry(&key) else {
                return;
            };
            inner.unindex(&key, &old);
            let change = inner.push(ChangeKind::Deleted, old, self.ring_size);
            self.publish(change); // under the lock, see `upsert`
        }
    }

    /// Replaces everything of `namespace` with a fresh list (after a (re)list).
    pub fn replace_namespace(&self, namespace: &str, objs: Vec<WorkflowExecution>) {
        let fresh: HashSet<SharedKey> = objs.into_iter().map(|o| self.upsert(o)).collect();
        self.retain_listed(namespace, &fresh);
    }

    /// After a (re)list whose objects were applied one by one: deletes the objects of
    /// `namespace` the list did not contain.
    fn retain_listed(&self, namespace: &str, listed: &HashSet<SharedKey>) {
        let gone: Vec<Arc<WorkflowExecution>> = {
            let inner = self.inner.read();
            inner
                .objects
                .iter()
                .filter(|(k, _)| k.namespace == namespace && !listed.contains(*k))
                .map(|(_, v)| v.clone())
                .collect()
        };
        for obj in gone {
            self.delete(&obj);
        }
    }

    fn publish(&self, change: Change) {
        // No receivers is normal (no Watch streams open).
        let _ = self.tx.send(change);
        self.notify.notify_one();
    }

    /// Marks the initial list as loaded.
    pub fn set_synced(&self) {
        self.synced.send_replace(true);
        self.notify.notify_one();
    }

    /// Whether the initial list was loaded.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the initial list was loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Wakes when anything changed (for the dispatcher).
    pub fn changed(&self) -> &Notify {
        &self.notify
    }

    /// One execution.
    pub fn get(&self, key: &ExecKey) -> Option<Arc<WorkflowExecution>> {
        self.inner.read().objects.get(key).cloned()
    }

    fn collect<'a>(
        inner: &Inner,
        keys: impl Iterator<Item = &'a SharedKey>,
    ) -> Vec<Arc<WorkflowExecution>> {
        keys.filter_map(|k| inner.objects.get(k).cloned()).collect()
    }

    /// Every execution on a cluster-qualified target ([`target_of`]), in any namespace.
    pub fn by_target(&self, target: &str) -> Vec<Arc<WorkflowExecution>> {
        let inner = self.inner.read();
        inner
            .by_target
            .get(target)
            .map(|s| Self::collect(&inner, s.iter()))
            .unwrap_or_default()
    }

    /// Every execution in a phase.
    pub fn by_phase(&self, phase: Phase) -> Vec<Arc<WorkflowExecution>> {
        let inner = self.inner.read();
        inner
            .by_phase
            .get(&phase)
            .map(|s| Self::collect(&inner, s.iter()))
            .unwrap_or_default()
    }

    /// Every execution assigned to an agent.
    pub fn by_agent(&self, agent_id: &str) -> Vec<Arc<WorkflowExecution>> {
        let inner = self.inner.read();
        inner
            .by_agent
            .get(agent_id)
            .map(|s| Self::collect(&inner, s.iter()))
            .unwrap_or_default()
    }

    /// The execution created with an idempotency key hash in a namespace.
    pub fn by_idempotency(&self, namespace: &str, hash: &str) -> Option<Arc<WorkflowExecution>> {
        let inner = self.inner.read();
        let key = inner
            .by_idem
            .get(&(namespace.to_owned(), hash.to_owned()))?;
        inner.objects.get(key).cloned()
    }

    /// Every execution of a namespace.
    pub fn all_in(&self, namespace: &str) -> Vec<Arc<WorkflowExecution>> {
        let inner = self.inner.read();
        Self::collect(
            &inner,
            inner.objects.keys().filter(|k| k.namespace == namespace),
        )
    }

    /// Subscribes to changes and returns the current state with the sequence it reflects.
    /// Changes after that sequence arrive on the receiver.
    pub fn subscribe(
        &self,
    ) -> (
        broadcast::Receiver<Change>,
        u64,
        Vec<Arc<WorkflowExecution>>,
    ) {
        let inner = self.inner.read();
        // Subscribing under the lock: nothing can be published between snapshot and subscribe.
        let rx = self.tx.subscribe();
        (rx, inner.seq, inner.objects.values().cloned().collect())
    }

    /// Subscribes and returns the changes after `seq`, or [`TooOld`] if the ring lost some.
    pub fn resume(
        &self,
        seq: u64,
    ) -> Result<(broadcast::Receiver<Change>, u64, Vec<Change>), TooOld> {
        let inner = self.inner.read();
        let oldest = inner.ring.front().map(|c| c.seq).unwrap_or(inner.seq + 1);
        if seq > inner.seq || seq + 1 < oldest {
            return Err(TooOld);
        }
        let rx = self.tx.subscribe();
        let missed = inner.ring.iter().filter(|c| c.seq > seq).cloned().collect();
        Ok((rx, inner.seq, missed))
    }

    /// The latest sequence number.
    pub fn seq(&self) -> u64 {
        self.inner.read().seq
    }
}

/// Feeds the index from a watch on one namespace until `shutdown`.
pub async fn run_watcher(
    api: Api<WorkflowExecution>,
    namespace: String,
    index: Arc<Index>,
    ready: tokio::sync::mpsc::Sender<String>,
    shutdown: CancellationToken,
) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // Keys seen during a (re)list: objects are applied as they arrive rather than buffered
    // (with 10,000 stored executions a buffered list doubled the memory at start-up); at the
    // end of the list the ones it did not contain are deleted. The keys are the index's own.
    let mut listed: HashSet<SharedKey> = HashSet::new();
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = stream.next() => e,
        };
        match event {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(error = %e, namespace = %namespace, "workflowexecution watch failed; retrying")
            }
            Some(Ok(watcher::Event::Init)) => listed.clear(),
            Some(Ok(watcher::Event::InitApply(obj))) => {
                listed.insert(index.upsert(obj));
            }
            Some(Ok(watcher::Event::InitDone)) => {
                index.retain_listed(&namespace, &std::mem::take(&mut listed));
                let _ = ready.try_send(namespace.clone());
            }
            Some(Ok(watcher::Event::Apply(obj))) => index.apply(obj),
            Some(Ok(watcher::Event::Delete(obj))) => index.delete(&obj),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use wfe_k8s::WorkflowExecutionSpec;

    fn wfe(name: &str, rv: &str, target: &str) -> WorkflowExecution {
        let mut w = WorkflowExecution::new(
            name,
            WorkflowExecutionSpec {
                target_resource: target.into(),
                ..Default::default()
            },
        );
        w.metadata.namespace = Some("ns".into());
        w.metadata.resource_version = Some(rv.into());
        w.metadata.uid = Some("u".into());
        w
    }

    #[test]
    fn concurrent_applies_reach_subscribers_in_seq_order() {
        // Watch streams drop a change whose seq is not above the last one they forwarded,
        // so publishing out of order would lose events.
        let idx = Index::new(10);
        let (mut rx, _, _) = idx.subscribe();
        std::thread::scope(|s| {
            for t in 0..4 {
                let idx = &idx;
                s.spawn(move || {
                    for i in 0..500 {
                        idx.apply(wfe(&format!("t{t}-{i}"), "1", "x"));
                    }
                });
            }
        });
        let mut last = 0;
        let mut n = 0;
        while let Ok(c) = rx.try_recv() {
            assert!(c.seq > last, "seq {} after {last}", c.seq);
            last = c.seq;
            n += 1;
        }
        assert_eq!(n, 2000);
    }

    #[test]
    fn newer_versions_win_and_changes_are_sequenced() {
        let idx = Index::new(10);
        let (mut rx, seq0, snap) = idx.subscribe();
        assert!(snap.is_empty());
        idx.apply(wfe("a", "5", "t"));
        idx.apply(wfe("a", "4", "t")); // older: ignored
        idx.apply(wfe("a", "6", "t2"));
        assert_eq!(idx.by_target("t").len(), 0);
        assert_eq!(idx.by_target("t2").len(), 1);
        let c1 = rx.try_recv().unwrap();
        let c2 = rx.try_recv().unwrap();
        assert_eq!((c1.seq, c1.kind), (seq0 + 1, ChangeKind::Added));
        assert_eq!((c2.seq, c2.kind), (seq0 + 2, ChangeKind::Modified));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn resume_and_too_old() {
        let idx = Index::new(2);
        for i in 0..5 {
            idx.apply(wfe(&format!("e{i}"), "1", "t"));
        }
        assert!(idx.resume(1).is_err());
        let (_, seq, missed) = idx.resume(3).unwrap();
        assert_eq!(seq, 5);
        assert_eq!(missed.len(), 2);
        idx.replace_namespace("ns", vec![wfe("e0", "1", "t")]);
        assert_eq!(idx.all_in("ns").len(), 1);
    }

    fn terminal(name: &str, rv: &str, done_at: i64) -> WorkflowExecution {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let mut w = wfe(name, rv, "t");
        let done = jiff::Timestamp::from_second(done_at).unwrap();
        w.status = Some(wfe_k8s::WorkflowExecutionStatus {
            phase: Some(Phase::Completed),
            completion_time: Some(Time(done)),
            execution_ref: Some(Default::default()),
            ..Default::default()
        });
        w
    }

    #[test]
    fn stored_objects_drop_managed_fields_and_share_one_key() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let idx = Index::new(10);
        let mut w = terminal("a", "1", 100);
        w.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("workflow-api".into()),
            ..Default::default()
        }]);
        idx.apply(w);
        let key = ExecKey {
            namespace: "ns".into(),
            name: "a".into(),
        };
        let got = idx.get(&key).unwrap();
        assert_eq!(got.metadata.managed_fields, None);
        assert_eq!(phase_of(&got), Phase::Completed);
        {
            let inner = idx.inner.read();
            let (shared, _) = inner.objects.get_key_value(&key).unwrap();
            // The object table, by_target and by_phase.
            assert_eq!(Arc::strong_count(shared), 3);
        }
        // A target without executions leaves no entry behind.
        idx.apply(wfe("a", "2", "t2"));
        assert_eq!(idx.by_target("t2").len(), 1);
        assert!(idx.by_target("t").is_empty());
        assert!(!idx.inner.read().by_target.contains_key("t"));
        idx.delete(&wfe("a", "3", "t2"));
        assert!(idx.inner.read().by_target.is_empty());
        assert!(idx.get(&key).is_none());
    }
}
