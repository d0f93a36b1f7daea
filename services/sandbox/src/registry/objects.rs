//! Server-owned rules for object contents on create and update: metadata the server sets,
//! status-subresource separation, generation, schema validation, and side effects of CRDs and
//! namespaces.

use serde_json::{Value, json};

use super::Backend;
use super::strategy::NameRule;
use crate::machinery::error::{ApiError, ApiResult, Cause};
use crate::machinery::meta::{self, meta_str, remove_meta, set_meta};
use crate::registry::resources::ResourceInfo;
use crate::registry::schema;
use crate::storage::{Obj, ObjKey, ResKey};

/// Metadata fields clients may not set on create.
const SERVER_SET: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "generation",
];

/// Turn a create request body into the object to store.
pub fn prepare_create(
    backend: &Backend,
    info: &ResourceInfo,
    ns: Option<&str>,
    mut obj: Value,
) -> ApiResult<Value> {
    check_type(info, &mut obj)?;
    let name = match (
        meta_str(&obj, "name").filter(|n| !n.is_empty()),
        meta_str(&obj, "generateName").filter(|n| !n.is_empty()),
    ) {
        (Some(n), _) => n.to_string(),
        (None, Some(prefix)) => meta::generate_name(prefix),
        (None, None) => {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                "",
                vec![Cause::new(
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                )],
            ));
        }
    };
    let bad_name = match info.strategy.name_rule {
        NameRule::Label => meta::check_label(&name, "metadata.name"),
        NameRule::Subdomain => meta::check_subdomain(&name, "metadata.name"),
    };
    if let Some(cause) = bad_name {
        return Err(ApiError::invalid(
            &info.group,
            &info.kind,
            &name,
            vec![cause],
        ));
    }
    set_meta(&mut obj, "name", json!(name));
    place_in_namespace(backend, info, ns, &mut obj)?;
    (info.strategy.admit_create)(backend, &mut obj)?;
    for field in SERVER_SET {
        remove_meta(&mut obj, field);
    }
    set_meta(&mut obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
    set_meta(&mut obj, "creationTimestamp", json!(meta::now_rfc3339()));
    set_meta(&mut obj, "generation", json!(1));
    initial_status(info, &mut obj);
    check_contents(info, &mut obj, None)?;
    Ok(obj)
}

/// kind/apiVersion must match the URL (when given); fill them in otherwise.
fn check_type(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let want_av = info.api_version();
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != info.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            info.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && av != want_av
    {
        let same_group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("") == info.group;
        if !same_group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), json!(want_av));
        map.insert("kind".into(), json!(info.kind));
    }
    Ok(())
}

fn place_in_namespace(
    backend: &Backend,
    info: &ResourceInfo,
    ns: Option<&str>,
    obj: &mut Value,
) -> ApiResult<()> {
    if !info.namespaced {
        remove_meta(obj, "namespace");
        return Ok(());
    }
    let ns = ns.unwrap_or_default();
    if let Some(body_ns) = meta_str(obj, "namespace").filter(|n| !n.is_empty())
        && body_ns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let namespace = backend
        .store
        .get(&ResKey::new("", "namespaces"), &ObjKey::new("", ns))
        .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
    if meta::is_deleting(&namespace) {
        return Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            info.plural,
            meta_str(obj, "name").unwrap_or_default()
        )));
    }
    set_meta(obj, "namespace", json!(ns));
    Ok(())
}

/// Status the server sets on create (clients cannot set status when it is a subresource).
fn initial_status(info: &ResourceInfo, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if info.status_subresource {
        map.remove("status");
    }
    (info.strategy.prepare_for_create)(map);
}

/// Schema validation for custom resources and CRD checks; prunes and defaults in place.
fn check_contents(info: &ResourceInfo, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    let causes = if let Some(schema) = &info.schema {
        schema::prune(schema, obj, true);
        schema::apply_defaults(schema, obj);
        schema::validate(schema, obj, old, "")
    } else {
        (info.strategy.validate)(obj, old)
    };
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&info.group, &info.kind, &name, causes))
    }
}

/// Build the object to store from the current one and the client's intended object.
pub fn prepare_update(
    info: &ResourceInfo,
    sub: Option<&str>,
    cur: &Value,
    proposed: Value,
) -> ApiResult<Value> {
    let mut next = if sub.is_some() {
        // Status writes change only status (and, for namespaces/finalize, spec).
        with_fields_from(cur, proposed, info.strategy.status_fields)
    } else {
        let mut next = proposed;
        if !next.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if info.status_subresource {
            match cur.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    next.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        keep_server_metadata(cur, &mut next);
        next
    };
    if let Some(map) = next.as_object_mut() {
        map.insert("apiVersion".into(), json!(info.api_version()));
        map.insert("kind".into(), json!(info.kind));
    }
    let generation = cur
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let bump = meta::spec_changed(cur, &next, info.status_subresource);
    set_meta(
        &mut next,
        "generation",
        json!(if bump { generation + 1 } else { generation }),
    );
    check_contents(info, &mut next, Some(cur))?;
    Ok(next)
}

/// `cur` with `fields` taken from `proposed` (dropped when `proposed` lacks them). The
/// replaced fields are not copied out of `cur` and `proposed`'s are moved, not cloned:
/// status writes are most of the sandbox's writes.
fn with_fields_from(cur: &Value, mut proposed: Value, fields: &[&str]) -> Value {
    let Some(cur) = cur.as_object() else {
        return cur.clone();
    };
    let mut next: serde_json::Map<String, Value> = cur
        .iter()
        .filter(|(k, _)| !fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for field in fields {
        if let Some(v) = proposed.as_object_mut().and_then(|m| m.remove(*field)) {
            next.insert((*field).to_owned(), v);
        }
    }
    Value::Object(next)
}

/// Identity and lifecycle metadata is owned by the server.
fn keep_server_metadata(cur: &Value, next: &mut Value) {
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match cur.pointer(&format!("/metadata/{field}")) {
            Some(v) => set_meta(next, field, v.clone()),
            None => remove_meta(next, field),
        }
    }
    remove_meta(next, "managedFields");
    remove_meta(next, "selfLink");
}

/// Side effects of a committed create or update.
pub fn after_write(backend: &Backend, info: &ResourceInfo, stored: &Obj) {
    (info.strategy.after_write)(backend, stored);
}

/// Side effects of a committed delete that the HTTP path can do synchronously.
pub fn after_delete(backend: &Backend, info: &ResourceInfo, gone: &Obj) {
    (info.strategy.after_delete)(backend, gone);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::with_fields_from;

    #[test]
    fn a_status_write_takes_only_the_status_and_drops_a_missing_one() {
        let cur = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"old": true}});
        let proposed =
            json!({"metadata": {"name": "b"}, "spec": {"x": 2}, "status": {"new": true}});
        assert_eq!(
            with_fields_from(&cur, proposed, &["status"]),
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"new": true}})
        );
        let without = json!({"spec": {"x": 2}});
        assert_eq!(
            with_fields_from(&cur, without, &["status", "spec"]),
            json!({"metadata": {"name": "a"}, "spec": {"x": 2}})
        );
    }
}
