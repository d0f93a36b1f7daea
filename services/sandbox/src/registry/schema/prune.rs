//! Structural pruning and defaulting, as the apiextensions server does before validation.

use serde_json::{Map, Value};

/// Drop fields the schema does not specify (unless `x-kubernetes-preserve-unknown-fields`), and
/// nulls for fields that are not `nullable`. `apiVersion`, `kind` and `metadata` at the root and
/// in embedded resources are never pruned.
pub fn prune(schema: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(map) => prune_object(schema, map, root),
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for item in items.iter_mut() {
                    prune(sub, item, false);
                }
            }
        }
        _ => {}
    }
}

fn prune_object(schema: &Value, map: &mut Map<String, Value>, root: bool) {
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
    let props = schema.get("properties").and_then(Value::as_object);
    let extra = schema.get("additionalProperties").filter(|a| a.is_object());
    map.retain(|k, child| {
        if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            return true;
        }
        let sub = props.and_then(|p| p.get(k)).or(extra);
        match sub {
            Some(sub) => !child.is_null() || flag(sub, "nullable"),
            None => {
                preserve || (props.is_none() && extra.is_none() && schema.get("type").is_none())
            }
        }
    });
    for (k, child) in map.iter_mut() {
        if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)).or(extra) {
            prune(sub, child, false);
        }
    }
}

/// Fill in `default`s of absent properties, recursively (defaults inside defaults apply too).
pub fn apply_defaults(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    if !map.contains_key(k)
                        && let Some(d) = sub.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                }
                for (k, child) in map.iter_mut() {
                    if let Some(sub) = props.get(k) {
                        apply_defaults(sub, child);
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                map.values_mut()
                    .for_each(|child| apply_defaults(extra, child));
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                items.iter_mut().for_each(|item| apply_defaults(sub, item));
            }
        }
        _ => {}
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}
