//! POST (create), PUT (update), PATCH and DELETE handlers.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{App, Req, Target, json_response, object_response, present};
use crate::machinery::error::{ApiError, ApiResult, Cause};
use crate::machinery::meta::{self, meta_str, set_meta};
use crate::machinery::patch::{self, PatchKind};
use crate::registry::lifecycle::{self, DeleteOpts, Deleted, Propagation};
use crate::registry::objects;
use crate::storage::{Obj, ObjKey, StoreError, object_rv};

/// Parse a request body into a JSON object (YAML accepted when the Content-Type says so).
fn parse_object(req: &Req) -> ApiResult<Value> {
    if req.body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let value: Value = if ct.contains("yaml") {
        serde_yaml::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// POST: create an object.
pub fn create(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    if t.subresource.is_some() || (t.info.namespaced && t.namespace.is_none()) {
        return Err(ApiError::method_not_allowed(
            "create is not allowed on this path",
        ));
    }
    let body = parse_object(req)?;
    let obj = objects::prepare_create(&app.backend, &t.info, t.namespace.as_deref(), body)?;
    let stored = store_create(app, t, obj, req.dry_run())?;
    Ok(object_response(StatusCode::CREATED, &stored, &t.info))
}

fn store_create(app: &Arc<App>, t: &Target, obj: Value, dry_run: bool) -> ApiResult<Obj> {
    let name = meta_str(&obj, "name").unwrap_or_default().to_string();
    // Held until the object is stored, so a quota's last slot is taken once.
    let _admitted = app
        .backend
        .quota
        .admit(&app.backend.store, &t.info, t.ns(), &name)?;
    if dry_run {
        return Ok(Arc::new(obj));
    }
    let key = ObjKey::new(t.ns(), &name);
    let stored = app
        .backend
        .store
        .create(&t.info.storage(), &key, obj)
        .map_err(|_| ApiError::already_exists(&t.info.group, &t.info.plural, &name))?;
    objects::after_write(&app.backend, &t.info, &stored);
    Ok(stored)
}

/// PUT: replace an object (or its status).
pub fn update(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    let body = parse_object(req)?;
    let name = t.name.as_deref().unwrap_or_default();
    if let Some(body_name) = meta_str(&body, "name")
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let precondition = meta_str(&body, "resourceVersion")
        .map(parse_rv)
        .transpose()?;
    // With a precondition a conflict ends the request, so the body is used once and moved;
    // without one a conflict retries and needs it again.
    let mut body = Some(body);
    let stored = write_existing(app, t, precondition, req.dry_run(), |_| {
        let proposed = body
            .take()
            .ok_or_else(|| ApiError::internal("body reused"))?;
        if precondition.is_none() {
            body = Some(proposed.clone());
        }
        Ok(proposed)
    })?;
    Ok(object_response(StatusCode::OK, &stored, &t.info))
}

fn parse_rv(s: &str) -> ApiResult<u64> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))
}

/// PATCH: JSON patch, merge patch, strategic merge patch or server-side apply.
pub fn patch(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchKind::from_content_type(ct)?;
    let body = patch::parse_body(kind, &req.body)?;
    if kind == PatchKind::Apply && req.q("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let precondition = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(parse_rv)
        .transpose()?;
    let name = t.name.as_deref().unwrap_or_default();
    let key = ObjKey::new(t.ns(), name);
    if kind == PatchKind::Apply
        && t.subresource.is_none()
        && app.backend.store.get(&t.info.storage(), &key).is_none()
    {
        return apply_create(app, t, req, body);
    }
    let info = t.info.clone();
    let stored = write_existing(app, t, precondition, req.dry_run(), |cur| {
        patch::apply(kind, &present(cur, &info), &body)
    })?;
    Ok(object_response(StatusCode::OK, &stored, &t.info))
}

/// Server-side apply of an absent object creates it from the applied configuration.
fn apply_create(app: &Arc<App>, t: &Target, req: &Req, mut body: Value) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or_default();
    if meta_str(&body, "name").is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    set_meta(&mut body, "name", json!(name));
    let obj = objects::prepare_create(&app.backend, &t.info, t.namespace.as_deref(), body)?;
    match store_create(app, t, obj, req.dry_run()) {
        Ok(stored) => Ok(object_response(StatusCode::CREATED, &stored, &t.info)),
        // Lost a race with another creator: apply onto what is there now.
        Err(e) if e.code == 409 => patch(app, t, req),
        Err(e) => Err(e),
    }
}

/// Read-modify-write of an existing object: `produce` turns the current object into the
/// client's intended object; server rules (status subresource, metadata, schema) then apply.
fn write_existing(
    app: &Arc<App>,
    t: &Target,
    precondition: Option<u64>,
    dry_run: bool,
    mut produce: impl FnMut(&Value) -> ApiResult<Value>,
) -> ApiResult<Obj> {
    let info = &t.info;
    let name = t.name.as_deref().unwrap_or_default();
    let (res, key) = (info.storage(), ObjKey::new(t.ns(), name));
    loop {
        let cur = app
            .backend
            .store
            .get(&res, &key)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))?;
        if precondition.is_some_and(|rv| rv != object_rv(&cur)) {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        let proposed = produce(&cur)?;
        let next = objects::prepare_update(info, t.subresource.as_deref(), &cur, proposed)?;
        if meta::same_ignoring_rv(&cur, &next) {
            return Ok(cur);
        }
        if dry_run {
            return Ok(Arc::new(next));
        }
        match app.backend.store.update(&res, &key, object_rv(&cur), next) {
            Ok(stored) => {
                objects::after_write(&app.backend, info, &stored);
                if let Some(gone) =
                    lifecycle::finish_if_done(&app.backend.store, &res, &key, &stored)
                {
                    objects::after_delete(&app.backend, info, &gone);
                }
                return Ok(stored);
            }
            Err(StoreError::Conflict) if precondition.is_some() => {
                return Err(ApiError::stale(&info.group, &info.plural, name));
            }
            Err(StoreError::Conflict) => continue,
            Err(_) => return Err(ApiError::not_found(&info.group, &info.plural, name)),
        }
    }
}

/// DeleteOptions from the body and query.
fn delete_opts(req: &Req) -> ApiResult<DeleteOpts> {
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or(req.q("propagationPolicy"));
    let orphan = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or(req.q("orphanDependents").map(|v| v == "true"));
    let propagation = match (policy, orphan) {
        (Some(p), _) => Some(Propagation::parse(p)?),
        (None, Some(true)) => Some(Propagation::Orphan),
        (None, Some(false)) => Some(Propagation::Background),
        (None, None) => None,
    };
    let pre = |f: &str| {
        body.pointer(&format!("/preconditions/{f}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeleteOpts {
        propagation,
        uid: pre("uid"),
        resource_version: pre("resourceVersion"),
    })
}

/// DELETE one object.
pub fn delete(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    if t.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "delete is not allowed on a subresource",
        ));
    }
    let opts = delete_opts(req)?;
    let key = ObjKey::new(t.ns(), t.name.as_deref().unwrap_or_default());
    if req.dry_run() {
        let cur = app
            .backend
            .store
            .get(&t.info.storage(), &key)
            .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.plural, &key.name))?;
        return Ok(object_response(StatusCode::OK, &cur, &t.info));
    }
    match lifecycle::delete(&app.backend.store, &t.info, &key, &opts)? {
        Deleted::Gone(obj) => {
            objects::after_delete(&app.backend, &t.info, &obj);
            Ok(json_response(
                StatusCode::OK,
                &success_status(&t.info.group, &t.info.plural, &obj),
            ))
        }
        Deleted::Pending(obj) => Ok(object_response(StatusCode::OK, &obj, &t.info)),
    }
}

fn success_status(group: &str, plural: &str, obj: &Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": meta_str(obj, "name"), "group": group, "kind": plural, "uid": meta_str(obj, "uid")}})
}

/// DELETE a collection (with selectors).
pub fn delete_collection(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    let filter = super::read::Filter::from_req(&t.info, req)?;
    let opts = delete_opts(req)?;
    let (items, rv, _) = app.backend.store.list(
        &t.info.storage(),
        t.namespace.as_deref(),
        None,
        None,
        &|o| filter.matches(o),
    );
    let mut causes: Vec<Cause> = Vec::new();
    for obj in &items {
        let key = ObjKey::new(
            meta_str(obj, "namespace").unwrap_or_default(),
            meta_str(obj, "name").unwrap_or_default(),
        );
        match lifecycle::delete(&app.backend.store, &t.info, &key, &opts) {
            Ok(Deleted::Gone(gone)) => objects::after_delete(&app.backend, &t.info, &gone),
            Ok(Deleted::Pending(_)) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => causes.push(Cause::new(key.name.clone(), e.reason, e.message)),
        }
    }
    if let Some(first) = causes.first() {
        return Err(ApiError::internal(format!(
            "deletecollection partially failed: {}",
            first.message
        )));
    }
    Ok(super::read::list_response(&t.info, &items, rv))
}
