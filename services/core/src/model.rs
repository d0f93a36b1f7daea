//! The domain model: engines, phases, target resources, the execution request and the
//! history record that admission reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::failure::FailureReason;

/// The engine that runs a workflow: one agent kind per engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// A Kubernetes `batch/v1` Job.
    Job,
    /// A Tekton `tekton.dev/v1` PipelineRun (the default).
    Tekton,
}

/// An engine string that is neither `job`, `tekton` nor empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported execution engine {0:?}: must be \"job\", \"tekton\" or empty (tekton)")]
pub struct UnknownEngine(pub String);

impl Engine {
    /// Parses the wire value; empty means Tekton, as in upstream's workflow schema.
    pub fn parse(s: &str) -> Result<Self, UnknownEngine> {
        match s {
            "" | "tekton" => Ok(Self::Tekton),
            "job" => Ok(Self::Job),
            other => Err(UnknownEngine(other.to_owned())),
        }
    }

    /// The wire value: `job` or `tekton`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Tekton => "tekton",
        }
    }
}

impl FromStr for Engine {
    type Err = UnknownEngine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase of a WorkflowExecution. See [`crate::phase`] for the allowed transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Accepted, waiting for an agent or for its primitive to start.
    Pending,
    /// The primitive (Job or PipelineRun) exists and runs.
    Running,
    /// The workflow succeeded.
    Completed,
    /// The workflow failed, before or after it started (see `FailureDetails`).
    Failed,
    /// Never run: admission blocked it.
    Skipped,
}

/// A phase string that names no phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid phase: {0}")]
pub struct UnknownPhase(pub String);

impl Phase {
    /// Every phase, in lifecycle order (useful for exhaustive tables).
    pub const ALL: [Phase; 5] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Skipped,
    ];

    /// Completed, Failed and Skipped never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Skipped)
    }

    /// The wire value, e.g. `Running`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
        }
    }

    /// Parses the wire value; `""` is Pending, as upstream treats an unset phase.
    pub fn parse(s: &str) -> Result<Self, UnknownPhase> {
        match s {
            "" => Ok(Self::Pending),
            _ => Self::ALL
                .into_iter()
                .find(|p| p.as_str() == s)
                .ok_or_else(|| UnknownPhase(s.to_owned())),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource a workflow remediates: `namespace/Kind/name` or, cluster-scoped, `Kind/name`.
///
/// The string form is case-sensitive and is both the lock key and the input of
/// [`crate::naming::execution_resource_name`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TargetResource {
    /// `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    /// The Kubernetes kind as written by the caller, e.g. `Deployment`.
    pub kind: String,
    /// The resource name.
    pub name: String,
}

/// Why a target string is not `namespace/Kind/name` or `Kind/name`. Messages match upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetResourceError {
    /// The string is empty.
    #[error("targetResource is required")]
    Empty,
    /// Not 2 or 3 `/`-separated parts.
    #[error(
        "targetResource must be in format {{namespace}}/{{kind}}/{{name}} (namespaced) or {{kind}}/{{name}} (cluster-scoped), got {0} parts"
    )]
    PartCount(usize),
    /// A part is empty (0-based position).
    #[error("targetResource has empty part at position {0}")]
    EmptyPart(usize),
}

impl FromStr for TargetResource {
    type Err = TargetResourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(TargetResourceError::Empty);
        }
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(TargetResourceError::PartCount(parts.len()));
        }
        if let Some(i) = parts.iter().position(|p| p.is_empty()) {
            return Err(TargetResourceError::EmptyPart(i));
        }
        let owned = |i: usize| parts[i].to_owned();
        Ok(match parts.len() {
            3 => Self {
                namespace: Some(owned(0)),
                kind: owned(1),
                name: owned(2),
            },
            _ => Self {
                namespace: None,
                kind: owned(0),
                name: owned(1),
            },
        })
    }
}

impl fmt::Display for TargetResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The RemediationRequest this execution belongs to; its name is the audit correlation id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemediationRequestRef {
    /// RemediationRequest name (required).
    pub name: String,
    /// RemediationRequest namespace (required).
    pub namespace: String,
    /// RemediationRequest UID (optional).
    pub uid: String,
}

/// The immutable snapshot of the workflow to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRef {
    /// Catalog id (UUID); the key of the RecentlyRemediated cooldown.
    pub workflow_id: String,
    /// Human-readable workflow name.
    pub workflow_name: String,
    /// Action taxonomy, e.g. `ScaleReplicas`.
    pub action_type: String,
    /// Workflow version.
    pub version: String,
    /// OCI image (Job) or Tekton bundle (Tekton), pinned by `@sha256:` digest.
    pub container_image: String,
}

/// Secrets and config maps the workflow mounts (volumes for Jobs, workspaces for Tekton).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// Secret names in the execution namespace.
    pub secrets: Vec<String>,
    /// ConfigMap names in the execution namespace.
    pub config_maps: Vec<String>,
}

/// Container resources (Job engine), as Kubernetes quantity strings keyed by resource name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// e.g. `cpu` → `100m`.
    pub requests: BTreeMap<String, String>,
    /// e.g. `memory` → `256Mi`.
    pub limits: BTreeMap<String, String>,
}

/// How to run the workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionConfig {
    /// Pre-existing service account in the execution namespace; empty = namespace default.
    pub service_account_name: String,
    /// Relative timeout; mutually exclusive with `times_out_at`.
    pub timeout: Option<Duration>,
    /// Absolute deadline; mutually exclusive with `timeout`.
    pub times_out_at: Option<Timestamp>,
    /// Secret and config-map dependencies.
    pub dependencies: Dependencies,
    /// Container requests and limits.
    pub resources: Resources,
    /// Parameter allow-list: `None` = no filtering, `Some(empty)` = strip every parameter.
    pub declared_parameter_names: Option<BTreeSet<String>>,
}

/// Everything ExecuteWorkflow (and Preflight) receives, in domain form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRequest {
    /// The parent RemediationRequest.
    pub remediation_request_ref: RemediationRequestRef,
    /// The workflow snapshot.
    pub workflow_ref: WorkflowRef,
    /// Raw engine string: `job`, `tekton` or empty (tekton). See [`Engine::parse`].
    pub engine: String,
    /// Raw target string. See [`TargetResource`].
    pub target: String,
    /// Which cluster's agents run it; empty = the local cluster.
    pub cluster_id: String,
    /// Workflow parameters (UPPER_SNAKE_CASE keys).
    pub parameters: BTreeMap<String, String>,
    /// How to run it.
    pub execution_config: ExecutionConfig,
    /// Model confidence in [0, 1]; audit only.
    pub confidence: f64,
    /// Why this workflow was chosen; audit only.
    pub rationale: String,
    /// Replays with the same key return the existing execution.
    pub idempotency_key: String,
    /// Namespace of the WorkflowExecution resource.
    pub namespace: String,
}

/// What admission needs to know about one past or present execution on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// WorkflowExecution name; reported as the holder or cause of a block.
    pub name: String,
    /// WorkflowExecution namespace.
    pub namespace: String,
    /// The target qualified by its cluster ([`crate::naming::qualified_target`]).
    pub target: String,
    /// Catalog workflow id.
    pub workflow_id: String,
    /// Current phase.
    pub phase: Phase,
    /// When the execution was created (orders records lacking a completion time).
    pub created_at: Timestamp,
    /// When it reached a terminal phase.
    pub completed_at: Option<Timestamp>,
    /// Set for Failed executions.
    pub failure_reason: Option<FailureReason>,
    /// True when the workflow had started running before failing (it may have changed the target).
    pub was_execution_failure: bool,
    /// A person cleared the failure block at this execution (ClearBlock): it and every older
    /// failure no longer block.
    pub block_cleared: bool,
    /// Write order, to order records that ended within the same second (Kubernetes times
    /// keep whole seconds): larger is later. The API passes the resourceVersion.
    pub sequence: u64,
}

impl ExecutionRecord {
    /// The time this execution ended, falling back to its creation for records that
    /// reached a terminal phase without a completion time.
    pub fn ended_at(&self) -> Timestamp {
        self.completed_at.unwrap_or(self.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_parse_table() {
        let cases: &[(&str, Option<Engine>)] = &[
            ("", Some(Engine::Tekton)),
            ("tekton", Some(Engine::Tekton)),
            ("job", Some(Engine::Job)),
            ("Job", None),
            ("ansible", None),
            (" job", None),
        ];
        for (input, want) in cases {
            assert_eq!(Engine::parse(input).ok(), *want, "{input:?}");
        }
        assert_eq!(Engine::Job.to_string(), "job");
        assert_eq!("tekton".parse::<Engine>(), Ok(Engine::Tekton));
    }

    #[test]
    fn phase_terminality_and_parse() {
        let terminal: Vec<_> = Phase::ALL.into_iter().filter(|p| p.is_terminal()).collect();
        assert_eq!(terminal, [Phase::Completed, Phase::Failed, Phase::Skipped]);
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Ok(p));
        }
        assert_eq!(Phase::parse(""), Ok(Phase::Pending));
        let err = Phase::parse("Unknown").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("invalid phase: Unknown"));
    }

    #[test]
    fn target_resource_parse_table() {
        let ok: &[(&str, Option<&str>, &str, &str)] = &[
            (
                "default/Deployment/nginx",
                Some("default"),
                "Deployment",
                "nginx",
            ),
            (
                "kube-system/daemonset/fluentd",
                Some("kube-system"),
                "daemonset",
                "fluentd",
            ),
            ("node/worker-node-1", None, "node", "worker-node-1"),
            ("namespace/production", None, "namespace", "production"),
        ];
        for (s, ns, kind, name) in ok {
            let t: TargetResource = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (t.namespace.as_deref(), t.kind.as_str(), t.name.as_str()),
                (*ns, *kind, *name)
            );
            assert_eq!(t.to_string(), *s, "round trip");
        }
        let bad: &[(&str, TargetResourceError)] = &[
            ("", TargetResourceError::Empty),
            ("default", TargetResourceError::PartCount(1)),
            (
                "default/deployment/app/extra",
                TargetResourceError::PartCount(4),
            ),
            ("a//b", TargetResourceError::EmptyPart(1)),
            ("/Kind/name", TargetResourceError::EmptyPart(0)),
            ("Kind/", TargetResourceError::EmptyPart(1)),
        ];
        for (s, want) in bad {
            assert_eq!(s.parse::<TargetResource>().as_ref(), Err(want), "{s:?}");
        }
    }

    #[test]
    fn target_resource_messages_match_upstream() {
        let msg = |s: &str| {
            s.parse::<TargetResource>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            msg("a"),
            "targetResource must be in format {namespace}/{kind}/{name} (namespaced) or {kind}/{name} (cluster-scoped), got 1 parts"
        );
        assert_eq!(msg("a//b"), "targetResource has empty part at position 1");
        assert_eq!(msg(""), "targetResource is required");
    }
}
