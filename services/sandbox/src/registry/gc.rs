//! Garbage collector and namespace controller, driven by every committed event.
//!
//! Like the real kube-controller-manager, this runs asynchronously after the delete request
//! returns: dependents of a deleted owner are deleted (or lose the reference when they have other
//! owners); owners in foreground deletion lose their `foregroundDeletion` finalizer once no
//! blocking dependent is left; terminating namespaces are emptied and then removed; deleting a
//! CRD removes its custom resources.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Backend;
use super::strategy::{self, Deletion};
use crate::machinery::meta::{has_finalizers, is_deleting, meta_str};
use crate::registry::lifecycle::{self, DeleteOpts, FOREGROUND, Propagation};
use crate::storage::{EventType, ObjKey, ResKey, StoredEvent, object_rv};

/// Run the collector until the store stops sending events (shutdown).
pub async fn run(
    backend: Arc<Backend>,
    mut rx: mpsc::UnboundedReceiver<Arc<StoredEvent>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => handle(&backend, &e),
                None => return,
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

fn handle(backend: &Backend, e: &StoredEvent) {
    let obj = &e.object;
    if e.kind == EventType::Deleted {
        on_deleted(backend, e);
        return;
    }
    if !is_deleting(obj) {
        return;
    }
    if is_namespace(&e.res) {
        cleanup_namespace(backend, &e.key.name);
    } else if has_finalizer(obj, FOREGROUND) {
        foreground(backend, &e.res, &e.key);
    }
}

fn on_deleted(backend: &Backend, e: &StoredEvent) {
    let obj = &e.object;
    let uid = meta_str(obj, "uid").unwrap_or_default();
    for (res, key) in backend.store.dependents(uid) {
        release_dependent(backend, &res, &key, uid);
    }
    (strategy::of_storage(&e.res).collect)(backend, obj);
    // A dependent going away may unblock an owner in foreground deletion.
    for owner in obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some((res, key)) = owner_key(backend, &e.key.namespace, owner) {
            foreground(backend, &res, &key);
        }
    }
    if !e.key.namespace.is_empty() {
        let ns = backend.store.get(
            &ResKey::new("", "namespaces"),
            &ObjKey::new("", &e.key.namespace),
        );
        if ns.is_some_and(|n| is_deleting(&n)) {
            cleanup_namespace(backend, &e.key.namespace);
        }
    }
}

/// The owner is gone: drop the reference, and delete the dependent when no owner remains.
fn release_dependent(backend: &Backend, res: &ResKey, key: &ObjKey, owner_uid: &str) {
    let Some(dep) = backend.store.get(res, key) else {
        return;
    };
    let others = crate::storage::owner_uids(&dep)
        .into_iter()
        .filter(|u| u != owner_uid)
        .count();
    if others > 0 {
        lifecycle::modify(&backend.store, res, key, |cur| {
            let mut next = cur.clone();
            lifecycle::drop_owner_ref(&mut next, owner_uid);
            Some(next)
        });
    } else if !is_deleting(&dep) {
        delete(backend, res, key);
    }
}

fn delete(backend: &Backend, res: &ResKey, key: &ObjKey) {
    let opts = DeleteOpts {
        propagation: Some(Propagation::Background),
        ..Default::default()
    };
    match backend.registry.by_storage(res) {
        Some(info) => {
            if let Ok(lifecycle::Deleted::Gone(gone)) =
                lifecycle::delete(&backend.store, &info, key, &opts)
            {
                crate::registry::objects::after_delete(backend, &info, &gone);
            }
        }
        // Resource no longer served (its CRD is gone): remove the data directly.
        None => {
            let _ = backend.store.delete(res, key, None);
        }
    }
}

/// Foreground deletion: delete dependents; finish the owner once no blocking dependent remains.
fn foreground(backend: &Backend, res: &ResKey, key: &ObjKey) {
    let Some(owner) = backend.store.get(res, key) else {
        return;
    };
    if !is_deleting(&owner) || !has_finalizer(&owner, FOREGROUND) {
        return;
    }
    let uid = meta_str(&owner, "uid").unwrap_or_default().to_string();
    for (dres, dkey) in backend.store.dependents(&uid) {
        if backend
            .store
            .get(&dres, &dkey)
            .is_some_and(|d| !is_deleting(&d))
        {
            delete(backend, &dres, &dkey);
        }
    }
    let blocked = backend.store.dependents(&uid).iter().any(|(dres, dkey)| {
        backend
            .store
            .get(dres, dkey)
            .is_some_and(|d| blocks(&d, &uid))
    });
    if blocked {
        return;
    }
    let updated = lifecycle::modify(&backend.store, res, key, |cur| {
        let mut next = cur.clone();
        let fins = next
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)?;
        fins.retain(|f| f != FOREGROUND);
        Some(next)
    });
    if let Some(obj) = updated
        && let Some(gone) = lifecycle::finish_if_done(&backend.store, res, key, &obj)
        && let Some(info) = backend.registry.by_storage(res)
    {
        crate::registry::objects::after_delete(backend, &info, &gone);
    }
}

/// Whether `dep` holds an ownerReference to `uid` with blockOwnerDeletion.
fn blocks(dep: &Value, uid: &str) -> bool {
    dep.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["blockOwnerDeletion"].as_bool() == Some(true))
        })
}

fn has_finalizer(obj: &Value, name: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == name))
}

fn is_namespace(res: &ResKey) -> bool {
    strategy::of_storage(res).deletion == Deletion::NamespaceController
}

fn owner_key(backend: &Backend, namespace: &str, owner: &Value) -> Option<(ResKey, ObjKey)> {
    let info = backend
        .registry
        .by_kind(owner["apiVersion"].as_str()?, owner["kind"].as_str()?)?;
    let ns = if info.namespaced { namespace } else { "" };
    Some((info.storage(), ObjKey::new(ns, owner["name"].as_str()?)))
}

/// Delete everything in a terminating namespace; remove the namespace once it is empty.
fn cleanup_namespace(backend: &Backend, ns: &str) {
    let contents = backend.store.keys_in_namespace(ns);
    for (res, key) in &contents {
        if backend
            .store
            .get(res, key)
            .is_some_and(|o| !is_deleting(&o))
        {
            delete(backend, res, key);
        }
    }
    if !backend.store.keys_in_namespace(ns).is_empty() {
        return;
    }
    let (res, key) = (ResKey::new("", "namespaces"), ObjKey::new("", ns));
    if let Some(obj) = backend.store.get(&res, &key)
        && is_deleting(&obj)
        && !has_finalizers(&obj)
    {
        let _ = backend.store.delete(&res, &key, Some(object_rv(&obj)));
    }
}
