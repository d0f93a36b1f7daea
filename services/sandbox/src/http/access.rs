//! Who is asking and what they may do: bearer tokens from a kube-apiserver
//! `--token-auth-file`, and RBAC over the Roles, ClusterRoles and bindings stored in the
//! sandbox, so a deployment's least-privilege RBAC can be proven sufficient (and its
//! refusals seen) without a cluster.
//!
//! Off unless configured: a sandbox without [`Access`] serves everyone, as before.
//! With it, a request with an unknown token gets 401; one without a token is
//! `system:anonymous` in `system:unauthenticated` (kube-apiserver's `--anonymous-auth`,
//! on by default), or 401 when anonymous requests are off. With RBAC on, each resource
//! request is checked against the rules bound to the user and its groups (token users
//! are also in `system:authenticated`). Members of `system:masters` may do anything.
//! Discovery, OpenAPI, `/healthz`, `/livez`, `/readyz` and `/version` need no
//! authorization (anonymous callers may read them too, which a real server limits to
//! the health and version paths).
//!
//! kubectl withholds bearer tokens from plain-HTTP servers, and the sandbox serves plain
//! HTTP: kubectl reaches an access-checked sandbox as `system:anonymous`, so grant that
//! group what the operator may do (kube-rs clients do send their tokens).
//!
//! Not modelled: aggregated ClusterRoles, impersonation, non-resource URL rules,
//! `resourceNames` on list/watch, and the escalation checks on writing RBAC objects.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, header};
use serde_json::Value;

use crate::machinery::error::{ApiError, ApiResult, qualified};
use crate::storage::{ObjKey, ResKey, Store};

/// The superuser group.
pub const MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// e.g. `system:serviceaccount:kubernaut-system:job-agent`.
    pub name: String,
    /// Groups, `system:authenticated` included.
    pub groups: Vec<String>,
}

impl User {
    fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// Authentication (tokens) and, optionally, RBAC authorization.
#[derive(Debug, Clone, Default)]
pub struct Access {
    tokens: HashMap<String, User>,
    rbac: bool,
    /// Requests without a token are refused (401) instead of being `system:anonymous`.
    no_anonymous: bool,
}

impl Access {
    /// Tokens read from a kube-apiserver token file: one `token,user,uid[,"g1,g2"]` a line.
    pub fn from_token_file(text: &str) -> Result<Self, String> {
        let mut access = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (token, user) =
                parse_token_line(line).map_err(|e| format!("token file line {}: {e}", i + 1))?;
            access.tokens.insert(token, user);
        }
        Ok(access)
    }

    /// Turns RBAC authorization on or off (authentication stays on).
    pub fn with_rbac(mut self, on: bool) -> Self {
        self.rbac = on;
        self
    }

    /// Whether requests without a token are `system:anonymous` (true) or refused.
    pub fn with_anonymous(mut self, on: bool) -> Self {
        self.no_anonymous = !on;
        self
    }

    /// Adds a token for `user` in `groups` (plus `system:authenticated`).
    pub fn add_token(&mut self, token: &str, user: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self.tokens
            .insert(token.to_owned(), with_authenticated(user, groups));
    }

    /// The user a request's bearer token names; `system:anonymous` without a bearer
    /// token (another scheme is not ours to check); 401 for a token nobody was given.
    pub fn authenticate(&self, headers: &HeaderMap) -> ApiResult<User> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(token) = token else {
            if self.no_anonymous {
                return Err(ApiError::unauthorized());
            }
            return Ok(User {
                name: "system:anonymous".to_owned(),
                groups: vec!["system:unauthenticated".to_owned()],
            });
        };
        self.tokens
            .get(token)
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }

    /// Whether RBAC decides what an authenticated user may do.
    pub fn rbac(&self) -> bool {
        self.rbac
    }
}

/// How requests are authorised once authenticated (kube-apiserver's `--authorization-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthorizationMode {
    /// Every authenticated request is allowed.
    #[default]
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
    /// Roles, ClusterRoles and their bindings decide.
    #[value(name = "RBAC")]
    Rbac,
}

/// The access a sandbox's command line asks for: none without a token file.
pub fn from_flags(
    token_file: Option<&std::path::Path>,
    mode: AuthorizationMode,
    anonymous: bool,
) -> Result<Option<Access>, String> {
    let Some(path) = token_file else {
        return match mode {
            AuthorizationMode::AlwaysAllow => Ok(None),
            AuthorizationMode::Rbac => Err(
                "--authorization-mode RBAC needs --token-auth-file to know who is asking".into(),
            ),
        };
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading --token-auth-file {}: {e}", path.display()))?;
    let access = Access::from_token_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(
        access
            .with_rbac(mode == AuthorizationMode::Rbac)
            .with_anonymous(anonymous),
    ))
}

fn with_authenticated(user: &str, mut groups: Vec<String>) -> User {
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_owned());
    }
    User {
        name: user.to_owned(),
        groups,
    }
}

fn parse_token_line(line: &str) -> Result<(String, User), String> {
    let mut parts = line.splitn(4, ',');
    let mut field = |what: &str| {
        parts
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("missing {what} (want token,user,uid[,\"group1,group2\"])"))
    };
    let token = field("token")?;
    let user = field("user")?;
    // The uid may be empty, as kube-apiserver allows.
    let _uid = parts.next();
    let groups = parts
        .next()
        .map(|g| {
            g.trim()
                .trim_matches('"')
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok((token, with_authenticated(&user, groups)))
}

/// What a resource request asks to do, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    /// API group ("" for core).
    pub group: &'a str,
    /// Plural resource.
    pub resource: &'a str,
    /// `status`, …
    pub subresource: Option<&'a str>,
    /// None for cluster-scoped requests (and lists across all namespaces).
    pub namespace: Option<&'a str>,
    /// The object's name, when the request names one.
    pub name: Option<&'a str>,
}

/// The RBAC verb of a request.
pub fn verb(method: &Method, named: bool, watch: bool) -> &'static str {
    match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

/// Allows the request, or refuses it with the message kube-apiserver gives.
pub fn authorize(store: &Store, user: &User, attrs: &Attributes<'_>) -> ApiResult<()> {
    if user.is_master()
        || rules_for(store, user, attrs.namespace)
            .iter()
            .any(|r| allows(r, attrs))
    {
        return Ok(());
    }
    Err(ApiError::forbidden(refusal(user, attrs)))
}

fn refusal(user: &User, a: &Attributes<'_>) -> String {
    let qualified = qualified(a.resource, a.group);
    let object = match a.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
    };
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_owned(),
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_owned(),
    };
    format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    )
}

/// The rules of every role bound to `user`: ClusterRoleBindings everywhere, RoleBindings
/// in `namespace`.
fn rules_for(store: &Store, user: &User, namespace: Option<&str>) -> Vec<Value> {
    let rbac = |plural: &str| ResKey::new("rbac.authorization.k8s.io", plural);
    let all =
        |plural: &str, ns: Option<&str>| store.list(&rbac(plural), ns, None, None, &|_| true).0;
    // (the binding's namespace, the binding): None for ClusterRoleBindings.
    let cluster_wide = all("clusterrolebindings", None)
        .into_iter()
        .map(|b| (None, b));
    let in_namespace = namespace
        .map(|ns| all("rolebindings", Some(ns)))
        .unwrap_or_default()
        .into_iter()
        .map(|b| (namespace, b));
    let mut rules = Vec::new();
    for (ns, binding) in cluster_wide.chain(in_namespace) {
        if !binds(&binding, user, ns) {
            continue;
        }
        let role_ref = &binding["roleRef"];
        let role_name = role_ref["name"].as_str().unwrap_or_default();
        let role = match (role_ref["kind"].as_str(), ns) {
            (Some("Role"), Some(ns)) => store.get(&rbac("roles"), &ObjKey::new(ns, role_name)),
            (Some("ClusterRole"), _) => {
                store.get(&rbac("clusterroles"), &ObjKey::new("", role_name))
            }
            _ => None,
        };
        if let Some(rs) = role.and_then(|r| r["rules"].as_array().cloned()) {
            rules.extend(rs);
        }
    }
    rules
}

/// Whether one of `binding`'s subjects is `user` (or one of its groups).
fn binds(binding: &Value, user: &User, binding_ns: Option<&str>) -> bool {
    let Some(subjects) = binding["subjects"].as_array() else {
        return false;
    };
    subjects.iter().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str() {
            Some("User") => user.name == name,
            Some("Group") => user.groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = s["namespace"]
                    .as_str()
                    .filter(|ns| !ns.is_empty())
                    .or(binding_ns)
                    .unwrap_or_default();
                user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

/// Whether a PolicyRule allows the request.
fn allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let has = |field: &str, want: &str| {
        rule[field]
            .as_array()
            .is_some_and(|xs| xs.iter().any(|x| x == "*" || x == want))
    };
    let resource_ok = rule["resources"].as_array().is_some_and(|rs| {
        rs.iter()
            .filter_map(Value::as_str)
            .any(|r| match a.subresource {
                None => r == "*" || r == a.resource,
                Some(sub) => {
                    r == "*" || r == format!("{}/{sub}", a.resource) || r == format!("*/{sub}")
                }
            })
    });
    let names_ok = match rule["resourceNames"].as_array().filter(|n| !n.is_empty()) {
        None => true,
        Some(names) => a
            .name
            .is_some_and(|n| names.iter().any(|x| x.as_str() == Some(n))),
    };
    has("verbs", a.verb) && has("apiGroups", a.group) && resource_ok && names_ok
}

#[cfg(test)]
mod tests;
