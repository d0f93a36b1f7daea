//! Discovery documents: `/version`, `/api`, `/apis`, group and group-version resource lists.
//!
//! Only the legacy (unaggregated) discovery format is served. kubectl asks for the aggregated
//! `apidiscovery.k8s.io/v2` form first, sees a plain `application/json` answer and falls back.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{App, Req, json_response};
use crate::machinery::error::{ApiError, ApiResult};
use crate::registry::resources::ResourceInfo;

/// Answer a discovery path, or None when `path` is not one.
pub fn serve(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    _req: &Req,
) -> Option<ApiResult<Response>> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = match segs.as_slice() {
        ["version"] => Some(version()),
        ["healthz" | "livez" | "readyz", ..] => return Some(Ok(plain_ok())),
        ["api"] => Some(Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}))),
        ["api", v] => Some(resource_list(app, "", v)),
        ["apis"] => Some(group_list(app)),
        ["apis", g] => Some(group(app, g)),
        ["apis", g, v] => Some(resource_list(app, g, v)),
        ["openapi", "v3"] => Some(Some(super::openapi::index(&app.backend.registry))),
        ["openapi", "v3", "api", v] => Some(super::openapi::document(&app.backend.registry, "", v)),
        ["openapi", "v3", "apis", g, v] => {
            Some(super::openapi::document(&app.backend.registry, g, v))
        }
        ["openapi", ..] | ["swagger.json"] => {
            return Some(Err(ApiError::no_route(path)));
        }
        _ => None,
    }?;
    if *method != Method::GET {
        return Some(Err(ApiError::method_not_allowed(
            "discovery documents are read-only",
        )));
    }
    Some(
        body.map(|b| json_response(StatusCode::OK, &b))
            .ok_or_else(|| ApiError::no_route(path)),
    )
}

fn plain_ok() -> Response {
    use axum::response::IntoResponse;
    (StatusCode::OK, "ok").into_response()
}

fn version() -> Option<Value> {
    Some(json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-wfe-sandbox",
        "gitCommit": "sandbox", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "n/a", "compiler": "rustc", "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": vs, "preferredVersion": preferred})
}

fn group_list(app: &App) -> Option<Value> {
    let groups: Vec<Value> = app
        .backend
        .registry
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

fn group(app: &App, name: &str) -> Option<Value> {
    let groups = app.backend.registry.groups();
    let (_, versions) = groups.iter().find(|(g, _)| g == name)?;
    let mut entry = group_entry(name, versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn resource_list(app: &App, group: &str, version: &str) -> Option<Value> {
    let resources = app.backend.registry.resources(group, version)?;
    let mut list = Vec::new();
    for r in &resources {
        list.push(resource_entry(r));
        if r.status_subresource {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn resource_entry(r: &ResourceInfo) -> Value {
    let mut entry = json!({
        "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}
