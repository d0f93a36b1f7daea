//! The simulated Tekton controller's I/O: a kube-rs `Controller` over PipelineRuns
//! (dynamic objects of `tekton.dev/v1`) that owns TaskRuns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::behaviour::Behaviour;
use super::events::Recorder;
use super::kubelet_logic::RefKind;
use super::tekton_logic::{PipelineRunStep, TektonAction, TektonInputs, next_pipelinerun_step};
use super::tekton_status::{PipelineRunSpec, PipelineRunView, TaskRunView};
use super::{ControllerConfig, ControllerError, Facts, MAX_CONFLICTS, is_status, requeue};

/// `tekton.dev/v1` PipelineRun.
pub(crate) fn pipelinerun_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tekton.dev", "v1", "PipelineRun"),
        "pipelineruns",
    )
}

/// `tekton.dev/v1` TaskRun.
pub(crate) fn taskrun_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tekton.dev", "v1", "TaskRun"),
        "taskruns",
    )
}

struct Tekton {
    client: Client,
    taskruns: Store<DynamicObject>,
    facts: Arc<Facts>,
    recorder: Recorder,
    cfg: ControllerConfig,
    /// Precise TaskRun starts by `namespace/name` (the status keeps whole seconds).
    starts: Mutex<HashMap<String, Timestamp>>,
}

/// Runs the Tekton controller until `token` is cancelled. Without the Tekton CRDs
/// its watches fail and retry with backoff, as a real controller's would.
pub(crate) async fn run(
    client: Client,
    facts: Arc<Facts>,
    cfg: ControllerConfig,
    token: CancellationToken,
) {
    facts.ready().await;
    let (pr, tr) = (pipelinerun_resource(), taskrun_resource());
    let writer = reflector::store::Writer::new(tr.clone());
    let taskruns = writer.as_reader();
    let tr_api = Api::<DynamicObject>::all_with(client.clone(), &tr);
    let tr_events = reflector::reflector(writer, watcher(tr_api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let ctx = Arc::new(Tekton {
        recorder: Recorder::new(client.clone(), "PipelineRun"),
        client: client.clone(),
        taskruns,
        facts,
        cfg,
        starts: Mutex::default(),
    });
    let pr_api = Api::<DynamicObject>::all_with(client, &pr);
    Controller::new_with(pr_api, watcher::Config::default(), pr)
        .owns_stream_with(tr_events, tr)
        .graceful_shutdown_on(token.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "pipelinerun reconcile failed");
            }
        })
        .await;
}

fn error_policy(pr: Arc<DynamicObject>, error: &ControllerError, _: Arc<Tekton>) -> Action {
    tracing::warn!(pipelinerun = %pr.name_any(), %error, "tekton controller: retrying pipelinerun");
    Action::requeue(Duration::from_millis(500))
}

async fn reconcile(pr: Arc<DynamicObject>, ctx: Arc<Tekton>) -> Result<Action, ControllerError> {
    let namespace = pr.namespace().unwrap_or_else(|| "default".into());
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &pipelinerun_resource());
    let name = pr.name_any();
    let mut pr = (*pr).clone();
    for _ in 0..MAX_CONFLICTS {
        let view = view_of(&pr);
        let step = ctx.decide(&view);
        match ctx.apply(&api, &pr, &view, &step).await {
            Ok(()) => return Ok(requeue(step.requeue)),
            Err(e) if is_status(&e, 409) => match api.get_opt(&name).await? {
                Some(fresh) => pr = fresh,
                None => return Ok(Action::await_change()),
            },
            Err(e) if is_status(&e, 404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ControllerError::Conflicts(MAX_CONFLICTS))
}

impl Tekton {
    fn decide(&self, pr: &PipelineRunView) -> PipelineRunStep {
        let mut behaviour = Behaviour::from_pairs(pr.spec.string_params(), pr.spec.bundle());
        if !behaviour.problems.is_empty() {
            tracing::warn!(pipelinerun = %pr.name, problems = ?behaviour.problems, "ignoring unparsable SANDBOX_* params");
        }
        behaviour.duration = self.cfg.scaled(behaviour.duration);
        let taskruns = self.taskruns_of(pr);
        let prefix = format!("{}/", pr.namespace);
        let starts: HashMap<String, Timestamp> = self
            .starts
            .lock()
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), *v)))
            .collect();
        let missing = self.missing_workspace(pr);
        let missing = missing.as_ref().map(|(k, n)| (*k, n.as_str()));
        let input = TektonInputs {
            behaviour: &behaviour,
            starts: &starts,
            missing,
            now: Timestamp::now(),
        };
        next_pipelinerun_step(pr, &taskruns, input)
    }

    fn taskruns_of(&self, pr: &PipelineRunView) -> Vec<TaskRunView> {
        self.taskruns
            .state()
            .iter()
            .filter(|t| t.namespace().as_deref() == Some(pr.namespace.as_str()))
            .filter(|t| t.owner_references().iter().any(|o| o.uid == pr.uid))
            .map(|t| TaskRunView {
                name: t.name_any(),
                status: t.data.get("status").cloned().unwrap_or(Value::Null),
            })
            .collect()
    }

    /// The first workspace Secret/ConfigMap that does not exist.
    fn missing_workspace(&self, pr: &PipelineRunView) -> Option<(&'static str, String)> {
        let workspaces = pr.spec.workspaces.as_ref()?.as_array()?;
        workspaces.iter().find_map(|w| {
            let (kind, name) = if let Some(s) = w.pointer("/secret/secretName") {
                (RefKind::Secret, s.as_str()?)
            } else {
                (RefKind::ConfigMap, w.pointer("/configMap/name")?.as_str()?)
            };
            (!self.facts.exists(kind, &pr.namespace, name)).then(|| (kind.word(), name.to_string()))
        })
    }

    async fn apply(
        &self,
        api: &Api<DynamicObject>,
        pr: &DynamicObject,
        view: &PipelineRunView,
        step: &PipelineRunStep,
    ) -> kube::Result<()> {
        let tr_api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &view.namespace, &taskrun_resource());
        for action in &step.actions {
            match action {
                TektonAction::CreateTaskRun(object) => {
                    let object: DynamicObject =
                        serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
                    match tr_api.create(&PostParams::default(), &object).await {
                        Err(e) if is_status(&e, 409) => {} // created by an earlier attempt
                        other => drop(other?),
                    }
                }
                TektonAction::TaskRunStatus { name, status } => {
                    let patch = json!({"status": status});
                    tr_api
                        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
                TektonAction::Status(_) => {}
            }
        }
        self.remember(&view.namespace, step);
        self.recorder
            .record_all(&object_ref(pr), &step.events)
            .await;
        for action in &step.actions {
            if let TektonAction::Status(status) = action {
                let mut updated = pr.clone();
                updated.data["status"] = status.clone();
                api.replace_status(&view.name, &PostParams::default(), &updated)
                    .await?;
            }
        }
        Ok(())
    }

    fn remember(&self, namespace: &str, step: &PipelineRunStep) {
        let mut starts = self.starts.lock();
        if starts.len() > 10_000 {
            starts.clear(); // bounded; a lost entry only rounds a start to the second
        }
        for (name, at) in &step.started {
            starts.insert(format!("{namespace}/{name}"), *at);
        }
    }
}

/// The decision function's view of a PipelineRun (a spec that does not parse is
/// treated as empty, which ends in `CouldntGetPipeline`, never a panic).
fn view_of(pr: &DynamicObject) -> PipelineRunView {
    let spec = pr.data.get("spec").cloned().unwrap_or(Value::Null);
    let spec: PipelineRunSpec = serde_json::from_value(spec).unwrap_or_else(|error| {
        tracing::warn!(pipelinerun = %pr.name_any(), %error, "unparsable PipelineRun spec");
        PipelineRunSpec::default()
    });
    PipelineRunView {
        name: pr.name_any(),
        namespace: pr.namespace().unwrap_or_else(|| "default".into()),
        uid: pr.uid().unwrap_or_default(),
        labels: pr.labels().clone(),
        spec,
        status: pr.data.get("status").cloned().unwrap_or(Value::Null),
    }
}

fn object_ref(pr: &DynamicObject) -> ObjectReference {
    ObjectReference {
        api_version: Some("tekton.dev/v1".into()),
        kind: Some("PipelineRun".into()),
        name: Some(pr.name_any()),
        namespace: pr.namespace(),
        uid: pr.uid(),
        resource_version: pr.resource_version(),
        field_path: None,
    }
}
