//! `meta.k8s.io/v1 Table` output for `kubectl get`: Name first, then the CRD's
//! additionalPrinterColumns (or a few built-in columns), Age last for built-ins.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::machinery::jsonpath;
use crate::registry::resources::{PrinterColumn, ResourceInfo};
use crate::storage::Obj;

/// A Table response for `items`.
pub fn response(info: &ResourceInfo, items: &[Obj], cont: Option<String>, rv: u64) -> Response {
    let table = build(info, items, cont, rv, jiff::Timestamp::now());
    let body = serde_json::to_vec(&table).unwrap_or_default();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )],
        body,
    )
        .into_response()
}

/// The Table value (exposed for watch events and tests).
pub fn build(
    info: &ResourceInfo,
    items: &[Obj],
    cont: Option<String>,
    rv: u64,
    now: jiff::Timestamp,
) -> Value {
    let columns = columns(info);
    let defs: Vec<Value> = std::iter::once(json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}))
        .chain(columns.iter().map(|c| json!({"name": c.name, "type": if c.type_ == "date" { "string" } else { c.type_.as_str() }, "format": "", "description": c.description, "priority": c.priority})))
        .collect();
    let rows: Vec<Value> = items.iter().map(|o| row(o, &columns, now)).collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs, "rows": rows})
}

fn col(name: &str, type_: &str, path: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        json_path: path.into(),
        priority: 0,
        description: String::new(),
    }
}

/// Columns after Name. Built-ins use synthetic paths starting with `#` computed in [`cell`].
fn columns(info: &ResourceInfo) -> Vec<PrinterColumn> {
    if info.crd.is_some() {
        if info.printer_columns.is_empty() {
            return vec![col("Age", "date", ".metadata.creationTimestamp")];
        }
        return info.printer_columns.clone();
    }
    let strategy = info.strategy;
    let mut cols: Vec<PrinterColumn> = strategy
        .columns
        .iter()
        .map(|c| col(c.name, c.type_, c.path))
        .collect();
    if strategy.age_column {
        cols.push(col("Age", "date", ".metadata.creationTimestamp"));
    }
    cols
}

fn row(obj: &Value, columns: &[PrinterColumn], now: jiff::Timestamp) -> Value {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let cells: Vec<Value> = std::iter::once(name)
        .chain(columns.iter().map(|c| cell(obj, c, now)))
        .collect();
    let partial = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))});
    json!({"cells": cells, "object": partial})
}

fn cell(obj: &Value, c: &PrinterColumn, now: jiff::Timestamp) -> Value {
    if let Some(synthetic) = c.json_path.strip_prefix('#') {
        return builtin_cell(obj, synthetic);
    }
    let found = jsonpath::eval(obj, &c.json_path);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => first
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| json!(human_duration(now.duration_since(t).as_secs())))
            .unwrap_or(Value::Null),
        "string" if !first.is_string() => json!(first.to_string()),
        _ => (*first).clone(),
    }
}

fn builtin_cell(obj: &Value, which: &str) -> Value {
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let count = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_object)
            .map(|m| m.len())
            .unwrap_or(0)
    };
    match which {
        "ready" => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            let ready = statuses
                .iter()
                .filter(|s| s["ready"].as_bool() == Some(true))
                .count();
            json!(format!("{ready}/{total}"))
        }
        "podstatus" => {
            let waiting = statuses
                .iter()
                .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
            let terminated = statuses.iter().find_map(|s| {
                s.pointer("/state/terminated/reason")
                    .and_then(Value::as_str)
            });
            let phase = obj.pointer("/status/phase").and_then(Value::as_str);
            json!(waiting.or(terminated).or(phase).unwrap_or("Pending"))
        }
        "restarts" => json!(
            statuses
                .iter()
                .filter_map(|s| s["restartCount"].as_i64())
                .sum::<i64>()
        ),
        "jobstatus" => json!(job_status(obj)),
        "completions" => {
            let done = obj
                .pointer("/status/succeeded")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let want = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            json!(format!("{done}/{want}"))
        }
        "data" => json!(count("/data") + count("/binaryData") + count("/stringData")),
        _ => Value::Null,
    }
}

fn job_status(obj: &Value) -> &'static str {
    let conds = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_true = |t: &str| {
        conds
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if is_true("Complete") {
        "Complete"
    } else if is_true("Failed") {
        "Failed"
    } else if is_deleting(obj) {
        "Terminating"
    } else {
        "Running"
    }
}

fn is_deleting(obj: &Value) -> bool {
    crate::machinery::meta::is_deleting(obj)
}

/// kubectl's HumanDuration: `5s`, `3m20s`, `3m`, `5h10m`, `2d`, `2y30d`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{d}d")
    } else if h < 24 * 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(1800), "30m");
        assert_eq!(human_duration(5 * 3600 + 600), "5h10m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
        assert_eq!(human_duration(100 * 86400), "100d");
    }
}
