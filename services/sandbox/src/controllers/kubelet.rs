//! The simulated kubelet's I/O: a kube-rs `Controller` over every Pod, carrying out
//! `kubelet_logic` decisions (status writes through `/status`, events).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::channel::mpsc;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::behaviour::Behaviour;
use super::events::Recorder;
use super::kubelet_logic::{PodStep, find_blocker, next_pod_step, running_since};
use super::pod_index::{OwnerIndex, controller_uid};
use super::podstatus::{containers, main_container};
use super::{ControllerConfig, ControllerError, Facts, MAX_CONFLICTS, is_status, requeue};

/// The kubelet's share of the Pod feed: cache, owner index, applied-Pod triggers.
pub(crate) type PodFeedPart = (Store<Pod>, OwnerIndex, mpsc::Receiver<Arc<Pod>>);

struct Kubelet {
    client: Client,
    pods: Store<Pod>,
    pods_by_owner: OwnerIndex,
    facts: Arc<Facts>,
    recorder: Recorder,
    cfg: ControllerConfig,
    /// Precise container start per pod UID (the status keeps whole seconds).
    starts: Mutex<HashMap<String, Timestamp>>,
}

/// Runs the kubelet until `token` is cancelled.
pub(crate) async fn run(
    client: Client,
    feed: PodFeedPart,
    facts: Arc<Facts>,
    cfg: ControllerConfig,
    token: CancellationToken,
) {
    facts.ready().await;
    let (pods, pods_by_owner, pod_events) = feed;
    let controller = Controller::for_shared_stream(pod_events, pods.clone());
    let ctx = Arc::new(Kubelet {
        recorder: Recorder::new(client.clone(), "kubelet"),
        pods,
        pods_by_owner,
        client,
        facts,
        cfg,
        starts: Mutex::default(),
    });
    controller
        .graceful_shutdown_on(token.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "kubelet reconcile failed");
            }
        })
        .await;
}

fn error_policy(pod: Arc<Pod>, error: &ControllerError, _: Arc<Kubelet>) -> Action {
    tracing::warn!(pod = ?pod.metadata.name, %error, "kubelet: retrying pod");
    Action::requeue(std::time::Duration::from_millis(500))
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Kubelet>) -> Result<Action, ControllerError> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut pod = (*pod).clone();
    for _ in 0..MAX_CONFLICTS {
        let step = ctx.decide(&pod);
        ctx.recorder
            .record_all(&object_ref(&pod), &step.events)
            .await;
        let Some(status) = step.status.clone() else {
            return Ok(requeue(step.requeue));
        };
        let mut updated = pod.clone();
        updated.status = Some(status);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {
                ctx.remember(&pod, &step);
                return Ok(requeue(step.requeue));
            }
            Err(e) if is_status(&e, 409) => match api.get_opt(&name).await? {
                Some(fresh) => pod = fresh,
                None => return Ok(Action::await_change()),
            },
            Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControllerError::Conflicts(MAX_CONFLICTS))
}

impl Kubelet {
    fn decide(&self, pod: &Pod) -> PodStep {
        let behaviour = behaviour_of(pod);
        if !behaviour.problems.is_empty() {
            tracing::warn!(pod = ?pod.metadata.name, problems = ?behaviour.problems, "ignoring unparsable SANDBOX_* values");
        }
        let outcome = behaviour.outcome_for_attempt(self.attempt(pod));
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let blocker = find_blocker(pod, outcome, |kind, name| {
            self.facts.exists(kind, namespace, name)
        });
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // The remembered start only counts while the status shows the container started.
        let started = running_since(pod)
            .map(|coarse| self.starts.lock().get(&uid).copied().unwrap_or(coarse));
        let duration = self.cfg.scaled(behaviour.duration);
        let timing = self.cfg.kubelet_timing();
        next_pod_step(
            pod,
            outcome,
            duration,
            blocker.as_ref(),
            started,
            timing,
            Timestamp::now(),
        )
    }

    fn remember(&self, pod: &Pod, step: &PodStep) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut starts = self.starts.lock();
        match step.started {
            Some(at) => {
                starts.entry(uid).or_insert(at);
            }
            None => {
                starts.remove(&uid);
            }
        }
    }

    /// Zero-based attempt number: how many pods of the same Job were created before.
    fn attempt(&self, pod: &Pod) -> u32 {
        let Some(owner) = controller_uid(pod) else {
            return 0;
        };
        let key = |p: &Pod| {
            (
                p.metadata.creation_timestamp.clone(),
                p.metadata.name.clone(),
            )
        };
        let mine = key(pod);
        let earlier = self
            .pods_by_owner
            .pods(&self.pods, owner)
            .iter()
            .filter(|p| key(p) < mine)
            .count();
        u32::try_from(earlier).unwrap_or(u32::MAX)
    }
}

/// The behaviour a pod's main container asks for.
pub(crate) fn behaviour_of(pod: &Pod) -> Behaviour {
    let main = main_container(containers(pod));
    let env = main
        .and_then(|c| c.env.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pairs = env
        .iter()
        .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)));
    Behaviour::from_pairs(pairs, main.and_then(|c| c.image.as_deref()))
}

/// The reference events use for a Pod.
pub(crate) fn object_ref(pod: &Pod) -> ObjectReference {
    let mut r = pod.object_ref(&());
    r.api_version = Some("v1".into());
    r.kind = Some("Pod".into());
    r
}
