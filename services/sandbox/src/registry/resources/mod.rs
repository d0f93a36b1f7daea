//! What the server serves: built-in resources plus every version of every established CRD.

pub(crate) mod builtin;
pub mod crd;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::strategy::Strategy;
use crate::storage::ResKey;

/// One column of `additionalPrinterColumns`.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Simple JSONPath such as `.status.phase`.
    pub json_path: String,
    /// Display priority (0 = shown by default).
    pub priority: i64,
    /// Column description.
    pub description: String,
}

/// Everything the server needs to know about one served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// API group ("" for core).
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl (`wfe`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub status_subresource: bool,
    /// openAPIV3Schema of a custom resource version.
    pub schema: Option<Arc<Value>>,
    /// Printer columns for Table output (custom resources).
    pub printer_columns: Vec<PrinterColumn>,
    /// Extra field selector paths (without leading dot), e.g. `spec.targetResource`.
    pub selectable_fields: Vec<String>,
    /// Name of the CRD that defines this resource (None for built-ins).
    pub crd: Option<String>,
    /// How this resource differs from the generic behaviour, resolved when it is registered.
    pub strategy: &'static Strategy,
}

impl ResourceInfo {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage identity shared by all versions.
    pub fn storage(&self) -> ResKey {
        ResKey::new(&self.group, &self.plural)
    }
}

/// (group, version) → resources served there.
type ByGroupVersion = BTreeMap<(String, String), Vec<Arc<ResourceInfo>>>;

/// Served resources, indexed by group/version; CRD changes replace a CRD's entries.
#[derive(Debug, Default)]
pub struct Registry {
    /// (group, version) → resources served there.
    by_gv: RwLock<ByGroupVersion>,
}

impl Registry {
    /// A registry serving the built-in resources.
    pub fn with_builtins() -> Self {
        let reg = Self::default();
        for info in builtin::all() {
            reg.insert(Arc::new(info));
        }
        reg
    }

    fn insert(&self, info: Arc<ResourceInfo>) {
        let mut map = self.by_gv.write();
        let list = map
            .entry((info.group.clone(), info.version.clone()))
            .or_default();
        list.retain(|r| r.plural != info.plural);
        list.push(info);
    }

    /// The resource served as `plural` at `group/version`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let map = self.by_gv.read();
        map.get(&(group.to_string(), version.to_string()))?
            .iter()
            .find(|r| r.plural == plural)
            .cloned()
    }

    /// The preferred (first served) version of a stored resource.
    pub fn by_storage(&self, res: &ResKey) -> Option<Arc<ResourceInfo>> {
        let map = self.by_gv.read();
        map.values()
            .flatten()
            .find(|r| *r.group == *res.group && *r.plural == *res.plural)
            .cloned()
    }

    /// The resource of `kind` in `apiVersion` (for owner references).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let map = self.by_gv.read();
        map.get(&(group.to_string(), version.to_string()))?
            .iter()
            .find(|r| r.kind == kind)
            .cloned()
    }

    /// Resources served at `group/version`, or None when that group version is not served.
    pub fn resources(&self, group: &str, version: &str) -> Option<Vec<Arc<ResourceInfo>>> {
        let map = self.by_gv.read();
        map.get(&(group.to_string(), version.to_string()))
            .filter(|l| !l.is_empty())
            .cloned()
    }

    /// Served groups (non-core) with their versions, preferred first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let map = self.by_gv.read();
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for ((group, version), list) in map.iter() {
            if group.is_empty() || list.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| g == group) {
                Some((_, versions)) => versions.push(version.clone()),
                None => out.push((group.clone(), vec![version.clone()])),
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(crd::version_priority(v)));
        }
        out
    }

    /// Replace what the CRD `name` serves with `infos` (empty to stop serving it).
    pub fn set_crd(&self, name: &str, infos: Vec<ResourceInfo>) {
        {
            let mut map = self.by_gv.write();
            for list in map.values_mut() {
                list.retain(|r| r.crd.as_deref() != Some(name));
            }
            map.retain(|_, list| !list.is_empty());
        }
        for info in infos {
            self.insert(Arc::new(info));
        }
    }
}
