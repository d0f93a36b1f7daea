//! ResourceQuota object counts, enforced on create the way kube-apiserver's quota admission
//! plugin does: a create that would take `count/<resource>[.<group>]` past a quota's
//! `spec.hard` in the object's namespace is refused with 403 Forbidden "exceeded quota".
//!
//! Why: executor agents classify that refusal as ResourceExhausted (a pre-execution failure
//! that must not block the target), and tests and demos need a real server to say it.
//!
//! Scope: object-count quotas only (`count/jobs.batch`, `count/pipelineruns.tekton.dev`,
//! `count/configmaps`, …); compute quotas (`cpu`, `memory`, `pods`) and scopes are ignored.
//! Quota status (`status.used`) is not maintained: the count is taken at admission time.
//! Every create through the HTTP API is admitted this way, the simulated controllers'
//! Pods and TaskRuns included (they are kube-rs clients, as real controllers are).

use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;

use crate::machinery::error::{ApiError, ApiResult, qualified};
use crate::machinery::meta::meta_str;
use crate::registry::resources::ResourceInfo;
use crate::storage::{ResKey, Store};

/// Serialises count-then-create for resources under a quota, so two concurrent creates
/// cannot both take the last slot.
#[derive(Debug, Default)]
pub struct QuotaAdmission {
    lock: Mutex<()>,
}

/// Holds the admission lock until the admitted object is stored.
pub struct Admitted<'a> {
    _guard: Option<MutexGuard<'a, ()>>,
}

impl QuotaAdmission {
    /// Admits the create of `name` (a `info` in `namespace`), or refuses it as a real
    /// server would. Keep the returned guard until the object is stored.
    pub fn admit(
        &self,
        store: &Store,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
    ) -> ApiResult<Admitted<'_>> {
        if !info.namespaced || namespace.is_empty() {
            return Ok(Admitted { _guard: None });
        }
        let key = count_key(info);
        let limits = limits_in(store, namespace, &key);
        if limits.is_empty() {
            return Ok(Admitted { _guard: None });
        }
        let guard = self.lock.lock();
        let used = store
            .list(&info.storage(), Some(namespace), None, None, &|_| true)
            .0
            .len() as u64;
        if let Some(refusal) = refusal(info, name, &key, used, &limits) {
            return Err(ApiError::forbidden(refusal));
        }
        Ok(Admitted {
            _guard: Some(guard),
        })
    }
}

/// `count/<plural>` for the core group, `count/<plural>.<group>` otherwise.
pub fn count_key(info: &ResourceInfo) -> String {
    format!("count/{}", qualified(&info.plural, &info.group))
}

/// (quota name, hard limit) of every quota in `namespace` that limits `key`.
fn limits_in(store: &Store, namespace: &str, key: &str) -> Vec<(String, u64)> {
    let quotas = ResKey::new("", "resourcequotas");
    let (items, _, _) = store.list(&quotas, Some(namespace), None, None, &|_| true);
    items
        .iter()
        .filter_map(|q| {
            let hard = q.pointer("/spec/hard")?.get(key)?;
            let limit = parse_count(hard)?;
            Some((meta_str(q, "name").unwrap_or_default().to_string(), limit))
        })
        .collect()
}

/// An object count as a quota states it: `3`, `"3"`, or a quantity with a decimal or
/// binary suffix (`"1k"`, `"2Ki"`, `"1M"`). Anything else is logged and not enforced.
fn parse_count(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    const SUFFIXES: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    let (digits, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|d| (d, *f)))
        .unwrap_or((s, 1));
    let count = digits.parse::<u64>().ok().map(|n| n.saturating_mul(factor));
    if count.is_none() {
        tracing::warn!(
            value = s,
            "ResourceQuota count not understood; not enforced"
        );
    }
    count
}

/// The message kube-apiserver gives when one more object would pass a quota's limit,
/// naming the first quota (by name) that refuses it.
fn refusal(
    info: &ResourceInfo,
    name: &str,
    key: &str,
    used: u64,
    limits: &[(String, u64)],
) -> Option<String> {
    let mut refusing: Vec<&(String, u64)> =
        limits.iter().filter(|(_, hard)| used + 1 > *hard).collect();
    refusing.sort();
    let (quota, hard) = refusing.first()?;
    let resource = qualified(&info.plural, &info.group);
    Some(format!(
        "{resource} \"{name}\" is forbidden: exceeded quota: {quota}, requested: {key}=1, used: {key}={used}, limited: {key}={hard}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs() -> ResourceInfo {
        crate::registry::resources::builtin::all()
            .into_iter()
            .find(|r| r.plural == "jobs")
            .unwrap()
    }

    #[test]
    fn count_keys_name_the_group_except_for_core() {
        assert_eq!(count_key(&jobs()), "count/jobs.batch");
        let cms = crate::registry::resources::builtin::all()
            .into_iter()
            .find(|r| r.plural == "configmaps")
            .unwrap();
        assert_eq!(count_key(&cms), "count/configmaps");
    }

    #[test]
    fn counts_parse_as_quotas_state_them() {
        assert_eq!(parse_count(&serde_json::json!("3")), Some(3));
        assert_eq!(parse_count(&serde_json::json!(0)), Some(0));
        assert_eq!(parse_count(&serde_json::json!("2k")), Some(2000));
        assert_eq!(parse_count(&serde_json::json!("1Ki")), Some(1024));
        assert_eq!(parse_count(&serde_json::json!("lots")), None);
    }

    #[test]
    fn the_create_past_the_limit_is_refused_with_the_servers_words() {
        let limits = vec![("b-quota".to_string(), 2), ("a-quota".to_string(), 1)];
        assert_eq!(
            refusal(&jobs(), "wfe-1", "count/jobs.batch", 0, &limits),
            None
        );
        assert_eq!(
            refusal(&jobs(), "wfe-1", "count/jobs.batch", 1, &limits).as_deref(),
            Some(
                "jobs.batch \"wfe-1\" is forbidden: exceeded quota: a-quota, requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1"
            )
        );
    }
}
