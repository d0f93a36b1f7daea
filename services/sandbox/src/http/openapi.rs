//! Minimal OpenAPI v3 documents.
//!
//! kubectl (1.27+) downloads `/openapi/v3` to decide whether the server validates fields itself
//! (`fieldValidation` on PATCH of the kind). Advertising that lets `kubectl apply`/`create`
//! leave validation to the server instead of failing with "failed to download openapi". No
//! schemas are published, so kubectl falls back to its built-in types for strategic merge.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::registry::resources::{Registry, ResourceInfo};

/// The `/openapi/v3` index: one entry per served group version.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".to_string())];
    for (group, versions) in registry.groups() {
        gvs.extend(versions.into_iter().map(|v| (group.clone(), v)));
    }
    for (group, version) in gvs {
        let key = gv_path(&group, &version);
        let hash = document(registry, &group, &version)
            .map(|d| hash_of(&d))
            .unwrap_or_default();
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// The document of one group version: a PATCH operation per resource advertising `fieldValidation`.
pub fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.resources(group, version)?;
    let mut paths = Map::new();
    for r in &resources {
        paths.insert(item_path(r), json!({"patch": patch_op(r)}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (wfe sandbox)", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn item_path(r: &ResourceInfo) -> String {
    let base = format!("/{}", gv_path(&r.group, &r.version));
    if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
    } else {
        format!("{base}/{}/{{name}}", r.plural)
    }
}

fn patch_op(r: &ResourceInfo) -> Value {
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    json!({
        "operationId": format!("patch{}", r.kind),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")],
        "responses": {"200": {"description": "OK"}},
    })
}
