//! The [`Executor`] implementation: discovery and the watch loop here, start/adopt,
//! cancel and release on the shared skeleton ([`owned`]) through [`OwnedPrimitive`].

use super::*;

impl TektonExecutor {
    fn streams(&self, w: Writers) -> BoxStream<'static, Change> {
        let ns = &self.cfg.namespace;
        let cfg = watcher::Config::default().labels(&owned_selector(ENGINE));
        let runs = reflector::reflector(
            w.runs,
            watcher(Api::<PipelineRun>::namespaced(self.client.clone(), ns), cfg).default_backoff(),
        )
        .map(|ev| {
            change(ev, |r: &PipelineRun, deleted| {
                if deleted {
                    Change::Deleted(Box::new(r.clone()))
                } else {
                    Change::Run(r.name_any())
                }
            })
        });
        // TaskRuns inherit the PipelineRun's labels except managed-by, which Tekton sets.
        let task_sel = format!("{}={ENGINE}", labels::EXECUTION_ENGINE);
        let tasks = reflector::reflector(
            w.tasks,
            watcher(
                Api::<TaskRun>::namespaced(self.client.clone(), ns),
                watcher::Config::default().labels(&task_sel),
            )
            .default_backoff(),
        )
        .map(|ev| {
            change(ev, |t: &TaskRun, _| {
                run_of_task(t).map_or(Change::Nothing, Change::Run)
            })
        });
        futures::stream::select_all([runs.boxed(), tasks.boxed()]).boxed()
    }

    /// Reports a run; when the agent gave up on it, reports first (so the failure's
    /// reason is what workflow-api records) and then stops it.
    async fn emit(&self, pr: &PipelineRun, tx: &mpsc::Sender<StatusReport>, now: Timestamp) {
        let Some((r, abort)) = self.report_of(pr, now) else {
            return;
        };
        let _ = tx.send(r).await;
        if abort {
            tracing::info!(pipelinerun = %pr.name_any(), "giving up on pipelinerun; cancelling it");
            if let Err(e) = self.stop(&pr.name_any()).await {
                tracing::warn!(error = %e, pipelinerun = %pr.name_any(), "cannot cancel pipelinerun");
            }
        }
    }

    async fn on_change(&self, c: Change, tx: &mpsc::Sender<StatusReport>) {
        let now = Timestamp::now();
        match c {
            Change::Run(name) => {
                if let Some(pr) = self.run(&name) {
                    self.emit(&pr, tx, now).await;
                }
            }
            Change::All => {
                for pr in self.runs.state() {
                    self.emit(&pr, tx, now).await;
                }
            }
            Change::Tick => {
                // Only runs a time-based rule just failed: the others reported their
                // state when it last changed.
                for pr in self.runs.state() {
                    if self.report_of(&pr, now).is_some_and(|(_, abort)| abort) {
                        self.emit(&pr, tx, now).await;
                    }
                }
            }
            Change::Deleted(pr) => {
                let Some(owner) = owner_of(&pr.metadata) else {
                    return;
                };
                let obs = Observation::new(
                    PrimitivePhase::Missing,
                    "Deleted",
                    format!("PipelineRun {} was deleted", pr.name_any()),
                );
                let _ = tx
                    .send(report(&owner, Some(self.reference(&pr)), &obs, now))
                    .await;
            }
            Change::Nothing => {}
        }
    }
}

/// What a Tekton engine builds, how it stops (`spec.status: Cancelled`), how it reads
/// status; the create/adopt/collide/cancel/release skeleton is [`owned`]'s.
#[async_trait]
impl OwnedPrimitive for TektonExecutor {
    type Object = PipelineRun;
    const KIND: &'static str = "PipelineRun";
    const STOPPED: &'static str = "cancelled";

    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn namespace(&self) -> &str {
        &self.cfg.namespace
    }

    fn api(&self) -> Api<PipelineRun> {
        Api::namespaced(self.client.clone(), &self.cfg.namespace)
    }

    fn cached(&self, name: &str) -> Option<Arc<PipelineRun>> {
        self.run(name)
    }

    fn cached_of(&self, uid: &str) -> Vec<Arc<PipelineRun>> {
        self.runs
            .state()
            .into_iter()
            .filter(|r| owner_of(&r.metadata).is_some_and(|o| o.key.uid == uid))
            .collect()
    }

    fn build(&self, a: &Assign, now: Timestamp) -> Result<PipelineRun, String> {
        build_pipeline_run(a, &self.cfg.namespace, now).map_err(|e| e.to_string())
    }

    fn observation(&self, pr: &PipelineRun, owner: &Owner, now: Timestamp) -> Observation {
        self.state(pr, owner, now).observation
    }

    /// Tekton's own start time: a run cancelled before it started is no execution failure.
    fn has_started(&self, pr: &PipelineRun, _: &Owner, _: Timestamp) -> bool {
        pr.status.as_ref().is_some_and(|s| s.start_time.is_some())
    }

    fn reference(&self, pr: &PipelineRun) -> PrimitiveReference {
        primitive_ref(
            &self.cfg.cluster_id,
            "tekton.dev/v1",
            "PipelineRun",
            &pr.metadata,
        )
    }

    /// `spec.status: Cancelled`: Tekton stops the TaskRuns and keeps the record.
    async fn stop(&self, name: &str) -> Result<(), kube::Error> {
        let patch = serde_json::json!({"spec": {"status": "Cancelled"}});
        match self
            .api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Executor for TektonExecutor {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    /// Tekton's CRDs must be served: discovery of `tekton.dev/v1` with `pipelineruns`
    /// and `taskruns`.
    async fn availability(&self) -> Availability {
        match self.client.list_api_group_resources("tekton.dev/v1").await {
            Ok(list) => {
                let served = |n: &str| list.resources.iter().any(|r| r.name == n);
                if served("pipelineruns") && served("taskruns") {
                    Availability::Available
                } else {
                    Availability::Unavailable("Tekton Pipelines is not installed: tekton.dev/v1 does not serve pipelineruns and taskruns".into())
                }
            }
            Err(e) => Availability::Unavailable(format!(
                "Tekton Pipelines is not installed: the API server does not serve tekton.dev/v1 ({e})"
            )),
        }
    }

    async fn observe(
        self: Arc<Self>,
        tx: mpsc::Sender<StatusReport>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let writers = self.writers.lock().ok().and_then(|mut w| w.take());
        let Some(writers) = writers else {
            anyhow::bail!("observe may run only once")
        };
        let mut changes = self.streams(writers);
        let mut tick = tokio::time::interval(REEVALUATE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let c = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                c = changes.next() => match c { Some(c) => c, None => return Ok(()) },
                _ = tick.tick() => Change::Tick,
            };
            self.on_change(c, &tx).await;
        }
    }

    async fn synced(&self) {
        let _ = self.runs.wait_until_ready().await;
        let _ = self.tasks.wait_until_ready().await;
    }

    fn inventory(&self) -> Vec<StatusReport> {
        let now = Timestamp::now();
        self.runs
            .state()
            .iter()
            .filter_map(|r| self.report_of(r, now).map(|(r, _)| r))
            .collect()
    }

    async fn start(&self, a: &Assign) -> StatusReport {
        owned::start(self, a).await
    }

    async fn cancel(&self, c: &Cancel) -> Result<StatusReport, ExecutorError> {
        owned::cancel(self, c).await
    }

    async fn release(&self, r: &Release) -> Result<(), ExecutorError> {
        owned::release(self, r).await
    }
}
