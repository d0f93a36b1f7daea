//! Simulated controllers: the Job controller, the kubelet and Tekton's PipelineRun
//! controller, playing the parts a real cluster plays for our executors.
//!
//! They are ordinary kube-rs clients: they watch through watchers/reflectors and write
//! through the API server's HTTP API, so they work against the sandbox's server (or
//! any Kubernetes API server). Decisions are pure functions (`*_logic` modules) from
//! objects and `now` to a list of actions; the I/O modules carry the actions out,
//! retry conflicts by re-reading, and rebuild everything from the objects after a
//! restart.
//!
//! ```text
//!  Job ──► job controller ──create Pod──► kubelet ──Pod status──► job controller ──► Job status
//!  PipelineRun ──► tekton controller ──create/update TaskRuns──► PipelineRun status
//! ```
//!
//! # Workload behaviours
//!
//! A workload picks its own fate (no wiring in tests): a Job through its container
//! env (container `workflow`, else the first), a PipelineRun through `spec.params`;
//! failing that, through an image / bundle tag `sandbox-<outcome>` (`:sandbox-fail-3`).
//!
//! | key | values | default |
//! |---|---|---|
//! | `SANDBOX_OUTCOME` | `succeed`, `fail`, `fail:<code>`, `oom`, `image-pull-error`, `missing-secret`, `hang`, `disrupt`, (Tekton) `bundle-not-found`, `fail-task:<i>[:<code>]` | `succeed` |
//! | `SANDBOX_DURATION` | Go duration: `0s`, `500ms`, `2s`, `1m30s` | `1s` |
//! | `SANDBOX_TASKS` | Tekton: a count (`3`) or names (`clone,build`) | `1` (`task-1`) |
//! | `SANDBOX_FAILING_ATTEMPTS` | Job: the outcome applies to the first N pods only | all pods |
//!
//! Missing Secrets/ConfigMaps referenced by pod volumes or env are also detected for
//! real, as the kubelet would. The crate README has the details.

mod behaviour;
mod blockers;
mod crds;
mod duration;
mod events;
mod job;
mod job_logic;
mod kubelet;
mod kubelet_logic;
mod pod_failure;
mod pod_feed;
mod pod_index;
mod podstatus;
mod tekton;
mod tekton_logic;
mod tekton_status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use behaviour::{Behaviour, Outcome, parse_outcome};
pub use crds::{install_tekton_crds, tekton_crds};
pub use duration::{format_go_duration, parse_go_duration};
pub use job_logic::{JobAction, JobInputs, JobStep, next_job_step};
pub use kubelet_logic::{Blocker, KubeletTiming, PodStep, RefKind, find_blocker, next_pod_step};
pub use tekton_logic::{PipelineRunStep, TektonAction, TektonInputs, next_pipelinerun_step};
pub use tekton_status::{PipelineRunView, TaskRunView};

/// Which controllers run and how fast simulated time passes.
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerConfig {
    /// Run the Job controller (off against a real kube-controller-manager, whose Job
    /// controller does the part).
    pub job_controller: bool,
    /// Run the kubelet (scheduler and kubelet of one node): needed on any API server,
    /// since no real node runs here.
    pub kubelet: bool,
    /// Run the Tekton PipelineRun controller.
    pub tekton: bool,
    /// Multiplies every simulated delay, `SANDBOX_DURATION` included (not
    /// `activeDeadlineSeconds`, `ttlSecondsAfterFinished` or Tekton timeouts, which are
    /// the API's contract). `0.0` makes every workload instant.
    pub time_scale: f64,
    /// Kubelet: from Scheduled to Running.
    pub pod_startup: Duration,
    /// Kubelet: between retries of a failed mount or config lookup (`FailedMount`).
    pub kubelet_retry: Duration,
    /// Kubelet: between image pull attempts (`ErrImagePull` ↔ `ImagePullBackOff`).
    pub image_pull_backoff: Duration,
    /// Job controller: wait after a failed pod before creating its replacement.
    pub pod_retry_delay: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            job_controller: true,
            kubelet: true,
            tekton: true,
            time_scale: 1.0,
            pod_startup: Duration::ZERO,
            kubelet_retry: Duration::from_secs(2),
            image_pull_backoff: Duration::from_secs(2),
            pod_retry_delay: Duration::from_secs(1),
        }
    }
}

impl ControllerConfig {
    /// A simulated delay scaled by `time_scale` (negative or NaN scales count as 0).
    pub fn scaled(&self, d: Duration) -> Duration {
        let scale = if self.time_scale.is_finite() {
            self.time_scale.max(0.0)
        } else {
            1.0
        };
        Duration::try_from_secs_f64(d.as_secs_f64() * scale).unwrap_or(Duration::MAX)
    }

    fn kubelet_timing(&self) -> KubeletTiming {
        KubeletTiming {
            startup: self.scaled(self.pod_startup),
            // Retries never go below a few milliseconds, so a zero scale cannot spin.
            retry: self
                .scaled(self.kubelet_retry)
                .max(Duration::from_millis(50)),
            pull_backoff: self
                .scaled(self.image_pull_backoff)
                .max(Duration::from_millis(50)),
        }
    }
}

/// Running controllers; dropping the handle stops them too.
#[derive(Debug)]
pub struct ControllerHandle {
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerHandle {
    /// Stops every controller and waits for their tasks to end.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        for task in self.tasks.drain(..) {
            if let Err(error) = task.await {
                tracing::warn!(%error, "controller task ended abnormally");
            }
        }
    }
}

impl Drop for ControllerHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Starts the enabled controllers on the current tokio runtime.
pub fn start(client: Client, cfg: ControllerConfig) -> ControllerHandle {
    let token = CancellationToken::new();
    let mut tasks = Vec::new();
    if cfg.job_controller || cfg.kubelet || cfg.tekton {
        let facts = Facts::start(&client, &token, &mut tasks);
        let spawn = |task| tokio::spawn(until_cancelled(token.clone(), task));
        if cfg.job_controller || cfg.kubelet {
            // One Pod watch feeds both; a controller left off drops its receiver.
            let (pods, feed_task) = pod_feed::start(&client, &token);
            tasks.push(feed_task);
            if cfg.kubelet {
                let kubelet_feed = (pods.store.clone(), pods.by_owner.clone(), pods.applied);
                let kubelet = kubelet::run(
                    client.clone(),
                    kubelet_feed,
                    facts.clone(),
                    cfg.clone(),
                    token.clone(),
                );
                tasks.push(spawn(Box::pin(kubelet)));
            }
            if cfg.job_controller {
                tasks.push(spawn(Box::pin(job::run(
                    client.clone(),
                    pods.store,
                    pods.by_owner,
                    pods.touched,
                    cfg.clone(),
                    token.clone(),
                ))));
            }
        }
        if cfg.tekton {
            tasks.push(spawn(Box::pin(tekton::run(
                client.clone(),
                facts,
                cfg.clone(),
                token.clone(),
            ))));
        }
    }
    ControllerHandle { token, tasks }
}

/// Runs `task` until it ends or `token` is cancelled. A controller whose watches never
/// became ready (e.g. the Tekton CRDs are missing) does not see kube's graceful
/// shutdown, so cancellation drops it; everything is rebuilt from objects on restart.
async fn until_cancelled(
    token: CancellationToken,
    task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    tokio::select! {
        () = task => {}
        () = token.cancelled() => {}
    }
}

/// Caches of the Secrets and ConfigMaps that pods and workspaces reference.
#[derive(Clone)]
pub(crate) struct Facts {
    secrets: Store<Secret>,
    config_maps: Store<ConfigMap>,
    /// True once both caches are listed. kube's `Store::wait_until_ready` wakes only
    /// one of several concurrent waiters, so one task waits and broadcasts here.
    ready: tokio::sync::watch::Receiver<bool>,
}

impl Facts {
    fn start(
        client: &Client,
        token: &CancellationToken,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Arc<Self> {
        let (secrets, w1) = reflector::store();
        let (config_maps, w2) = reflector::store();
        let s = reflector::reflector(
            w1,
            watcher(
                kube::Api::<Secret>::all(client.clone()),
                watcher::Config::default(),
            ),
        );
        let c = reflector::reflector(
            w2,
            watcher(
                kube::Api::<ConfigMap>::all(client.clone()),
                watcher::Config::default(),
            ),
        );
        tasks.push(spawn_drain(s.default_backoff().boxed(), token.clone()));
        tasks.push(spawn_drain(c.default_backoff().boxed(), token.clone()));
        let (tx, ready) = tokio::sync::watch::channel(false);
        let (s2, c2) = (secrets.clone(), config_maps.clone());
        tasks.push(tokio::spawn(async move {
            let _ = tokio::join!(s2.wait_until_ready(), c2.wait_until_ready());
            let _ = tx.send(true);
        }));
        Arc::new(Self {
            secrets,
            config_maps,
            ready,
        })
    }

    /// Waits until both caches hold a first full list, so a pod is never failed for
    /// a Secret that exists but was not listed yet.
    async fn ready(&self) {
        let _ = self.ready.clone().wait_for(|r| *r).await;
    }

    /// Whether the referenced object exists in `namespace`.
    fn exists(&self, kind: RefKind, namespace: &str, name: &str) -> bool {
        match kind {
            RefKind::Secret => self
                .secrets
                .get(&ObjectRef::new(name).within(namespace))
                .is_some(),
            RefKind::ConfigMap => self
                .config_maps
                .get(&ObjectRef::new(name).within(namespace))
                .is_some(),
        }
    }
}

/// Drives a reflector stream until shutdown; errors are retried by the backoff.
fn spawn_drain<T, E>(
    mut stream: futures::stream::BoxStream<'static, Result<T, E>>,
    token: CancellationToken,
) -> JoinHandle<()>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                item = stream.next() => match item {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => tracing::debug!(%error, "watch error (retrying)"),
                    None => return,
                },
            }
        }
    })
}

/// Errors of a reconcile; the controller runtime retries them after a delay.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The API server refused or failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be (de)serialized.
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
    /// Writes kept conflicting with other writers.
    #[error("gave up after {0} conflicting writes")]
    Conflicts(usize),
}

/// How many times a write is recomputed after a 409 Conflict before giving up.
const MAX_CONFLICTS: usize = 5;

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The reconcile result for "look again after this long, or on the next change".
fn requeue(after: Option<Duration>) -> kube::runtime::controller::Action {
    match after {
        // Never zero: the runtime would spin on an object that is already due.
        Some(d) => kube::runtime::controller::Action::requeue(d.max(Duration::from_millis(5))),
        None => kube::runtime::controller::Action::await_change(),
    }
}
