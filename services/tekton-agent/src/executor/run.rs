//! The [`Executor`] implementation: discovery, watch loop, start/adopt, cancel, release.

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

    /// `spec.status: Cancelled`: Tekton stops the TaskRuns and keeps the record.
    pub(super) async fn stop(&self, name: &str) -> Result<(), kube::Error> {
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

    async fn existing(&self, uid: &str, adopt: bool) -> Option<Arc<PipelineRun>> {
        if let Some(r) = self.find_by_uid(uid) {
            return Some(r);
        }
        if !adopt {
            return None;
        }
        let lp = ListParams::default().labels(&execution_selector(ENGINE, uid));
        match self.api().list(&lp).await {
            Ok(list) => list
                .items
                .into_iter()
                .max_by_key(|r| owner_of(&r.metadata).map_or(0, |o| o.attempt))
                .map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, execution = %uid, "cannot list pipelineruns for adoption");
                None
            }
        }
    }

    async fn adopt(&self, pr: Arc<PipelineRun>, a: &Assign) -> StatusReport {
        let name = pr.name_any();
        if a.fencing_token > owner_of(&pr.metadata).map_or(0, |o| o.fencing_token) {
            let patch = serde_json::json!({"metadata": {
                "labels": {labels::ATTEMPT: a.attempt.to_string()},
                "annotations": {labels::FENCING_TOKEN_ANNOTATION: a.fencing_token.to_string()},
            }});
            if let Err(e) = self
                .api()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(error = %e, pipelinerun = %name, "cannot record adoption");
            }
        }
        tracing::info!(pipelinerun = %name, "adopted pipelinerun");
        let mut owner = owner_of(&pr.metadata).unwrap_or_else(|| owner_from_assign(a));
        owner.fencing_token = owner.fencing_token.max(a.fencing_token);
        owner.attempt = a.attempt;
        let now = Timestamp::now();
        report(
            &owner,
            Some(self.reference(&pr)),
            &self.observation(&pr, &owner, now),
            now,
        )
    }

    async fn create(&self, a: &Assign, owner: &Owner) -> StatusReport {
        let ns = &self.cfg.namespace;
        if !a.primitive_namespace.is_empty() && a.primitive_namespace != *ns {
            let msg = format!(
                "this agent runs PipelineRuns in namespace {ns}, not {}",
                a.primitive_namespace
            );
            return self.failed(owner, FailureReason::ConfigurationError, msg, false, None);
        }
        let pr = match build_pipeline_run(a, ns, Timestamp::now()) {
            Ok(pr) => pr,
            Err(e) => {
                return self.failed(
                    owner,
                    FailureReason::ConfigurationError,
                    e.to_string(),
                    false,
                    None,
                );
            }
        };
        let api = self.api();
        let params = PostParams::default();
        match create_with_retries(|| api.create(&params, &pr)).await {
            Ok(created) => {
                tracing::info!(pipelinerun = %created.name_any(), execution = %owner.key.uid, "created pipelinerun");
                let now = Timestamp::now();
                report(
                    owner,
                    Some(self.reference(&created)),
                    &self.observation(&created, owner, now),
                    now,
                )
            }
            Err(e) if is_already_exists(&e) => match self.api().get(&a.primitive_name).await {
                Ok(pr) if owner_of(&pr.metadata).is_some_and(|o| o.key.uid == owner.key.uid) => {
                    self.adopt(Arc::new(pr), a).await
                }
                Ok(_) => self.failed(
                    owner,
                    FailureReason::Unknown,
                    format!(
                        "PipelineRun {} already exists and belongs to another execution",
                        a.primitive_name
                    ),
                    false,
                    None,
                ),
                Err(e) => self.failed(
                    owner,
                    FailureReason::Unknown,
                    format!("PipelineRun exists but cannot be read: {e}"),
                    false,
                    None,
                ),
            },
            Err(e) => {
                let (reason, msg) = create_failure("PipelineRun", &e);
                self.failed(owner, reason, msg, false, None)
            }
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
        let owner = owner_from_assign(a);
        match self.existing(&owner.key.uid, a.adopt).await {
            Some(pr) => self.adopt(pr, a).await,
            None => self.create(a, &owner).await,
        }
    }

    /// `spec.status: Cancelled`: Tekton stops the TaskRuns and keeps the record.
    async fn cancel(&self, c: &Cancel) -> Result<StatusReport, ExecutorError> {
        let why = cancel_reason(c);
        let uid = c
            .execution
            .as_ref()
            .map(|k| k.uid.as_str())
            .unwrap_or_default();
        let Some(pr) = self.find_by_uid(uid) else {
            let owner = owner_from_cancel(c);
            return Ok(self.failed(
                &owner,
                FailureReason::Cancelled,
                format!("Cancelled before a PipelineRun existed: {why}"),
                false,
                None,
            ));
        };
        let mut owner = owner_of(&pr.metadata).unwrap_or_default();
        owner.fencing_token = owner.fencing_token.max(c.fencing_token);
        let started = pr.status.as_ref().is_some_and(|s| s.start_time.is_some());
        self.stop(&pr.name_any()).await?;
        let msg = format!("PipelineRun {} cancelled: {why}", pr.name_any());
        Ok(self.failed(&owner, FailureReason::Cancelled, msg, started, Some(&pr)))
    }

    async fn release(&self, r: &Release) -> Result<(), ExecutorError> {
        let uid = r.execution.as_ref().map(|k| k.uid.as_str()).unwrap_or("");
        let name = r
            .primitive
            .as_ref()
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| self.find_by_uid(uid).map(|p| p.name_any()));
        let Some(name) = name else { return Ok(()) };
        if let Some(pr) = self.run(&name)
            && owner_of(&pr.metadata).is_some_and(|o| o.key.uid != uid)
        {
            return Ok(());
        }
        match self.api().delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
