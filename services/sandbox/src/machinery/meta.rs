//! Object metadata the server owns: names, uid, timestamps, generation.

use rand::Rng;
use serde_json::{Map, Value};

use crate::machinery::error::Cause;

/// Current time as RFC 3339 with second precision, as Kubernetes serialises `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `name` with the 5 random characters the real server appends to `generateName`.
pub fn generate_name(prefix: &str) -> String {
    // Same alphabet as apimachinery's utilrand: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let prefix = if prefix.len() > 58 {
        &prefix[..58]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

/// DNS-1123 subdomain check (most object names); returns a cause when invalid.
pub fn check_subdomain(name: &str, field: &str) -> Option<Cause> {
    let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok);
    (!ok).then(|| invalid_name(name, field, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
}

/// DNS-1123 label check (namespace names).
pub fn check_label(name: &str, field: &str) -> Option<Cause> {
    let ok = name.len() <= 63 && label_ok(name);
    (!ok).then(|| invalid_name(name, field, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"))
}

fn label_ok(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn invalid_name(name: &str, field: &str, why: &str) -> Cause {
    Cause::new(
        field,
        "FieldValueInvalid",
        format!("Invalid value: \"{name}\": {why}"),
    )
}

/// Mutable access to `metadata`, creating it when absent; None when `obj` is not an object.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// Set one metadata field (no-op when `obj` is not an object).
pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(meta) = metadata_mut(obj) {
        meta.insert(field.to_string(), value);
    }
}

/// Remove one metadata field.
pub fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(meta) = metadata_mut(obj) {
        meta.remove(field);
    }
}

/// A string field of metadata.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Whether the object carries finalizers.
pub fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Whether the object is being deleted (has `deletionTimestamp`).
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Whether the object's "spec" changed: everything but metadata (and status when it is a subresource).
pub fn spec_changed(old: &Value, new: &Value, status_is_subresource: bool) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let skip = |k: &str| {
        k == "metadata"
            || k == "apiVersion"
            || k == "kind"
            || (status_is_subresource && k == "status")
    };
    let differs = |a: &Map<String, Value>, b: &Map<String, Value>| {
        a.iter().any(|(k, v)| !skip(k) && b.get(k) != Some(v))
    };
    differs(old, new) || differs(new, old)
}

/// Whether two versions of an object are equal apart from resourceVersion (a no-op write).
pub fn same_ignoring_rv(old: &Value, new: &Value) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old == new;
    };
    if o.len() != n.len() {
        return false;
    }
    o.iter().all(|(k, v)| {
        let Some(nv) = n.get(k) else { return false };
        if k != "metadata" {
            return v == nv;
        }
        let (Some(om), Some(nm)) = (v.as_object(), nv.as_object()) else {
            return v == nv;
        };
        let keys = |m: &Map<String, Value>| m.keys().filter(|k| *k != "resourceVersion").count();
        keys(om) == keys(nm)
            && om
                .iter()
                .all(|(k, v)| k == "resourceVersion" || nm.get(k) == Some(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_dns_rules() {
        assert!(check_subdomain("my-app.v1", "metadata.name").is_none());
        assert!(check_subdomain("My_App", "metadata.name").is_some());
        assert!(check_subdomain("-a", "metadata.name").is_some());
        assert!(check_label("a.b", "metadata.name").is_some());
        assert!(check_label("team-1", "metadata.name").is_none());
    }

    #[test]
    fn generated_names_have_five_char_suffix() {
        let n = generate_name("job-");
        assert_eq!(n.len(), 9);
        assert!(n.starts_with("job-"));
    }

    #[test]
    fn spec_change_ignores_metadata_and_status_subresource() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"p": 1}});
        let b = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"x": 1}, "status": {"p": 2}});
        assert!(!spec_changed(&a, &b, true));
        assert!(spec_changed(&a, &b, false));
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(spec_changed(&a, &c, true));
    }
}
