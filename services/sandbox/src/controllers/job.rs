//! The simulated Job controller's I/O: a kube-rs `Controller` over Jobs that owns
//! Pods, carrying out `job_logic` decisions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::mpsc;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::events::{EventDraft, Recorder};
use super::job_logic::{JobAction, JobInputs, JobStep, next_job_step};
use super::pod_index::OwnerIndex;
use super::{ControllerConfig, ControllerError, MAX_CONFLICTS, is_status, requeue};

/// How long a created pod may stay unseen in the cache before we stop waiting for it.
const EXPECTATION_TTL: Duration = Duration::from_secs(30);

struct JobController {
    client: Client,
    pods: Store<Pod>,
    pods_by_owner: OwnerIndex,
    recorder: Recorder,
    cfg: ControllerConfig,
    /// Pods created per Job UID that the cache may not show yet (client-go's
    /// "expectations"): without them a fast second reconcile would create a twin.
    expected: Mutex<HashMap<String, Vec<(String, Instant)>>>,
}

/// Runs the Job controller until `token` is cancelled.
pub(crate) async fn run(
    client: Client,
    pods: Store<Pod>,
    pods_by_owner: OwnerIndex,
    pod_events: mpsc::Receiver<Arc<Pod>>,
    cfg: ControllerConfig,
    token: CancellationToken,
) {
    let ctx = Arc::new(JobController {
        recorder: Recorder::new(client.clone(), "job-controller"),
        client: client.clone(),
        pods,
        pods_by_owner,
        cfg,
        expected: Mutex::default(),
    });
    Controller::new(Api::<Job>::all(client), watcher::Config::default())
        .owns_shared_stream(pod_events)
        .graceful_shutdown_on(token.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "job reconcile failed");
            }
        })
        .await;
}

fn error_policy(job: Arc<Job>, error: &ControllerError, _: Arc<JobController>) -> Action {
    tracing::warn!(job = ?job.metadata.name, %error, "job controller: retrying job");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(job: Arc<Job>, ctx: Arc<JobController>) -> Result<Action, ControllerError> {
    let namespace = job
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = job.metadata.name.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut job = (*job).clone();
    for _ in 0..MAX_CONFLICTS {
        let pods = ctx.pods_of(&job);
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let suffix = random_suffix();
        let input = JobInputs {
            pods_in_flight: ctx.in_flight(&uid, &pods),
            pod_suffix: &suffix,
            retry_delay: ctx.cfg.scaled(ctx.cfg.pod_retry_delay),
            now: Timestamp::now(),
        };
        let step = next_job_step(&job, &pods, input);
        match ctx.apply(&api, &job, &step).await {
            Ok(()) => return Ok(requeue(step.requeue)),
            Err(e) if is_status(&e, 409) => match api.get_opt(&name).await? {
                Some(fresh) => job = fresh,
                None => return Ok(Action::await_change()),
            },
            Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControllerError::Conflicts(MAX_CONFLICTS))
}

impl JobController {
    /// Pods whose controller owner reference is this Job.
    fn pods_of(&self, job: &Job) -> Vec<Pod> {
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        let namespace = job.metadata.namespace.as_deref();
        self.pods_by_owner
            .pods(&self.pods, uid)
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == namespace)
            .map(|p| (**p).clone())
            .collect()
    }

    /// Created pods not yet in the cache; forgets those seen or too old.
    fn in_flight(&self, job_uid: &str, pods: &[Pod]) -> usize {
        let mut expected = self.expected.lock();
        let Some(list) = expected.get_mut(job_uid) else {
            return 0;
        };
        list.retain(|(name, at)| {
            at.elapsed() < EXPECTATION_TTL
                && !pods.iter().any(|p| p.metadata.name.as_ref() == Some(name))
        });
        let n = list.len();
        if n == 0 {
            expected.remove(job_uid);
        }
        n
    }

    async fn apply(&self, api: &Api<Job>, job: &Job, step: &JobStep) -> kube::Result<()> {
        let namespace = job
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = job.metadata.name.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        for action in &step.actions {
            match action {
                JobAction::CreatePod(pod) => self.create_pod(&pods, job, pod).await?,
                JobAction::DeletePod(pod) => {
                    ignore_not_found(pods.delete(pod, &DeleteParams::default()).await.map(drop))?
                }
                JobAction::UpdateStatus(_) | JobAction::DeleteJob => {}
            }
        }
        // Events go before the status so a client that saw the status finds them.
        self.recorder
            .record_all(&object_ref(job), &step.events)
            .await;
        for action in &step.actions {
            match action {
                JobAction::UpdateStatus(status) => {
                    let mut updated = job.clone();
                    updated.status = Some((**status).clone());
                    api.replace_status(&name, &PostParams::default(), &updated)
                        .await?;
                }
                JobAction::DeleteJob => {
                    let dp = DeleteParams {
                        propagation_policy: Some(PropagationPolicy::Background),
                        ..Default::default()
                    };
                    ignore_not_found(api.delete(&name, &dp).await.map(drop))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn create_pod(&self, pods: &Api<Pod>, job: &Job, pod: &Pod) -> kube::Result<()> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match pods.create(&PostParams::default(), pod).await {
            Ok(_) => {}
            // A random-suffix collision: the next reconcile picks another name.
            Err(e) if is_status(&e, 409) => return Ok(()),
            Err(kube::Error::Api(refused)) if refused.code == 403 || refused.code == 422 => {
                // As kube-controller-manager's Job controller: a Warning on the Job,
                // then retries (a ServiceAccount or quota may appear later).
                let event = EventDraft::warning(
                    "FailedCreate",
                    format!("Error creating: {}", refused.message),
                );
                self.recorder.record_all(&object_ref(job), &[event]).await;
                return Err(kube::Error::Api(refused));
            }
            Err(e) => return Err(e),
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        self.expected
            .lock()
            .entry(uid)
            .or_default()
            .push((name, Instant::now()));
        Ok(())
    }
}

fn ignore_not_found(result: kube::Result<()>) -> kube::Result<()> {
    match result {
        Err(e) if is_status(&e, 404) => Ok(()),
        other => other,
    }
}

/// Five characters from the alphabet `generateName` uses (no vowels, no look-alikes).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn object_ref(job: &Job) -> ObjectReference {
    let mut r = job.object_ref(&());
    r.api_version = Some("batch/v1".into());
    r.kind = Some("Job".into());
    r
}
