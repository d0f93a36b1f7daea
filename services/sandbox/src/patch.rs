//! PATCH bodies: JSON patch, JSON merge patch, strategic merge (as merge) and server-side apply.

use serde_json::Value;

use crate::error::ApiError;

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
            let mut patch = patch.clone();
            strip_directives(&mut patch);
            json_patch::merge(&mut target, &patch);
        }
    }
    Ok(target)
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
