//! The tekton engine's [`Executor`]: discovers Tekton, watches PipelineRuns with their
//! TaskRuns, and reads their status; creating, adopting, cancelling and releasing run on
//! `wfe_agent::owned`'s skeleton through the [`OwnedPrimitive`] impl in `run.rs` (a cancel
//! sets `spec.status: Cancelled`, a release deletes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wfe_agent::kube_errors::is_not_found;
use wfe_agent::owned::{self, OwnedPrimitive};
use wfe_agent::primitive::{Observation, Owner, owned_selector, owner_of, primitive_ref, report};
use wfe_agent::{Availability, Executor, ExecutorError};
use wfe_k8s::labels;
use wfe_k8s::tekton::{PipelineRun, TaskRun};
use wfe_proto::agent::{Assign, Cancel, PrimitivePhase, Release, StatusReport};
use wfe_proto::v1::PrimitiveReference;

use crate::pipeline_run::build_pipeline_run;
use crate::status::{Policy, RunState, run_state};

/// The engine name.
pub const ENGINE: &str = "tekton";
/// How often unfinished PipelineRuns are re-evaluated from the caches for time-based
/// rules (the stuck grace): a TaskRun stuck on a missing Secret gets no further events.
const REEVALUATE_EVERY: Duration = Duration::from_secs(5);

/// Settings of the tekton executor.
#[derive(Debug, Clone)]
pub struct TektonExecutorConfig {
    /// Namespace of the PipelineRuns.
    pub namespace: String,
    /// Cluster id, for primitive references.
    pub cluster_id: String,
}

struct Writers {
    runs: reflector::store::Writer<PipelineRun>,
    tasks: reflector::store::Writer<TaskRun>,
}

/// Creates and watches PipelineRuns.
pub struct TektonExecutor {
    client: Client,
    cfg: TektonExecutorConfig,
    policy: Policy,
    runs: Store<PipelineRun>,
    tasks: Store<TaskRun>,
    writers: Mutex<Option<Writers>>,
}

enum Change {
    Run(String),
    Deleted(Box<PipelineRun>),
    All,
    /// Time passed: apply the time-based rules.
    Tick,
    Nothing,
}

fn change<K, F: Fn(&K, bool) -> Change>(
    ev: Result<watcher::Event<K>, watcher::Error>,
    f: F,
) -> Change {
    match ev {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => f(&o, false),
        Ok(watcher::Event::Delete(o)) => f(&o, true),
        Ok(watcher::Event::InitDone) => Change::All,
        Ok(watcher::Event::Init) => Change::Nothing,
        Err(e) => {
            tracing::warn!(error = %e, "watch error; retrying with backoff");
            Change::Nothing
        }
    }
}

/// The PipelineRun a TaskRun belongs to (label set by Tekton).
fn run_of_task(t: &TaskRun) -> Option<String> {
    t.labels().get("tekton.dev/pipelineRun").cloned()
}

impl TektonExecutor {
    /// A new executor; call [`Executor::observe`] to start its watches.
    pub fn new(client: Client, cfg: TektonExecutorConfig) -> Self {
        let (runs, rw) = reflector::store();
        let (tasks, tw) = reflector::store();
        Self {
            client,
            cfg,
            policy: Policy::default(),
            runs,
            tasks,
            writers: Mutex::new(Some(Writers {
                runs: rw,
                tasks: tw,
            })),
        }
    }

    /// Replaces the default [`Policy`]. A builder rather than a config field, so callers
    /// that construct [`TektonExecutorConfig`] keep compiling with the defaults.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    fn run(&self, name: &str) -> Option<Arc<PipelineRun>> {
        self.runs
            .get(&ObjectRef::new(name).within(&self.cfg.namespace))
    }

    fn state(&self, pr: &PipelineRun, owner: &Owner, now: Timestamp) -> RunState {
        let name = pr.name_any();
        let trs: Vec<Arc<TaskRun>> = self
            .tasks
            .state()
            .into_iter()
            .filter(|t| run_of_task(t).as_deref() == Some(name.as_str()))
            .collect();
        let trs: Vec<&TaskRun> = trs.iter().map(AsRef::as_ref).collect();
        run_state(pr, &trs, owner, &self.policy, now)
    }

    /// The report of a run, and whether the agent must stop it.
    fn report_of(&self, pr: &PipelineRun, now: Timestamp) -> Option<(StatusReport, bool)> {
        let owner = owner_of(&pr.metadata)?;
        let state = self.state(pr, &owner, now);
        let r = report(&owner, Some(self.reference(pr)), &state.observation, now);
        Some((r, state.abort))
    }
}

mod run;
