//! HTTP front: routes Kubernetes REST paths to the handlers.
//!
//! One fallback handler parses the path itself because Kubernetes paths have a variable shape
//! (`/api/v1/...` vs `/apis/{group}/{version}/...`, namespaced or not, optional subresource).

pub mod access;
mod discovery;
mod openapi;
mod protobuf;
mod read;
mod table;
mod watch;
mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::machinery::error::{ApiError, ApiResult};
use crate::registry::Backend;
use crate::registry::resources::{Registry, ResourceInfo};

/// Largest request body accepted (the real server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP layer.
#[derive(Debug)]
pub struct App {
    /// Objects, served resources and admission state, shared with the garbage collector.
    pub backend: Arc<Backend>,
    /// How often an idle watch with allowWatchBookmarks gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Cancelled on shutdown; ends open watches so the server can stop.
    pub shutdown: CancellationToken,
    /// Tokens and RBAC; None serves everyone.
    pub access: Option<crate::http::access::Access>,
}

/// The axum router serving the whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

/// A request aimed at a resource (collection, object or subresource).
#[derive(Debug, Clone)]
pub struct Target {
    /// Resource being addressed.
    pub info: Arc<ResourceInfo>,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Object name from the path.
    pub name: Option<String>,
    /// Subresource (`status`).
    pub subresource: Option<String>,
}

impl Target {
    /// Namespace to store under: "" for cluster-scoped resources.
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// Everything a handler may need from the request.
#[derive(Debug)]
pub struct Req {
    /// Query parameters (last one wins).
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: bytes::Bytes,
}

impl Req {
    /// A query parameter.
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Whether the client asked for a meta.k8s.io Table.
    pub fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    /// Whether the client asked for `meta.k8s.io/v1 PartialObjectMetadata` (kube-rs
    /// `get_metadata`/`list_metadata`/`metadata_watcher`).
    pub fn wants_metadata(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }
}

async fn dispatch(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Body,
) -> Response {
    let query: HashMap<String, String> = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|Query(q)| q.into_iter().collect())
        .unwrap_or_default();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::too_large().into_response(),
    };
    let body = match decode_body(&mut headers, body) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let req = Req {
        query,
        headers,
        body,
    };
    let path = uri.path().trim_end_matches('/');
    match route(&app, &method, path, req).await {
        Ok(resp) => resp,
        Err(err) => {
            tracing::debug!(%method, path, code = err.code, reason = err.reason, "request failed");
            err.into_response()
        }
    }
}

/// Bodies are JSON (or YAML). kubectl's typed commands send protobuf; the few simple kinds
/// [`protobuf`] reads are turned into JSON, other protobuf or CBOR bodies get 415.
fn decode_body(headers: &mut HeaderMap, body: bytes::Bytes) -> ApiResult<bytes::Bytes> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if body.is_empty() {
        return Ok(body);
    }
    if ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(ct));
    }
    if !ct.contains("protobuf") {
        return Ok(body);
    }
    let value = protobuf::decode(&body)?;
    let json = serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?;
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(bytes::Bytes::from(json))
}

async fn route(app: &Arc<App>, method: &Method, path: &str, req: Req) -> ApiResult<Response> {
    let user = match &app.access {
        Some(access) => Some(access.authenticate(&req.headers)?),
        None => None,
    };
    // Discovery, OpenAPI, health and version need no authorization.
    if let Some(resp) = discovery::serve(app, method, path, &req) {
        return resp;
    }
    let (target, watch_prefix) = parse_target(&app.backend.registry, path)?;
    let name_given = target.name.is_some();
    let watch = watch_prefix || is_true(req.q("watch"));
    if let Some(user) = &user
        && app.access.as_ref().is_some_and(access::Access::rbac)
    {
        let verb = access::verb(method, name_given, watch);
        access::authorize(
            &app.backend.store,
            user,
            &rbac_attributes(&target, verb, path),
        )?;
    }
    match (method.clone(), name_given) {
        (Method::GET, true) => read::get(app, &target, &req),
        (Method::GET, false) if watch => watch::watch(app, &target, &req),
        (Method::GET, false) => read::list(app, &target, &req),
        (Method::POST, false) => write::create(app, &target, &req),
        (Method::PUT, true) => write::update(app, &target, &req),
        (Method::PATCH, true) => write::patch(app, &target, &req),
        (Method::DELETE, true) => write::delete(app, &target, &req),
        (Method::DELETE, false) => write::delete_collection(app, &target, &req),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

/// What a resource request asks, in RBAC's terms.
fn rbac_attributes<'a>(target: &'a Target, verb: &'a str, path: &str) -> access::Attributes<'a> {
    let is_namespace = target.info.strategy.is_namespace;
    access::Attributes {
        verb,
        group: &target.info.group,
        resource: &target.info.plural,
        // Served as `status`, authorised as what was asked for.
        subresource: match target.subresource.as_deref() {
            Some("status")
                if target.info.strategy.finalize_subresource && path.ends_with("/finalize") =>
            {
                Some("finalize")
            }
            other => other,
        },
        // A request on a Namespace object is in that namespace, as on a real server.
        namespace: match (is_namespace, target.name.as_deref()) {
            (true, Some(name)) => Some(name),
            _ => target.namespace.as_deref(),
        },
        name: target.name.as_deref(),
    }
}

fn is_true(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1"))
}

/// Split a resource path into group, version and the resource part, then resolve it.
fn parse_target(registry: &Registry, path: &str) -> ApiResult<(Target, bool)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let (watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let subresource_of_ns = |s: &str| s == "status" || s == "finalize";
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..]
            if !(tail.is_empty() || tail.len() == 1 && subresource_of_ns(tail[0])) =>
        {
            (Some(*ns), tail)
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_route(path)),
    };
    let info = registry
        .lookup(group, version, plural)
        .ok_or_else(|| ApiError::no_route(path))?;
    if namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_route(path));
    }
    if let Some(s) = sub
        && !(s == "status" && info.status_subresource
            || info.strategy.finalize_subresource && s == "finalize")
    {
        return Err(ApiError::no_route(path));
    }
    let decode = |s: &str| s.to_string();
    let target = Target {
        info,
        namespace: namespace.map(decode),
        name: name.map(decode),
        subresource: sub.map(|s| {
            if s == "finalize" {
                "status".to_string()
            } else {
                s.to_string()
            }
        }),
    };
    Ok((target, watch))
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// An object as served at the requested version (the storage may hold another served version).
pub fn present(obj: &Value, info: &ResourceInfo) -> Value {
    let mut out = obj.clone();
    let api_version = info.api_version();
    if out.get("apiVersion").and_then(Value::as_str) != Some(api_version.as_str())
        && let Some(map) = out.as_object_mut()
    {
        map.insert("apiVersion".into(), Value::String(api_version));
    }
    out
}

/// The `PartialObjectMetadata` view of an object.
pub fn metadata_only(obj: &Value) -> Value {
    serde_json::json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

/// Serialise `obj` as the response body without copying when no version rewrite is needed.
pub fn object_response(code: StatusCode, obj: &Value, info: &ResourceInfo) -> Response {
    if obj.get("apiVersion").and_then(Value::as_str) == Some(info.api_version().as_str()) {
        json_response(code, obj)
    } else {
        json_response(code, &present(obj, info))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}
