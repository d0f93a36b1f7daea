//! GET of one object and LIST of a collection (selectors, pagination, Table output).

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{App, Req, Target, json_response, object_response, present, table};
use crate::machinery::error::{ApiError, ApiResult};
use crate::machinery::selector::{FieldSelector, LabelSelector};
use crate::registry::resources::ResourceInfo;
use crate::storage::{Obj, ObjKey};

/// GET one object.
pub fn get(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or_default();
    let obj = app
        .backend
        .store
        .get(&t.info.storage(), &ObjKey::new(t.ns(), name))
        .ok_or_else(|| ApiError::not_found(&t.info.group, &t.info.plural, name))?;
    if req.wants_table() {
        return Ok(table::response(
            &t.info,
            std::slice::from_ref(&obj),
            None,
            app.backend.store.current_rv(),
        ));
    }
    if req.wants_metadata() {
        return Ok(json_response(StatusCode::OK, &super::metadata_only(&obj)));
    }
    Ok(object_response(StatusCode::OK, &obj, &t.info))
}

/// Selectors of a list or watch request.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// Parse `labelSelector` and `fieldSelector`, checking field paths the resource supports.
    pub fn from_req(info: &ResourceInfo, req: &Req) -> ApiResult<Self> {
        let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or_default())?;
        let allowed = |p: &str| {
            matches!(p, "metadata.name" | "metadata.namespace")
                || info.selectable_fields.iter().any(|f| f == p)
        };
        let fields = FieldSelector::parse(req.q("fieldSelector").unwrap_or_default(), &allowed)?;
        Ok(Self { labels, fields })
    }

    /// Whether `obj` passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(obj))
            && (self.fields.is_empty() || self.fields.matches(obj))
    }
}

/// LIST a collection.
pub fn list(app: &Arc<App>, t: &Target, req: &Req) -> ApiResult<Response> {
    let filter = Filter::from_req(&t.info, req)?;
    let limit = match req.q("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        )
        .filter(|l| *l > 0),
        None => None,
    };
    let after = req.q("continue").map(decode_continue).transpose()?;
    let ns = t.namespace.as_deref();
    let (items, rv, last) =
        app.backend
            .store
            .list(&t.info.storage(), ns, after.as_ref(), limit, &|o| {
                filter.matches(o)
            });
    let cont = last.map(|k| encode_continue(&k));
    if req.wants_table() {
        return Ok(table::response(&t.info, &items, cont, rv));
    }
    if req.wants_metadata() {
        let items: Vec<Value> = items.iter().map(|o| super::metadata_only(o)).collect();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if let Some(c) = cont {
            meta["continue"] = json!(c);
        }
        let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items});
        return Ok(json_response(StatusCode::OK, &list));
    }
    Ok(list_body(&t.info, &items, rv, cont.as_deref()))
}

/// Serialise a list without cloning the items.
fn list_body(info: &ResourceInfo, items: &[Obj], rv: u64, cont: Option<&str>) -> Response {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    let head = json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": meta});
    let mut out = serde_json::to_vec(&head).unwrap_or_default();
    out.pop(); // reopen the object to append "items"
    out.extend_from_slice(b",\"items\":[");
    let api_version = info.api_version();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let bytes = if item.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
        {
            serde_json::to_vec(item.as_ref())
        } else {
            serde_json::to_vec(&present(item, info))
        };
        out.extend(bytes.unwrap_or_default());
    }
    out.extend_from_slice(b"]}");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

/// Continue tokens are the hex of `namespace/name` of the last returned item.
pub fn encode_continue(key: &ObjKey) -> String {
    hex::encode(format!("{}/{}", key.namespace, key.name))
}

fn decode_continue(token: &str) -> ApiResult<ObjKey> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let raw = hex::decode(token).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (ns, name) = s.split_once('/').ok_or_else(bad)?;
    Ok(ObjKey::new(ns, name))
}

/// A list as JSON (for callers that need the Value, e.g. deletecollection).
pub fn list_value(info: &ResourceInfo, items: &[Obj], rv: u64) -> Value {
    let items: Vec<Value> = items.iter().map(|i| present(i, info)).collect();
    json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(),
        "metadata": {"resourceVersion": rv.to_string()}, "items": items})
}

/// 200 with a list value.
pub fn list_response(info: &ResourceInfo, items: &[Obj], rv: u64) -> Response {
    json_response(StatusCode::OK, &list_value(info, items, rv))
}
