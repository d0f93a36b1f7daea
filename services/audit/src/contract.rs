//! DataStorage's published contract for the audit events this service sends, written down
//! as data, and a validator over it.
//!
//! Source: `api/openapi/data-storage-v1.yaml` of github.com/jordigilh/kubernaut (OpenAPI
//! 3.0.3, `info.version: 1.0.0`) at commit `d5a4a870967312d98dbc302ac2ae3505087bfcb0`
//! (2026-08-22): the schemas `AuditEventRequest`, `WorkflowExecutionAuditPayload`,
//! `WorkflowExecutionWebhookAuditPayload` and `ErrorDetails`, and the `event_data`
//! discriminator mapping (`propertyName: event_type`) restricted to the `workflowexecution.*`
//! entries. Only the facts are transcribed (required fields, types, enums, formats, lengths),
//! not the document. Re-check this table when the contract's version changes.
//!
//! One rule is stricter than the document: a payload property the schema does not name is
//! a violation. The document leaves `additionalProperties` open, but DataStorage decodes
//! `event_data` into generated types that skip unknown keys, so such a property would be
//! accepted and silently thrown away. The envelope allows [`ENVELOPE_EXTENSIONS`] on top of
//! the contract's properties, for the same reason documented there.
//!
//! DataStorage also applies business rules the document cannot state (an
//! `event_timestamp` no more than an hour ahead and no more than seven days old); they depend
//! on the clock, are not checked here, and a refusal for them is handled by the delivery
//! worker like any other (see [`crate::delivery`]).

use std::fmt;

use serde_json::Value;

/// What a property must be.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    /// A string of `min..=max` characters, one of `values` when given, in `format`.
    Str {
        /// `minLength`.
        min: usize,
        /// `maxLength`.
        max: Option<usize>,
        /// `enum`.
        values: Option<&'static [&'static str]>,
        /// `format`.
        format: Format,
    },
    /// `type: integer`.
    Int,
    /// `type: boolean`.
    Bool,
    /// `type: object, additionalProperties: {type: string}`.
    StrMap,
    /// A nested object.
    Object(&'static Schema),
}

/// String formats the contract uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// No format.
    None,
    /// `date-time` (RFC 3339).
    DateTime,
    /// `uuid`.
    Uuid,
}

/// One property of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// JSON name.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Listed in `required`.
    pub required: bool,
    /// `nullable: true`.
    pub nullable: bool,
}

/// An object schema.
#[derive(Debug)]
pub struct Schema {
    /// The schema's name in the document.
    pub name: &'static str,
    /// Its properties.
    pub properties: &'static [Property],
}

impl Schema {
    /// The property named `name`.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

const fn s() -> Type {
    Type::Str {
        min: 0,
        max: None,
        values: None,
        format: Format::None,
    }
}
const fn s_len(min: usize, max: usize) -> Type {
    Type::Str {
        min,
        max: Some(max),
        values: None,
        format: Format::None,
    }
}
const fn s_enum(values: &'static [&'static str]) -> Type {
    Type::Str {
        min: 0,
        max: None,
        values: Some(values),
        format: Format::None,
    }
}
const fn s_fmt(format: Format) -> Type {
    Type::Str {
        min: 0,
        max: None,
        values: None,
        format,
    }
}
const fn req(name: &'static str, ty: Type) -> Property {
    Property {
        name,
        ty,
        required: true,
        nullable: false,
    }
}
const fn opt(name: &'static str, ty: Type) -> Property {
    Property {
        name,
        ty,
        required: false,
        nullable: false,
    }
}
const fn null(name: &'static str, ty: Type) -> Property {
    Property {
        name,
        ty,
        required: false,
        nullable: true,
    }
}

/// `AuditEventRequest.event_category` enum.
pub const EVENT_CATEGORIES: &[&str] = &[
    "gateway",
    "notification",
    "analysis",
    "aiagent",
    "signalprocessing",
    "workflow",
    "workflowexecution",
    "orchestration",
    "approval",
    "effectiveness",
    "actiontype",
    "apifrontend",
    "security",
    "agentsession",
];
/// `AuditEventRequest.event_outcome` enum.
pub const EVENT_OUTCOMES: &[&str] = &["success", "failure", "pending"];
/// `WorkflowExecutionAuditPayload.event_type` enum.
pub const WORKFLOW_EVENT_TYPES: &[&str] = &[
    "workflowexecution.workflow.started",
    "workflowexecution.workflow.completed",
    "workflowexecution.workflow.failed",
    "workflowexecution.selection.completed",
    "workflowexecution.execution.started",
];
/// `WorkflowExecutionAuditPayload.phase` enum.
pub const PHASES: &[&str] = &["Pending", "Running", "Completed", "Failed"];
/// `WorkflowExecutionAuditPayload.failure_reason` enum.
pub const FAILURE_REASONS: &[&str] = &[
    "OOMKilled",
    "DeadlineExceeded",
    "Forbidden",
    "ImagePullBackOff",
    "ConfigurationError",
    "ResourceExhausted",
    "TaskFailed",
    "UnsupportedEngine",
    "Deduplicated",
    "Unknown",
];
/// `ErrorDetails.component` enum.
pub const ERROR_COMPONENTS: &[&str] = &[
    "gateway",
    "aianalysis",
    "workflowexecution",
    "remediationorchestrator",
    "signalprocessing",
    "authwebhook",
];

/// `ErrorDetails`.
pub static ERROR_DETAILS: Schema = Schema {
    name: "ErrorDetails",
    properties: &[
        req("message", s()),
        req("code", s()),
        req("component", s_enum(ERROR_COMPONENTS)),
        req("retry_possible", Type::Bool),
        // `stack_trace` (array of strings) exists in the contract; this service never sends
        // it, so it is left out and would be reported as unknown.
    ],
};

/// `WorkflowExecutionAuditPayload`.
pub static WORKFLOW_PAYLOAD: Schema = Schema {
    name: "WorkflowExecutionAuditPayload",
    properties: &[
        req("event_type", s_enum(WORKFLOW_EVENT_TYPES)),
        req("workflow_id", s()),
        req("workflow_version", s()),
        opt("workflow_name", s()),
        opt("action_type", s()),
        req("target_resource", s()),
        req("phase", s_enum(PHASES)),
        req("container_image", s()),
        req("execution_name", s()),
        opt("started_at", s_fmt(Format::DateTime)),
        opt("completed_at", s_fmt(Format::DateTime)),
        opt("duration", s()),
        opt("failure_reason", s_enum(FAILURE_REASONS)),
        opt("failure_message", s()),
        opt("failed_task_name", s()),
        opt("error_details", Type::Object(&ERROR_DETAILS)),
        opt("pipelinerun_name", s()),
        opt("parameters", Type::StrMap),
        opt("retry_count", Type::Int),
    ],
};

/// `WorkflowExecutionWebhookAuditPayload`.
pub static WEBHOOK_PAYLOAD: Schema = Schema {
    name: "WorkflowExecutionWebhookAuditPayload",
    properties: &[
        req("event_type", s_enum(&["workflowexecution.block.cleared"])),
        req("workflow_name", s()),
        req("clear_reason", s()),
        req("cleared_at", s_fmt(Format::DateTime)),
        req("previous_state", s_enum(&["Blocked"])),
        req("new_state", s_enum(&["Running"])),
    ],
};

/// `AuditEventRequest` without `event_data` (checked through [`payload_schema`]).
pub static AUDIT_EVENT_REQUEST: Schema = Schema {
    name: "AuditEventRequest",
    properties: &[
        req("version", s_len(1, 20)),
        req("event_type", s_len(1, 100)),
        req("event_timestamp", s_fmt(Format::DateTime)),
        req(
            "event_category",
            Type::Str {
                min: 1,
                max: Some(50),
                values: Some(EVENT_CATEGORIES),
                format: Format::None,
            },
        ),
        req("event_action", s_len(1, 50)),
        req("event_outcome", s_enum(EVENT_OUTCOMES)),
        opt("actor_type", s()),
        opt("actor_id", s()),
        opt(
            "actor_ip",
            Type::Str {
                min: 0,
                max: Some(45),
                values: None,
                format: Format::None,
            },
        ),
        opt("resource_type", s()),
        opt("resource_id", s()),
        req("correlation_id", s_len(1, 255)),
        null("parent_event_id", s_fmt(Format::Uuid)),
        null("namespace", s()),
        null("cluster_id", s()),
        null("severity", s()),
        null("duration_ms", Type::Int),
        null("parent_event_date", s_fmt(Format::DateTime)),
        null("error_code", s()),
        null("error_message", s()),
        null("retention_days", Type::Int),
        null("is_sensitive", Type::Bool),
    ],
};

/// Envelope properties this service adds to the contract's. `event_id` is our stable,
/// idempotency id (see [`crate::event_id`]): DataStorage assigns its own id and discards it,
/// but a receiver that de-duplicates (and our tests) read it, and nothing else carries it.
pub const ENVELOPE_EXTENSIONS: &[&str] = &["event_id"];

/// The `event_data` schema of an event type (the discriminator mapping), or `None` for a
/// type the contract does not map.
pub fn payload_schema(event_type: &str) -> Option<&'static Schema> {
    if WORKFLOW_EVENT_TYPES.contains(&event_type) {
        Some(&WORKFLOW_PAYLOAD)
    } else if event_type == "workflowexecution.block.cleared" {
        Some(&WEBHOOK_PAYLOAD)
    } else {
        None
    }
}

/// One way a request breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the offending value, e.g. `event_data.phase`.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Checks one `AuditEventRequest` (as sent on the wire) against the contract; returns every
/// violation found.
pub fn validate(request: &Value) -> Result<(), Vec<Violation>> {
    let mut out = Vec::new();
    let Some(obj) = request.as_object() else {
        out.push(violation("", "not an object"));
        return Err(out);
    };
    check_object(
        obj,
        &AUDIT_EVENT_REQUEST,
        "",
        ENVELOPE_EXTENSIONS,
        &mut out,
        &["event_data"],
    );
    let event_type = obj.get("event_type").and_then(Value::as_str).unwrap_or("");
    match (obj.get("event_data"), payload_schema(event_type)) {
        (None, _) => out.push(violation("event_data", "required property missing")),
        (Some(_), None) => out.push(violation(
            "event_type",
            &format!("{event_type:?} maps to no event_data schema of this service"),
        )),
        (Some(data), Some(schema)) => {
            check_value(data, &Type::Object(schema), "event_data", &mut out);
            let inner = data.get("event_type").and_then(Value::as_str);
            if inner.is_some_and(|t| t != event_type) {
                out.push(violation(
                    "event_data.event_type",
                    "differs from the envelope's event_type (the discriminator)",
                ));
            }
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

fn violation(path: &str, problem: &str) -> Violation {
    Violation {
        path: path.to_owned(),
        problem: problem.to_owned(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Checks the properties of `obj` against `schema`; `extra` names allowed extensions and
/// `skip` properties checked elsewhere.
fn check_object(
    obj: &serde_json::Map<String, Value>,
    schema: &Schema,
    path: &str,
    extra: &[&str],
    out: &mut Vec<Violation>,
    skip: &[&str],
) {
    for p in schema.properties.iter().filter(|p| p.required) {
        if !obj.contains_key(p.name) {
            out.push(violation(&join(path, p.name), "required property missing"));
        }
    }
    for (name, value) in obj {
        if skip.contains(&name.as_str()) || extra.contains(&name.as_str()) {
            continue;
        }
        let here = join(path, name);
        match schema.property(name) {
            None => out.push(violation(
                &here,
                &format!(
                    "not a property of {} (DataStorage would discard it)",
                    schema.name
                ),
            )),
            Some(p) if value.is_null() && p.nullable => {}
            Some(p) => check_value(value, &p.ty, &here, out),
        }
    }
}

fn check_value(value: &Value, ty: &Type, path: &str, out: &mut Vec<Violation>) {
    match ty {
        Type::Str {
            min,
            max,
            values,
            format,
        } => {
            let Some(v) = value.as_str() else {
                return out.push(violation(path, "must be a string"));
            };
            check_str(v, *min, *max, *values, *format, path, out);
        }
        Type::Int if !(value.is_i64() || value.is_u64()) => {
            out.push(violation(path, "must be an integer"));
        }
        Type::Bool if !value.is_boolean() => out.push(violation(path, "must be a boolean")),
        Type::StrMap => match value.as_object() {
            Some(m) if m.values().all(Value::is_string) => {}
            _ => out.push(violation(path, "must be an object of strings")),
        },
        Type::Object(schema) => match value.as_object() {
            Some(m) => check_object(m, schema, path, &[], out, &[]),
            None => out.push(violation(path, "must be an object")),
        },
        Type::Int | Type::Bool => {}
    }
}

fn check_str(
    v: &str,
    min: usize,
    max: Option<usize>,
    values: Option<&[&str]>,
    format: Format,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let len = v.chars().count();
    if len < min {
        out.push(violation(path, &format!("shorter than {min} characters")));
    }
    if let Some(max) = max.filter(|m| len > *m) {
        out.push(violation(path, &format!("longer than {max} characters")));
    }
    if let Some(values) = values.filter(|vals| !vals.contains(&v)) {
        out.push(violation(
            path,
            &format!("{v:?} is not one of {}", values.join(", ")),
        ));
    }
    let ok = match format {
        Format::None => true,
        Format::DateTime => v.parse::<jiff::Timestamp>().is_ok(),
        Format::Uuid => is_uuid(v),
    };
    if !ok {
        out.push(violation(path, &format!("{v:?} is not a valid {format:?}")));
    }
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(v: &str) -> bool {
    let groups: Vec<&str> = v.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests;
