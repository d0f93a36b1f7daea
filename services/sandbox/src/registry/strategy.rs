//! Per-resource behaviour, as kube-apiserver has a strategy per resource: the few rules in which
//! resources differ, looked up once per resource when the registry learns of it (built-ins at
//! start, a CRD's resources when the CRD is written) and carried in its `ResourceInfo`.
//! Everything else is the generic behaviour every resource shares.

use serde_json::{Map, Value, json};

use super::Backend;
use super::lifecycle::Propagation;
use super::resources::crd;
use crate::machinery::error::{ApiError, ApiResult, Cause};
use crate::machinery::meta::{self, meta_str};
use crate::storage::{Obj, ObjKey, ResKey};

/// Which name syntax a resource's objects must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 label (namespaces: a name that is also a DNS label).
    Label,
    /// RFC 1123 subdomain (everything else).
    Subdomain,
}

/// What stands between a delete request and the object's removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Removed once no finalizer is left.
    Finalizers,
    /// Namespaces: always marked Terminating first, then emptied and removed by the namespace
    /// controller (here the garbage collector), never by the delete request itself.
    NamespaceController,
}

/// One built-in Table column: header, type, and a JSONPath or a `#synthetic` cell.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column header.
    pub name: &'static str,
    /// `string`, `integer`, `date`, ...
    pub type_: &'static str,
    /// `.status.phase`, or `#name` for a cell the Table code computes.
    pub path: &'static str,
}

/// The behaviours in which one resource differs from the generic ones.
#[derive(Debug)]
pub struct Strategy {
    /// Syntax of `metadata.name`.
    pub name_rule: NameRule,
    /// Admission of a new object (after it is placed in its namespace).
    pub admit_create: fn(&Backend, &mut Value) -> ApiResult<()>,
    /// Fields the server sets on a new object.
    pub prepare_for_create: fn(&mut Map<String, Value>),
    /// Checks of a resource with no schema; may fill in what the server derives (CRD status).
    pub validate: fn(obj: &mut Value, old: Option<&Value>) -> Vec<Cause>,
    /// Top-level fields a status-subresource write may change.
    pub status_fields: &'static [&'static str],
    /// Serves `/finalize`, a status write that also takes `spec` (namespaces).
    pub finalize_subresource: bool,
    /// An object of this resource is a namespace: a request on it is authorised in it.
    pub is_namespace: bool,
    /// `propagationPolicy` when a delete names none.
    pub default_propagation: Propagation,
    /// How a delete proceeds to removal.
    pub deletion: Deletion,
    /// Side effects of a committed create or update.
    pub after_write: fn(&Backend, &Obj),
    /// Side effects of a removal that the request path does at once.
    pub after_delete: fn(&Backend, &Obj),
    /// What the garbage collector does after a removal.
    pub collect: fn(&Backend, &Value),
    /// Table columns after Name (built-ins).
    pub columns: &'static [Column],
    /// Whether Age ends the built-in Table columns.
    pub age_column: bool,
}

/// The behaviours of most resources: nothing special.
pub const GENERIC: Strategy = Strategy {
    name_rule: NameRule::Subdomain,
    admit_create: |_, _| Ok(()),
    prepare_for_create: |_| {},
    validate: |_, _| Vec::new(),
    status_fields: &["status"],
    finalize_subresource: false,
    is_namespace: false,
    default_propagation: Propagation::Background,
    deletion: Deletion::Finalizers,
    after_write: |_, _| {},
    after_delete: |_, _| {},
    collect: |_, _| {},
    columns: &[],
    age_column: true,
};

const NAMESPACES: Strategy = Strategy {
    name_rule: NameRule::Label,
    prepare_for_create: |map| {
        map.insert("status".into(), json!({"phase": "Active"}));
        map.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
    },
    status_fields: &["status", "spec"],
    finalize_subresource: true,
    is_namespace: true,
    deletion: Deletion::NamespaceController,
    after_write: |backend, stored| {
        if meta_str(stored, "resourceVersion").is_some() && !meta::is_deleting(stored) {
            ensure_default_service_account(backend, meta_str(stored, "name").unwrap_or_default());
        }
    },
    columns: &[column("Status", "string", ".status.phase")],
    ..GENERIC
};

const PODS: Strategy = Strategy {
    admit_create: admit_service_account,
    prepare_for_create: |map| {
        map.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": "BestEffort"}),
        );
    },
    columns: &[
        column("Ready", "string", "#ready"),
        column("Status", "string", "#podstatus"),
        column("Restarts", "integer", "#restarts"),
    ],
    ..GENERIC
};

const SECRETS: Strategy = Strategy {
    prepare_for_create: |map| {
        if map
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            map.insert("type".into(), json!("Opaque"));
        }
    },
    columns: &[
        column("Type", "string", ".type"),
        column("Data", "integer", "#data"),
    ],
    ..GENERIC
};

const CONFIGMAPS: Strategy = Strategy {
    columns: &[column("Data", "integer", "#data")],
    ..GENERIC
};

/// batch/v1 Jobs orphan their pods unless told otherwise, like the real server.
const JOBS: Strategy = Strategy {
    default_propagation: Propagation::Orphan,
    columns: &[
        column("Status", "string", "#jobstatus"),
        column("Completions", "string", "#completions"),
    ],
    ..GENERIC
};

const CUSTOM_RESOURCE_DEFINITIONS: Strategy = Strategy {
    validate: |obj, old| {
        let causes = crd::validate(obj);
        if causes.is_empty() && old.is_none() {
            obj["status"] = crd::established_status(obj, &meta::now_rfc3339());
        }
        causes
    },
    after_write: |backend, stored| {
        let name = meta_str(stored, "name").unwrap_or_default();
        backend.registry.set_crd(name, crd::resources(stored));
    },
    after_delete: |backend, gone| {
        let name = meta_str(gone, "name").unwrap_or_default();
        backend.registry.set_crd(name, Vec::new());
    },
    collect: drop_custom_resources,
    columns: &[column(
        "Created At",
        "string",
        ".metadata.creationTimestamp",
    )],
    age_column: false,
    ..GENERIC
};

const fn column(name: &'static str, type_: &'static str, path: &'static str) -> Column {
    Column { name, type_, path }
}

/// The strategy of the resource stored as `group`/`plural`.
pub fn of(group: &str, plural: &str) -> &'static Strategy {
    match (group, plural) {
        ("", "namespaces") => &NAMESPACES,
        ("", "pods") => &PODS,
        ("", "secrets") => &SECRETS,
        ("", "configmaps") => &CONFIGMAPS,
        ("batch", "jobs") => &JOBS,
        ("apiextensions.k8s.io", "customresourcedefinitions") => &CUSTOM_RESOURCE_DEFINITIONS,
        _ => &GENERIC,
    }
}

/// The strategy of a stored resource, for the paths that know only its storage key.
pub fn of_storage(res: &ResKey) -> &'static Strategy {
    of(&res.group, &res.plural)
}

/// kube-apiserver's ServiceAccount admission for a new Pod: the account (`default`
/// when unset, and written into the spec) must exist in the pod's namespace, else the
/// create is refused, as the real plugin refuses it.
fn admit_service_account(backend: &Backend, obj: &mut Value) -> ApiResult<()> {
    let ns = meta_str(obj, "namespace").unwrap_or_default().to_owned();
    let account = obj
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .unwrap_or("default")
        .to_owned();
    let exists = backend
        .store
        .get(
            &ResKey::new("", "serviceaccounts"),
            &ObjKey::new(&ns, &account),
        )
        .is_some();
    if !exists {
        return Err(ApiError::forbidden(format!(
            "pods \"{}\" is forbidden: error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found",
            meta_str(obj, "name").unwrap_or_default()
        )));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("serviceAccountName".into(), json!(account));
    }
    Ok(())
}

/// A new namespace gets a `default` service account, as the serviceaccount controller gives it.
fn ensure_default_service_account(backend: &Backend, ns: &str) {
    let res = ResKey::new("", "serviceaccounts");
    let key = ObjKey::new(ns, "default");
    if backend.store.get(&res, &key).is_some() {
        return;
    }
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns,
        "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": meta::now_rfc3339()}});
    // AlreadyExists means a concurrent writer created it; either way it exists.
    let _ = backend.store.create(&res, &key, sa);
}

/// A deleted CRD takes its custom resources with it.
fn drop_custom_resources(backend: &Backend, crd: &Value) {
    let name = meta_str(crd, "name").unwrap_or_default();
    backend.registry.set_crd(name, Vec::new());
    let (Some(group), Some(plural)) = (
        crd.pointer("/spec/group").and_then(Value::as_str),
        crd.pointer("/spec/names/plural").and_then(Value::as_str),
    ) else {
        return;
    };
    let res = ResKey::new(group, plural);
    let (items, _, _) = backend.store.list(&res, None, None, None, &|_| true);
    for obj in items {
        let key = ObjKey::new(
            meta_str(&obj, "namespace").unwrap_or_default(),
            meta_str(&obj, "name").unwrap_or_default(),
        );
        let _ = backend.store.delete(&res, &key, None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Each resource resolves to the rules it differs by; an unknown one (a custom
    /// resource) to the generic rules.
    #[test]
    fn each_resource_resolves_to_its_own_rules() {
        let cases = [
            (
                ("", "namespaces"),
                NameRule::Label,
                Deletion::NamespaceController,
                Propagation::Background,
                true,
            ),
            (
                ("", "pods"),
                NameRule::Subdomain,
                Deletion::Finalizers,
                Propagation::Background,
                false,
            ),
            (
                ("batch", "jobs"),
                NameRule::Subdomain,
                Deletion::Finalizers,
                Propagation::Orphan,
                false,
            ),
            (
                ("kubernaut.ai", "workflowexecutions"),
                NameRule::Subdomain,
                Deletion::Finalizers,
                Propagation::Background,
                false,
            ),
            (
                ("batch", "pods"),
                NameRule::Subdomain,
                Deletion::Finalizers,
                Propagation::Background,
                false,
            ),
        ];
        for ((group, plural), name_rule, deletion, propagation, is_namespace) in cases {
            let s = of(group, plural);
            assert_eq!(s.name_rule, name_rule, "{group}/{plural}");
            assert_eq!(s.deletion, deletion, "{group}/{plural}");
            assert_eq!(s.default_propagation, propagation, "{group}/{plural}");
            assert_eq!(s.is_namespace, is_namespace, "{group}/{plural}");
        }
        assert_eq!(of("", "namespaces").status_fields, ["status", "spec"]);
        assert!(of("", "namespaces").finalize_subresource);
        assert!(!of("", "pods").finalize_subresource);
    }

    #[test]
    fn the_server_fills_what_it_owns_on_create() {
        let created = |s: &Strategy, obj: Value| {
            let mut map = obj.as_object().unwrap().clone();
            (s.prepare_for_create)(&mut map);
            Value::Object(map)
        };
        let ns = created(of("", "namespaces"), json!({}));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(created(of("", "secrets"), json!({}))["type"], "Opaque");
        assert_eq!(
            created(of("", "secrets"), json!({"type": ""}))["type"],
            "Opaque"
        );
        let tls = json!({"type": "kubernetes.io/tls"});
        assert_eq!(created(of("", "secrets"), tls)["type"], "kubernetes.io/tls");
        assert_eq!(
            created(of("", "pods"), json!({}))["status"]["phase"],
            "Pending"
        );
        assert_eq!(
            created(of("", "configmaps"), json!({"a": 1})),
            json!({"a": 1})
        );
    }
}
