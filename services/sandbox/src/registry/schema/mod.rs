//! Custom resource validation against a CRD's structural `openAPIV3Schema`.
//!
//! Mirrors what the real apiextensions server does on create and update, in its order:
//! prune unknown fields ([`prune`]), apply `default`s, then validate (types, required, enum,
//! bounds, lengths, patterns, item counts) and the CEL transition rule `self == oldSelf`.
//! Other CEL rules are skipped (logged once per rule) rather than guessed.

mod prune;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::Value;

use crate::machinery::error::Cause;

pub use prune::{apply_defaults, prune};

/// Validate `new` (optionally against the previous version `old`) at `path`; returns every problem.
pub fn validate(schema: &Value, new: &Value, old: Option<&Value>, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    check(schema, new, old, path, &mut causes);
    causes
}

fn check(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        if !flag(schema, "nullable") && schema.get("type").is_some() {
            out.push(Cause::new(
                path,
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}",
                    type_name(schema)
                ),
            ));
        }
        return;
    }
    if !type_ok(schema, v) {
        let msg = format!(
            "Invalid value: \"{}\": {path} in body must be of type {}",
            json_type(v),
            type_name(schema)
        );
        out.push(Cause::new(path, "FieldValueTypeInvalid", msg));
        return;
    }
    check_enum(schema, v, path, out);
    check_bounds(schema, v, path, out);
    check_rules(schema, v, old, path, out);
    match v {
        Value::Object(map) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for name in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        out.push(Cause::new(
                            join(path, name),
                            "FieldValueRequired",
                            "Required value",
                        ));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                let sub = props.and_then(|p| p.get(k)).or(extra);
                if let Some(sub) = sub {
                    let old_child = old.and_then(|o| o.get(k));
                    check(sub, child, old_child, &join(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let old_item = old.and_then(|o| o.get(i));
                    check(sub, item, old_item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn type_name(schema: &Value) -> String {
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("any")
        .to_string()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(schema: &Value, v: &Value) -> bool {
    if flag(schema, "x-kubernetes-int-or-string") {
        return v.is_string() || v.is_i64() || v.is_u64();
    }
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("boolean") => v.is_boolean(),
        Some("number") => v.is_number(),
        Some("integer") => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        Some(_) => true,
    }
}

fn check_enum(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(v) {
        return;
    }
    let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
    out.push(Cause::new(
        path,
        "FieldValueNotSupported",
        format!(
            "Unsupported value: {v}: supported values: {}",
            list.join(", ")
        ),
    ));
}

fn check_bounds(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(x) = v.as_f64() {
        if let Some(min) = num("minimum") {
            let excl = flag(schema, "exclusiveMinimum");
            if x < min || (excl && x == min) {
                let op = if excl {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                out.push(invalid(path, v, &format!("should be {op} {min}")));
            }
        }
        if let Some(max) = num("maximum") {
            let excl = flag(schema, "exclusiveMaximum");
            if x > max || (excl && x == max) {
                let op = if excl {
                    "less than"
                } else {
                    "less than or equal to"
                };
                out.push(invalid(path, v, &format!("should be {op} {max}")));
            }
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as f64;
        if num("minLength").is_some_and(|m| len < m) {
            out.push(invalid(
                path,
                v,
                &format!(
                    "should be at least {} chars long",
                    num("minLength").unwrap_or(0.0)
                ),
            ));
        }
        if let Some(m) = num("maxLength").filter(|m| len > *m) {
            out.push(Cause::new(
                path,
                "FieldValueTooLong",
                format!("Too long: may not be more than {m} bytes"),
            ));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && pattern_fails(p, s)
        {
            out.push(invalid(path, v, &format!("should match '{p}'")));
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as f64;
        if let Some(m) = num("minItems").filter(|m| n < *m) {
            out.push(invalid(path, v, &format!("should have at least {m} items")));
        }
        if let Some(m) = num("maxItems").filter(|m| n > *m) {
            out.push(Cause::new(
                path,
                "FieldValueTooMany",
                format!("Too many: {n}: must have at most {m} items"),
            ));
        }
    }
}

fn invalid(path: &str, v: &Value, what: &str) -> Cause {
    let shown = match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Array(_) | Value::Object(_) => format!("\"{}\"", json_type(v)),
        other => other.to_string(),
    };
    Cause::new(
        path,
        "FieldValueInvalid",
        format!("Invalid value: {shown}: {path} in body {what}"),
    )
}

/// Compiled patterns are cached; an uncompilable pattern (Go/ECMA syntax regex cannot read) passes.
fn pattern_fails(pattern: &str, s: &str) -> bool {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<Regex>>>> = LazyLock::new(Default::default);
    let Ok(mut cache) = CACHE.lock() else {
        return false;
    };
    let re = cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().is_some_and(|re| !re.is_match(s))
}

/// `x-kubernetes-validations`: only the transition rule `self == oldSelf` is evaluated.
fn check_rules(schema: &Value, v: &Value, old: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for rule in rules {
        let text: String = rule
            .get("rule")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if text == "self==oldSelf" || text == "oldSelf==self" {
            if old.is_some_and(|o| o != v) {
                let msg = rule
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("Value is immutable");
                out.push(Cause::new(
                    path,
                    "FieldValueInvalid",
                    format!("Invalid value: \"{}\": {msg}", json_type(v)),
                ));
            }
        } else {
            log_skipped_rule(&text);
        }
    }
}

fn log_skipped_rule(rule: &str) {
    static SEEN: LazyLock<Mutex<std::collections::HashSet<String>>> =
        LazyLock::new(Default::default);
    if SEEN.lock().is_ok_and(|mut s| s.insert(rule.to_string())) {
        tracing::info!(
            rule,
            "sandbox does not evaluate this CEL validation rule; skipping it"
        );
    }
}

#[cfg(test)]
mod tests;
