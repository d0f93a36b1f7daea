//! Deletion semantics shared by the HTTP handlers and the garbage collector: finalizers,
//! deletionTimestamp, propagation policies, and read-modify-write retries.

use serde_json::{Value, json};

use super::strategy::{self, Deletion};
use crate::machinery::error::{ApiError, ApiResult};
use crate::machinery::meta::{has_finalizers, is_deleting, now_rfc3339, set_meta};
use crate::registry::resources::ResourceInfo;
use crate::storage::{Obj, ObjKey, ResKey, Store, StoreError, object_rv};

/// Finalizer the real server sets on owners deleted with `propagationPolicy=Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete the owner now, dependents afterwards.
    Background,
    /// Keep the owner (with `foregroundDeletion`) until blocking dependents are gone.
    Foreground,
    /// Remove the owner reference from dependents, keep them.
    Orphan,
}

impl Propagation {
    /// Parse the API spelling.
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::invalid(
                "",
                "DeleteOptions",
                "",
                vec![crate::machinery::error::Cause::new(
                    "propagationPolicy",
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                )],
            )),
        }
    }
}

/// Parsed DeleteOptions.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// Requested propagation; None = the resource's default.
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// Outcome of a delete request.
#[derive(Debug)]
pub enum Deleted {
    /// Removed; carries the last state.
    Gone(Obj),
    /// Still present with deletionTimestamp (finalizers pending).
    Pending(Obj),
}

/// Delete an object honouring preconditions, finalizers and the propagation policy.
pub fn delete(
    store: &Store,
    info: &ResourceInfo,
    key: &ObjKey,
    opts: &DeleteOpts,
) -> ApiResult<Deleted> {
    let res = info.storage();
    let policy = opts
        .propagation
        .unwrap_or(info.strategy.default_propagation);
    loop {
        let cur = store
            .get(&res, key)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, &key.name))?;
        check_preconditions(info, key, &cur, opts)?;
        let uid = crate::machinery::meta::meta_str(&cur, "uid")
            .unwrap_or_default()
            .to_string();
        if policy == Propagation::Orphan {
            orphan_dependents(store, &uid);
        }
        let needs_wait = has_finalizers(&cur)
            || info.strategy.deletion == Deletion::NamespaceController
            || policy == Propagation::Foreground && !store.dependents(&uid).is_empty();
        if !needs_wait {
            match store.delete(&res, key, Some(object_rv(&cur))) {
                Ok(gone) => return Ok(Deleted::Gone(gone)),
                Err(StoreError::Conflict) => continue,
                Err(_) => return Err(ApiError::not_found(&info.group, &info.plural, &key.name)),
            }
        }
        let next = mark_deleting(info, &cur, policy);
        if next == *cur {
            return Ok(Deleted::Pending(cur));
        }
        match store.update(&res, key, object_rv(&cur), next) {
            Ok(obj) => return Ok(Deleted::Pending(obj)),
            Err(StoreError::Conflict) => continue,
            Err(_) => return Err(ApiError::not_found(&info.group, &info.plural, &key.name)),
        }
    }
}

fn check_preconditions(
    info: &ResourceInfo,
    key: &ObjKey,
    cur: &Value,
    opts: &DeleteOpts,
) -> ApiResult<()> {
    if let Some(uid) = &opts.uid
        && crate::machinery::meta::meta_str(cur, "uid") != Some(uid.as_str())
    {
        let why = format!(
            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
            crate::machinery::meta::meta_str(cur, "uid").unwrap_or_default()
        );
        return Err(ApiError::conflict(
            &info.group,
            &info.plural,
            &key.name,
            &why,
        ));
    }
    if let Some(rv) = &opts.resource_version
        && crate::machinery::meta::meta_str(cur, "resourceVersion") != Some(rv.as_str())
    {
        let why = format!(
            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
            object_rv(cur)
        );
        return Err(ApiError::conflict(
            &info.group,
            &info.plural,
            &key.name,
            &why,
        ));
    }
    Ok(())
}

/// The object with deletionTimestamp set (kept if already set) and the policy's finalizer.
fn mark_deleting(info: &ResourceInfo, cur: &Value, policy: Propagation) -> Value {
    let mut next = cur.clone();
    if !is_deleting(cur) {
        set_meta(&mut next, "deletionTimestamp", json!(now_rfc3339()));
        set_meta(&mut next, "deletionGracePeriodSeconds", json!(0));
    }
    if policy == Propagation::Foreground {
        let mut fins: Vec<Value> = cur
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !fins.iter().any(|f| f == FOREGROUND) {
            fins.push(json!(FOREGROUND));
            set_meta(&mut next, "finalizers", Value::Array(fins));
        }
    }
    if info.strategy.deletion == Deletion::NamespaceController {
        next["status"] = json!({"phase": "Terminating"});
        next["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    next
}

/// Remove the owner reference to `owner_uid` from every dependent.
pub fn orphan_dependents(store: &Store, owner_uid: &str) {
    for (res, key) in store.dependents(owner_uid) {
        let _ = modify(store, &res, &key, |obj| {
            let mut next = obj.clone();
            drop_owner_ref(&mut next, owner_uid);
            Some(next)
        });
    }
}

/// Remove one owner reference; returns how many remain.
pub fn drop_owner_ref(obj: &mut Value, owner_uid: &str) -> usize {
    let Some(refs) = obj
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return 0;
    };
    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
    let left = refs.len();
    if left == 0
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.remove("ownerReferences");
    }
    left
}

/// Read-modify-write with retry on conflict. `f` returns None to leave the object alone.
/// Returns the stored result, or None when the object is gone or unchanged.
pub fn modify(
    store: &Store,
    res: &ResKey,
    key: &ObjKey,
    mut f: impl FnMut(&Value) -> Option<Value>,
) -> Option<Obj> {
    loop {
        let cur = store.get(res, key)?;
        let next = f(&cur)?;
        if crate::machinery::meta::same_ignoring_rv(&cur, &next) {
            return None;
        }
        match store.update(res, key, object_rv(&cur), next) {
            Ok(obj) => return Some(obj),
            Err(StoreError::Conflict) => continue,
            Err(_) => return None,
        }
    }
}

/// After a write: an object being deleted whose finalizers are all gone is removed now.
pub fn finish_if_done(store: &Store, res: &ResKey, key: &ObjKey, obj: &Obj) -> Option<Obj> {
    if !is_deleting(obj)
        || has_finalizers(obj)
        || strategy::of_storage(res).deletion == Deletion::NamespaceController
    {
        return None;
    }
    store.delete(res, key, Some(object_rv(obj))).ok()
}
