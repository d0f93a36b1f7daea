use super::*;
use serde_json::json;

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}})
}

#[test]
fn create_update_delete_bump_one_global_counter() {
    let store = Store::new(100);
    let res = ResKey::new("", "configmaps");
    let a = store
        .create(&res, &ObjKey::new("ns", "a"), cm("a"))
        .unwrap();
    assert_eq!(object_rv(&a), 1);
    assert_eq!(
        store.create(&res, &ObjKey::new("ns", "a"), cm("a")),
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        store.update(&res, &ObjKey::new("ns", "a"), 7, cm("a")),
        Err(StoreError::Conflict)
    );
    let a2 = store
        .update(&res, &ObjKey::new("ns", "a"), 1, cm("a"))
        .unwrap();
    assert_eq!(object_rv(&a2), 2);
    let gone = store.delete(&res, &ObjKey::new("ns", "a"), None).unwrap();
    assert_eq!(object_rv(&gone), 3);
    let kinds: Vec<EventType> = store
        .events_since(0)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![EventType::Added, EventType::Modified, EventType::Deleted]
    );
}

#[test]
fn history_overflow_expires_old_resource_versions() {
    let store = Store::new(3);
    let res = ResKey::new("", "configmaps");
    for i in 0..10 {
        store
            .create(
                &res,
                &ObjKey::new("ns", &format!("c{i}")),
                cm(&format!("c{i}")),
            )
            .unwrap();
    }
    assert!(store.events_since(2).is_err());
    assert_eq!(store.events_since(7).unwrap().len(), 3);
    assert_eq!(store.events_since(10).unwrap().len(), 0);
}

#[test]
fn list_pages_continue_after_last_key() {
    let store = Store::new(100);
    let res = ResKey::new("", "configmaps");
    for name in ["a", "b", "c"] {
        store
            .create(&res, &ObjKey::new("ns", name), cm(name))
            .unwrap();
    }
    let (page, _, next) = store.list(&res, Some("ns"), None, Some(2), &|_| true);
    assert_eq!(page.len(), 2);
    assert_eq!(next, Some(ObjKey::new("ns", "b")));
    let (page, _, next) = store.list(&res, Some("ns"), next.as_ref(), Some(2), &|_| true);
    assert_eq!(page.len(), 1);
    assert_eq!(next, None);
}

#[test]
fn owner_index_tracks_owner_references() {
    let store = Store::new(100);
    let res = ResKey::new("", "configmaps");
    let mut dep = cm("d");
    dep["metadata"]["ownerReferences"] =
        json!([{"uid": "u1", "name": "o", "kind": "X", "apiVersion": "v1"}]);
    store.create(&res, &ObjKey::new("ns", "d"), dep).unwrap();
    assert_eq!(store.dependents("u1").len(), 1);
    store.delete(&res, &ObjKey::new("ns", "d"), None).unwrap();
    assert!(store.dependents("u1").is_empty());
}

#[test]
fn an_event_encodes_the_committed_object_once() {
    let store = Store::new(10);
    let res = ResKey::new("", "configmaps");
    let stored = store
        .create(&res, &ObjKey::new("ns", "a"), cm("a"))
        .unwrap();
    let events = store.events_since(0).unwrap();
    let first = events[0].encoded_object().clone();
    assert_eq!(first, serde_json::to_vec(stored.as_ref()).unwrap());
    // The same buffer is handed out again, not a fresh encoding.
    assert_eq!(events[0].encoded_object().as_ptr(), first.as_ptr());
}
