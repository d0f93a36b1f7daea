use super::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

const GROUP: &str = "group";

fn cm(name: &str, group: Option<&str>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            labels: group.map(|g| [(GROUP.to_owned(), g.to_owned())].into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn group_of(c: &ConfigMap) -> Vec<String> {
    c.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(GROUP))
        .cloned()
        .into_iter()
        .collect()
}

/// Names under `key`, sorted.
fn names(ix: &Index<ConfigMap>, key: &str) -> Vec<String> {
    let mut n: Vec<String> = ix.get(key).map(|r| r.name.clone()).collect();
    n.sort();
    n
}

fn apply(o: ConfigMap) -> watcher::Event<ConfigMap> {
    watcher::Event::Apply(o)
}

#[test]
fn insert_groups_objects_by_key() {
    let mut ix = Index::new(group_of);
    ix.apply(&apply(cm("a", Some("g1"))));
    ix.apply(&apply(cm("b", Some("g1"))));
    ix.apply(&apply(cm("c", Some("g2"))));
    ix.apply(&apply(cm("unkeyed", None)));
    assert_eq!(names(&ix, "g1"), ["a", "b"]);
    assert_eq!(names(&ix, "g2"), ["c"]);
    assert!(names(&ix, "g3").is_empty());
    assert_eq!(ix.len(), 3, "an object without keys is not indexed");
}

#[test]
fn update_that_changes_the_key_moves_the_object() {
    let mut ix = Index::new(group_of);
    ix.apply(&apply(cm("a", Some("g1"))));
    ix.apply(&apply(cm("a", Some("g2"))));
    assert!(names(&ix, "g1").is_empty());
    assert_eq!(names(&ix, "g2"), ["a"]);
    ix.apply(&apply(cm("a", None)));
    assert!(names(&ix, "g2").is_empty());
    assert!(ix.is_empty());
}

#[test]
fn delete_unindexes_and_drops_empty_keys() {
    let mut ix = Index::new(group_of);
    ix.apply(&apply(cm("a", Some("g1"))));
    ix.apply(&apply(cm("b", Some("g1"))));
    ix.apply(&watcher::Event::Delete(cm("a", Some("g1"))));
    assert_eq!(names(&ix, "g1"), ["b"]);
    ix.apply(&watcher::Event::Delete(cm("b", Some("g1"))));
    assert!(ix.live.by_key.is_empty(), "no empty key left behind");
    assert!(ix.is_empty());
    // Deleting what is not indexed is harmless.
    ix.apply(&watcher::Event::Delete(cm("b", Some("g1"))));
    assert!(ix.is_empty());
}

#[test]
fn several_keys_per_object() {
    let prefixes = |c: &ConfigMap| {
        let name = c.metadata.name.clone().unwrap_or_default();
        name.match_indices('-')
            .map(|(i, _)| name[..i].to_owned())
            .collect()
    };
    let mut ix = Index::new(prefixes);
    ix.apply(&apply(cm("a-b-c", None)));
    assert_eq!(names(&ix, "a"), ["a-b-c"]);
    assert_eq!(names(&ix, "a-b"), ["a-b-c"]);
    ix.apply(&watcher::Event::Delete(cm("a-b-c", None)));
    assert!(ix.live.by_key.is_empty());
}

#[test]
fn relist_replaces_everything_at_init_done() {
    let mut ix = Index::new(group_of);
    ix.apply(&apply(cm("gone", Some("g1"))));
    ix.apply(&apply(cm("moved", Some("g1"))));
    ix.apply(&watcher::Event::Init);
    ix.apply(&watcher::Event::InitApply(cm("moved", Some("g2"))));
    ix.apply(&watcher::Event::InitApply(cm("new", Some("g1"))));
    // Until the relist is complete, lookups answer from what was known (as the store does).
    assert_eq!(names(&ix, "g1"), ["gone", "moved"]);
    ix.apply(&watcher::Event::InitDone);
    assert_eq!(names(&ix, "g1"), ["new"]);
    assert_eq!(names(&ix, "g2"), ["moved"]);
    assert_eq!(ix.len(), 2);
}

#[test]
fn empty_relist_clears_the_index() {
    let mut ix = Index::new(group_of);
    ix.apply(&apply(cm("a", Some("g1"))));
    ix.apply(&watcher::Event::Init);
    ix.apply(&watcher::Event::InitDone);
    assert!(ix.is_empty());
    assert!(names(&ix, "g1").is_empty());
}

/// Applies an event the way the watch stream does: store first, then index.
fn feed(ix: &IndexedStore<ConfigMap>, w: &mut Writer<ConfigMap>, ev: &watcher::Event<ConfigMap>) {
    w.apply_watcher_event(ev);
    ix.apply(ev);
}

fn found(ix: &IndexedStore<ConfigMap>, key: &str) -> Vec<String> {
    let mut n: Vec<String> = ix
        .find(key)
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    n.sort();
    n
}

#[test]
fn find_returns_the_cached_objects_of_a_key() {
    let (ix, mut w) = IndexedStore::new(group_of);
    feed(&ix, &mut w, &watcher::Event::Init);
    feed(&ix, &mut w, &watcher::Event::InitApply(cm("a", Some("g1"))));
    feed(&ix, &mut w, &watcher::Event::InitDone);
    feed(&ix, &mut w, &apply(cm("b", Some("g1"))));
    feed(&ix, &mut w, &apply(cm("c", Some("g2"))));
    assert_eq!(found(&ix, "g1"), ["a", "b"]);
    feed(&ix, &mut w, &watcher::Event::Delete(cm("a", Some("g1"))));
    assert_eq!(found(&ix, "g1"), ["b"]);
    assert_eq!(ix.store().state().len(), 2);
}

#[test]
fn find_agrees_with_the_store_while_the_index_trails_it() {
    let (ix, mut w) = IndexedStore::new(group_of);
    feed(&ix, &mut w, &apply(cm("a", Some("g1"))));
    // The store has seen the move to g2, the index not yet.
    w.apply_watcher_event(&apply(cm("a", Some("g2"))));
    assert!(found(&ix, "g1").is_empty(), "a is no longer in g1");
    // The store has seen a delete, the index not yet.
    feed(&ix, &mut w, &apply(cm("b", Some("g1"))));
    w.apply_watcher_event(&watcher::Event::Delete(cm("b", Some("g1"))));
    assert!(found(&ix, "g1").is_empty(), "b is gone");
}
