//! PATCH bodies: JSON patch, JSON merge patch, strategic merge (as merge) and server-side apply.

use serde_json::Value;

use crate::machinery::error::ApiError;

/// The patch formats the server accepts, from the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`, applied as a merge patch with directives dropped.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply, approximated as a merge of the config).
    Apply,
}

impl PatchKind {
    /// Recognise a Content-Type (parameters ignored).
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media_type(ct)),
        }
    }
}

/// Parse a patch body: JSON, or YAML for apply patches.
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if kind == PatchKind::Apply => {
            serde_yaml::from_slice::<Value>(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Apply `patch` of `kind` to `current`, returning the patched object.
pub fn apply(kind: PatchKind, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut target = current.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            json_patch::patch(&mut target, &ops).map_err(|e| {
                let mut err = ApiError::invalid("", "", "", Vec::new());
                err.message =
                    format!("the server rejected our request due to an error in our request: {e}");
                err
            })?;
        }
        PatchKind::Merge | PatchKind::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut target, patch);
        }
        PatchKind::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            strategic_merge(&mut target, patch);
        }
    }
    Ok(target)
}

/// Keys by which lists of objects are merged in strategic merge patches (`patchMergeKey` of
/// the built-in types we serve: containers, env, volumes, ports, mounts, conditions, owners).
const MERGE_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "mountPath",
    "devicePath",
    "type",
    "uid",
    "ip",
];

/// Strategic merge: objects merge recursively, lists of objects merge by their merge key
/// (honouring `$patch: delete` items and `$setElementOrder`), `finalizers` merge as a set,
/// other lists are replaced; `$patch: replace`, `$retainKeys` and
/// `$deleteFromPrimitiveList` are understood.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") || !target.is_object() {
        let mut replacement = patch.clone();
        strip_directives(&mut replacement);
        *target = replacement;
        return;
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(drop)) = (t.get_mut(field), v.as_array()) {
                cur.retain(|x| !drop.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let order = p
            .get(&format!("$setElementOrder/{k}"))
            .and_then(Value::as_array);
        match (t.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items)) if k == "finalizers" => {
                for item in items {
                    if !cur.contains(item) {
                        cur.push(item.clone());
                    }
                }
            }
            (Some(Value::Array(cur)), Value::Array(items)) if merge_key(cur, items).is_some() => {
                let key = merge_key(cur, items).unwrap_or("name");
                merge_list(cur, items, key, order);
            }
            (Some(cur), Value::Object(_)) if cur.is_object() => strategic_merge(cur, v),
            _ => {
                let mut nv = v.clone();
                strip_directives(&mut nv);
                t.insert(k.clone(), nv);
            }
        }
    }
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| keep.iter().any(|x| x == k.as_str()));
    }
}

/// The merge key shared by every element of both lists (all must be objects).
fn merge_key(cur: &[Value], items: &[Value]) -> Option<&'static str> {
    if items.is_empty() {
        return None;
    }
    MERGE_KEYS
        .iter()
        .copied()
        .find(|key| cur.iter().chain(items).all(|x| x.get(*key).is_some()))
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], key: &str, order: Option<&Vec<Value>>) {
    for item in items {
        let id = &item[key];
        let pos = cur.iter().position(|c| &c[key] == id);
        match (item.get("$patch").and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                cur.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => strategic_merge(&mut cur[i], item),
            (_, None) => {
                let mut nv = item.clone();
                strip_directives(&mut nv);
                cur.push(nv);
            }
        }
    }
    if let Some(order) = order {
        let rank = |v: &Value| {
            order
                .iter()
                .position(|o| o[key] == v[key])
                .unwrap_or(usize::MAX)
        };
        cur.sort_by_key(rank);
    }
}

/// Drop strategic-merge directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...).
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests_strategic {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_lists_by_key() {
        let cur = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [
            {"name": "app", "image": "v1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "s1"}]}});
        let patch = json!({"metadata": {"finalizers": ["b"]}, "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "v2", "env": [{"name": "B", "value": "2"}]}, {"name": "gone", "$patch": "delete"}]}});
        let out = apply(PatchKind::Strategic, &cur, &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [
            {"name": "side", "image": "s1"},
            {"name": "app", "image": "v2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}})
        );
        let removed = apply(
            PatchKind::Strategic,
            &out,
            &json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(removed["spec"]["containers"].as_array().unwrap().len(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let cur = json!({"data": {"a": "1", "b": "2"}, "list": [1, 2]});
        let out = apply(
            PatchKind::Merge,
            &cur,
            &json!({"data": {"a": null, "c": "3"}, "list": [3]}),
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"b": "2", "c": "3"}, "list": [3]}));
    }

    #[test]
    fn json_patch_ops_and_failed_test_is_invalid() {
        let cur = json!({"spec": {"x": 1}});
        let out = apply(
            PatchKind::Json,
            &cur,
            &json!([{"op": "replace", "path": "/spec/x", "value": 2}]),
        )
        .unwrap();
        assert_eq!(out["spec"]["x"], 2);
        let err = apply(
            PatchKind::Json,
            &cur,
            &json!([{"op": "test", "path": "/spec/x", "value": 9}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn apply_accepts_yaml_and_strategic_drops_directives() {
        let v = parse_body(PatchKind::Apply, b"metadata:\n  name: a\ndata:\n  k: v\n").unwrap();
        assert_eq!(v["data"]["k"], "v");
        let out = apply(
            PatchKind::Strategic,
            &json!({}),
            &json!({"$setElementOrder/x": [], "a": {"$patch": "replace", "b": 1}}),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": 1}}));
        assert!(PatchKind::from_content_type("text/plain").is_err());
    }
}
