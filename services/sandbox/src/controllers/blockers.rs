//! What keeps a scheduled pod from starting: missing Secrets/ConfigMaps referenced
//! by volumes or env, or an image that cannot be pulled (pure, used by the kubelet).

use k8s_openapi::api::core::v1::Pod;

use super::behaviour::Outcome;

/// Kind of object a pod references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// A Secret.
    Secret,
    /// A ConfigMap.
    ConfigMap,
}

impl RefKind {
    /// The lower-case word the kubelet uses in messages.
    pub fn word(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configmap",
        }
    }
}

/// Why a scheduled pod cannot start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// A volume's Secret/ConfigMap is missing: `FailedMount`, stays ContainerCreating.
    Mount {
        volume: String,
        kind: RefKind,
        name: String,
    },
    /// An env reference is missing: `CreateContainerConfigError`.
    Config { kind: RefKind, name: String },
    /// The image cannot be pulled.
    ImagePull,
}

/// Finds what keeps the pod from starting. `exists(kind, name)` answers for the
/// pod's namespace. Volumes mount before the image is pulled, and env references are
/// resolved after, which fixes the order of checks.
pub fn find_blocker(
    pod: &Pod,
    outcome: &Outcome,
    exists: impl Fn(RefKind, &str) -> bool,
) -> Option<Blocker> {
    let refs = references(pod);
    let missing = |r: &&Reference| !r.optional && !exists(r.kind, &r.name);
    if let Some(r) = refs.iter().filter(|r| r.volume.is_some()).find(missing) {
        return Some(r.blocker());
    }
    if *outcome == Outcome::MissingSecret {
        let pretend = refs
            .iter()
            .find(|r| r.volume.is_some() && r.kind == RefKind::Secret);
        if let Some(r) = pretend {
            return Some(r.blocker());
        }
    }
    if *outcome == Outcome::ImagePullError {
        return Some(Blocker::ImagePull);
    }
    if let Some(r) = refs.iter().filter(|r| r.volume.is_none()).find(missing) {
        return Some(r.blocker());
    }
    if *outcome == Outcome::MissingSecret {
        if let Some(r) = refs.iter().find(|r| r.kind == RefKind::Secret) {
            return Some(r.blocker());
        }
        return Some(Blocker::Mount {
            volume: "secret-sandbox-missing".into(),
            kind: RefKind::Secret,
            name: "sandbox-missing".into(),
        });
    }
    None
}

/// A pod's reference to a Secret or ConfigMap.
struct Reference {
    kind: RefKind,
    name: String,
    volume: Option<String>,
    optional: bool,
}

impl Reference {
    fn blocker(&self) -> Blocker {
        match &self.volume {
            Some(volume) => Blocker::Mount {
                volume: volume.clone(),
                kind: self.kind,
                name: self.name.clone(),
            },
            None => Blocker::Config {
                kind: self.kind,
                name: self.name.clone(),
            },
        }
    }
}

fn references(pod: &Pod) -> Vec<Reference> {
    let mut refs = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            refs.push(Reference {
                kind: RefKind::Secret,
                name,
                volume: Some(v.name.clone()),
                optional: s.optional == Some(true),
            });
        }
        if let Some(c) = &v.config_map {
            refs.push(Reference {
                kind: RefKind::ConfigMap,
                name: c.name.clone(),
                volume: Some(v.name.clone()),
                optional: c.optional == Some(true),
            });
        }
    }
    for c in &spec.containers {
        for e in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(s) = &e.secret_key_ref {
                refs.push(Reference {
                    kind: RefKind::Secret,
                    name: s.name.clone(),
                    volume: None,
                    optional: s.optional == Some(true),
                });
            }
            if let Some(m) = &e.config_map_key_ref {
                refs.push(Reference {
                    kind: RefKind::ConfigMap,
                    name: m.name.clone(),
                    volume: None,
                    optional: m.optional == Some(true),
                });
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(s) = &e.secret_ref {
                refs.push(Reference {
                    kind: RefKind::Secret,
                    name: s.name.clone(),
                    volume: None,
                    optional: s.optional == Some(true),
                });
            }
            if let Some(m) = &e.config_map_ref {
                refs.push(Reference {
                    kind: RefKind::ConfigMap,
                    name: m.name.clone(),
                    volume: None,
                    optional: m.optional == Some(true),
                });
            }
        }
    }
    refs
}
