//! The small JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]` and `[?(@.k=="v")]`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

/// Evaluate `path` against `root`, returning every match (empty when nothing matches or the path
/// is outside the supported subset).
pub fn eval<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut cur = vec![root];
    for step in &steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(i) => next.extend(v.get(*i)),
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(k, want) => {
                    let items = v.as_array().map(|a| a.iter()).into_iter().flatten();
                    next.extend(items.filter(|item| field_eq(item, k, want)));
                }
            }
        }
        cur = next;
    }
    cur
}

fn field_eq(item: &Value, path: &str, want: &str) -> bool {
    let mut v = item;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        match v.get(part) {
            Some(x) => v = x,
            None => return false,
        }
    }
    match v {
        Value::String(s) => s == want,
        other => *other == want,
    }
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = bracket_end(r)?;
            steps.push(parse_bracket(&r[..end])?);
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Some(steps)
}

/// Index of the `]` closing a bracket (skipping quoted strings).
fn bracket_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Step> {
    let inner = inner.trim();
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(i) = inner.parse::<usize>() {
        return Some(Step::Index(i));
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let (lhs, rhs) = f.split_once("==")?;
        let key = lhs.trim().strip_prefix("@.")?.to_string();
        let val = rhs
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        return Some(Step::Filter(key, val));
    }
    let quoted = inner.trim_matches(|c| c == '"' || c == '\'');
    Some(Step::Field(quoted.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_printer_column_paths() {
        let obj = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False", "reason": "Waiting"},
            {"type": "Done", "status": "True"}]},
            "spec": {"workflowRef": {"workflowName": "wf"}}, "items": [1, 2]});
        assert_eq!(eval(&obj, ".status.phase"), vec![&json!("Running")]);
        assert_eq!(
            eval(&obj, ".spec.workflowRef.workflowName"),
            vec![&json!("wf")]
        );
        assert_eq!(
            eval(&obj, ".status.conditions[?(@.type==\"Ready\")].reason"),
            vec![&json!("Waiting")]
        );
        assert_eq!(eval(&obj, ".items[1]"), vec![&json!(2)]);
        assert_eq!(eval(&obj, ".items[*]").len(), 2);
        assert!(eval(&obj, ".status.missing").is_empty());
        assert!(eval(&obj, ".status.conditions[?(").is_empty());
    }
}
