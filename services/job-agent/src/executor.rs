//! The job engine's [`Executor`]: watches Jobs with their pods and events, and reads
//! their status; creating, adopting, cancelling and releasing run on `wfe_agent::owned`'s
//! skeleton through the [`OwnedPrimitive`] impl in `run.rs` (a cancel deletes the Job).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wfe_agent::index::IndexedStore;
use wfe_agent::owned::{self, OwnedPrimitive};
use wfe_agent::primitive::{Observation, Owner, owned_selector, owner_of, primitive_ref, report};
use wfe_agent::{Availability, Executor, ExecutorError};
use wfe_proto::agent::{Assign, Cancel, PrimitivePhase, Release, StatusReport};
use wfe_proto::v1::PrimitiveReference;

use crate::job::build_job;
use crate::status::{JobState, Policy, job_state};

/// The engine name.
pub const ENGINE: &str = "job";
/// How often running Jobs are re-evaluated from the caches (for time-based rules such as
/// the stuck grace), without any API call.
const REEVALUATE_EVERY: Duration = Duration::from_secs(5);

/// Settings of the job executor.
#[derive(Debug, Clone)]
pub struct JobExecutorConfig {
    /// Namespace of the Jobs.
    pub namespace: String,
    /// Cluster id, for primitive references.
    pub cluster_id: String,
    /// When to give up early.
    pub policy: Policy,
}

struct Writers {
    jobs: reflector::store::Writer<Job>,
    pods: reflector::store::Writer<Pod>,
    events: reflector::store::Writer<Event>,
}

/// Creates and watches Jobs.
pub struct JobExecutor {
    client: Client,
    cfg: JobExecutorConfig,
    /// Jobs by execution UID.
    jobs: IndexedStore<Job>,
    /// Pods by Job name.
    pods: IndexedStore<Pod>,
    /// Events by the Job they may be about (see [`jobs_of_event`]).
    events: IndexedStore<Event>,
    writers: Mutex<Option<Writers>>,
}

/// What a watch event means for the reports.
enum Change {
    Job(String),
    Deleted(Box<Job>),
    All,
    Nothing,
}

impl JobExecutor {
    /// A new executor; call [`Executor::observe`] to start its watches.
    pub fn new(client: Client, cfg: JobExecutorConfig) -> Self {
        let (jobs, jw) = IndexedStore::new(execution_of_job);
        let (pods, pw) = IndexedStore::new(job_of_pod);
        let (events, ew) = IndexedStore::new(jobs_of_event);
        Self {
            client,
            cfg,
            jobs,
            pods,
            events,
            writers: Mutex::new(Some(Writers {
                jobs: jw,
                pods: pw,
                events: ew,
            })),
        }
    }

    fn job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs
            .store()
            .get(&ObjectRef::new(name).within(&self.cfg.namespace))
    }

    fn pods_of(&self, name: &str) -> Vec<Arc<Pod>> {
        self.pods.find(name)
    }

    fn events_of(&self, name: &str) -> Vec<Arc<Event>> {
        self.events.find(name)
    }

    fn state_of(&self, job: &Job, owner: &Owner, now: Timestamp) -> JobState {
        let name = job.name_any();
        let pods = self.pods_of(&name);
        let events = self.events_of(&name);
        let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
        let events: Vec<&Event> = events.iter().map(AsRef::as_ref).collect();
        job_state(job, &pods, &events, owner, &self.cfg.policy, now)
    }

    fn report_of(&self, job: &Job, now: Timestamp) -> Option<(StatusReport, bool)> {
        let owner = owner_of(&job.metadata)?;
        let state = self.state_of(job, &owner, now);
        let r = report(&owner, Some(self.reference(job)), &state.observation, now);
        Some((r, state.abort && !is_finished(job)))
    }
}

fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        })
}

/// Index key of a Job: its execution's UID.
fn execution_of_job(j: &Job) -> Vec<String> {
    owner_of(&j.metadata)
        .map(|o| o.key.uid)
        .into_iter()
        .collect()
}

/// Index key of a pod: its Job's name.
fn job_of_pod(p: &Pod) -> Vec<String> {
    job_name_of_pod(p).into_iter().collect()
}

/// Index keys of an event: the Job it is about; for a pod, every prefix of the pod's name
/// that ends before a `-` (`a-b-x7k2p` under `a` and `a-b`), so Job `J` sees the events
/// of every pod named `J-…`, exactly as the prefix comparison this index replaced.
fn jobs_of_event(e: &Event) -> Vec<String> {
    let o = &e.involved_object;
    match (o.kind.as_deref(), o.name.as_deref()) {
        (Some("Job"), Some(n)) => vec![n.to_owned()],
        (Some("Pod"), Some(n)) => n
            .match_indices('-')
            .map(|(i, _)| n[..i].to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

fn job_name_of_pod(p: &Pod) -> Option<String> {
    let l = p.metadata.labels.as_ref()?;
    l.get("batch.kubernetes.io/job-name")
        .or_else(|| l.get("job-name"))
        .cloned()
}

/// The Job a pod event is about: pod names are `<job>-<5 chars>`.
fn job_name_of_event(e: &Event) -> Option<String> {
    let o = &e.involved_object;
    match o.kind.as_deref()? {
        "Job" => o.name.clone(),
        "Pod" => o
            .name
            .as_deref()?
            .rsplit_once('-')
            .map(|(j, _)| j.to_owned()),
        _ => None,
    }
}

fn change<K, F>(ev: Result<watcher::Event<K>, watcher::Error>, f: F) -> Change
where
    F: Fn(&K, bool) -> Change,
{
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

mod run;

#[cfg(test)]
mod tests;
