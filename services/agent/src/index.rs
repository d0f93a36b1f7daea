//! Secondary indexes over a reflector's cache, kept from the same watch events as the
//! store. "The pods of this Job" becomes a hash lookup instead of a scan of every cached
//! object: primitives are kept long after they finish, so a scan made each status
//! computation cost O(objects seen) and a run O(n²).
//!
//! ```text
//!  watcher ─► reflector (Store: ObjectRef → object) ─► IndexedStore::apply (key → ObjectRefs)
//!                                   ▲ get                        │ find(key)
//!                                   └────────────────────────────┘
//! ```
//!
//! [`Index`] is pure bookkeeping (events in, lookups out); [`IndexedStore`] joins it to
//! the reflector [`Store`] that holds the objects.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;

/// The index keys of an object; none leaves it out of the index.
pub type KeysOf<K> = fn(&K) -> Vec<String>;

/// Objects by index key, and each object's keys (to unindex it on update or delete).
/// References are shared: an object under several keys costs a pointer per extra key.
struct Entries<K: Resource<DynamicType = ()>> {
    by_key: HashMap<String, HashSet<Arc<ObjectRef<K>>>>,
    keys: HashMap<Arc<ObjectRef<K>>, Vec<String>>,
}

impl<K: Resource<DynamicType = ()>> Default for Entries<K> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            keys: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> Entries<K> {
    fn insert(&mut self, r: ObjectRef<K>, keys: Vec<String>) {
        if self.keys.get(&r) == Some(&keys) {
            return; // most updates (status changes) keep the keys
        }
        // An update may change the keys: drop the old ones first.
        self.remove(&r);
        if keys.is_empty() {
            return;
        }
        let r = Arc::new(r);
        for k in &keys {
            self.by_key.entry(k.clone()).or_default().insert(r.clone());
        }
        self.keys.insert(r, keys);
    }

    fn remove(&mut self, r: &ObjectRef<K>) {
        let Some(old) = self.keys.remove(r) else {
            return;
        };
        for k in old {
            if let Entry::Occupied(mut e) = self.by_key.entry(k) {
                e.get_mut().remove(r);
                if e.get().is_empty() {
                    e.remove();
                }
            }
        }
    }
}

/// The store's key of an object, without the version and uid the index does not need
/// (they are ignored by comparisons, and would only take memory per object).
fn reference<K: Resource<DynamicType = ()>>(o: &K) -> ObjectRef<K> {
    let meta = o.meta();
    let mut r = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    r.namespace = meta.namespace.clone();
    r
}

/// Object references grouped by keys derived from the objects, following watch events
/// exactly as a reflector store does (a relist replaces everything at `InitDone`).
pub struct Index<K: Resource<DynamicType = ()>> {
    keys_of: KeysOf<K>,
    live: Entries<K>,
    /// The relist under way (`Init` .. `InitDone`); until it is done lookups answer from
    /// `live`, like the store, which also swaps its buffer in only at `InitDone`.
    relist: Option<Entries<K>>,
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for Index<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("keys", &self.live.by_key.len())
            .field("objects", &self.live.keys.len())
            .field("relisting", &self.relist.is_some())
            .finish()
    }
}

impl<K: Resource<DynamicType = ()>> Index<K> {
    /// An empty index keyed by `keys_of`.
    pub fn new(keys_of: KeysOf<K>) -> Self {
        Self {
            keys_of,
            live: Entries::default(),
            relist: None,
        }
    }

    /// Applies one watch event.
    pub fn apply(&mut self, ev: &watcher::Event<K>) {
        match ev {
            watcher::Event::Apply(o) => self.live.insert(reference(o), (self.keys_of)(o)),
            watcher::Event::Delete(o) => self.live.remove(&reference(o)),
            watcher::Event::Init => self.relist = Some(Entries::default()),
            watcher::Event::InitApply(o) => {
                let keys = (self.keys_of)(o);
                self.relist
                    .get_or_insert_with(Entries::default)
                    .insert(reference(o), keys);
            }
            watcher::Event::InitDone => self.live = self.relist.take().unwrap_or_default(),
        }
    }

    /// The objects indexed under `key`.
    pub fn get(&self, key: &str) -> impl Iterator<Item = &ObjectRef<K>> {
        self.live
            .by_key
            .get(key)
            .into_iter()
            .flatten()
            .map(AsRef::as_ref)
    }

    /// The references under `key`, to use after the lock is released.
    fn shared(&self, key: &str) -> Vec<Arc<ObjectRef<K>>> {
        let refs = self.live.by_key.get(key);
        refs.map_or_else(Vec::new, |r| r.iter().cloned().collect())
    }

    /// Objects indexed.
    pub fn len(&self) -> usize {
        self.live.keys.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.live.keys.is_empty()
    }
}

/// A reflector [`Store`] and an [`Index`] over it, shared by the watch task (which feeds
/// both through [`IndexedStore::reflector`]) and the executor's calls (which read).
pub struct IndexedStore<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    index: Arc<RwLock<Index<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for IndexedStore<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K> IndexedStore<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// A store indexed by `keys_of`, and the writer to hand to [`IndexedStore::reflector`].
    pub fn new(keys_of: KeysOf<K>) -> (Self, Writer<K>) {
        let (store, writer) = reflector::store();
        let index = Arc::new(RwLock::new(Index::new(keys_of)));
        (Self { store, index }, writer)
    }

    /// The reflector store (direct lookups by name, readiness, the whole state).
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Feeds one watch event to the index (after the store applied it).
    pub fn apply(&self, ev: &watcher::Event<K>) {
        // The key functions only read metadata, so nothing here is expected to panic; if
        // something did, `find` still checks every reference against the store and an
        // object's next event re-indexes it: keep serving rather than fail every reader.
        self.index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(ev);
    }

    /// kube's [`reflector::reflector`] that also keeps the index current.
    pub fn reflector<W>(
        &self,
        writer: Writer<K>,
        stream: W,
    ) -> impl Stream<Item = W::Item> + use<K, W>
    where
        W: Stream<Item = watcher::Result<watcher::Event<K>>>,
    {
        let this = self.clone();
        reflector::reflector(writer, stream).inspect(move |ev| {
            if let Ok(ev) = ev {
                this.apply(ev);
            }
        })
    }

    /// The cached objects indexed under `key`. Each is checked against its current keys,
    /// so the answer equals filtering the whole store even while the index trails the
    /// store by one event.
    pub fn find(&self, key: &str) -> Vec<Arc<K>> {
        let (refs, keys_of) = {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            (index.shared(key), index.keys_of)
        };
        refs.iter()
            .filter_map(|r| self.store.get(r))
            .filter(|o| keys_of(o).iter().any(|k| k == key))
            .collect()
    }
}

#[cfg(test)]
mod tests;
