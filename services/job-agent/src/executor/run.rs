//! The [`Executor`] implementation: watch loop, start/adopt, cancel, release.

use super::*;

impl JobExecutor {
    fn streams(&self, w: Writers) -> BoxStream<'static, Change> {
        let ns = &self.cfg.namespace;
        let sel = owned_selector(ENGINE);
        let cfg = watcher::Config::default().labels(&sel);
        let jobs = self
            .jobs
            .reflector(
                w.jobs,
                watcher(Api::<Job>::namespaced(self.client.clone(), ns), cfg.clone())
                    .default_backoff(),
            )
            .map(|ev| {
                change(ev, |j: &Job, deleted| {
                    if deleted {
                        Change::Deleted(Box::new(j.clone()))
                    } else {
                        Change::Job(j.name_any())
                    }
                })
            });
        // The pod template carries the same labels, so pods are selected the same way.
        let pods = self
            .pods
            .reflector(
                w.pods,
                watcher(Api::<Pod>::namespaced(self.client.clone(), ns), cfg).default_backoff(),
            )
            .map(|ev| {
                change(ev, |p: &Pod, _| {
                    job_name_of_pod(p).map_or(Change::Nothing, Change::Job)
                })
            });
        // Events cannot carry our labels; the execution namespace holds only our workloads.
        let events = self
            .events
            .reflector(
                w.events,
                watcher(
                    Api::<Event>::namespaced(self.client.clone(), ns),
                    watcher::Config::default(),
                )
                .default_backoff(),
            )
            .map(|ev| {
                change(ev, |e: &Event, _| {
                    job_name_of_event(e).map_or(Change::Nothing, Change::Job)
                })
            });
        futures::stream::select_all([jobs.boxed(), pods.boxed(), events.boxed()]).boxed()
    }

    async fn emit(&self, job: &Job, tx: &mpsc::Sender<StatusReport>) {
        let Some((r, abort)) = self.report_of(job, Timestamp::now()) else {
            return;
        };
        let _ = tx.send(r).await;
        if abort {
            // The execution already failed (e.g. repeated OOM kills): stop the Job.
            tracing::info!(job = %job.name_any(), "giving up on job; deleting it");
            if let Err(e) = self.delete(&job.name_any()).await {
                tracing::warn!(error = %e, job = %job.name_any(), "cannot delete job");
            }
        }
    }

    async fn on_change(&self, c: Change, tx: &mpsc::Sender<StatusReport>) {
        match c {
            Change::Job(name) => {
                if let Some(job) = self.job(&name) {
                    self.emit(&job, tx).await;
                }
            }
            Change::All => {
                for job in self.jobs.store().state() {
                    self.emit(&job, tx).await;
                }
            }
            Change::Deleted(job) => {
                let Some(owner) = owner_of(&job.metadata) else {
                    return;
                };
                let obs = Observation::new(
                    PrimitivePhase::Missing,
                    "Deleted",
                    format!("Job {} was deleted", job.name_any()),
                );
                let _ = tx
                    .send(report(
                        &owner,
                        Some(self.reference(&job)),
                        &obs,
                        Timestamp::now(),
                    ))
                    .await;
            }
            Change::Nothing => {}
        }
    }

    async fn delete(&self, name: &str) -> Result<(), kube::Error> {
        match self.api().delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The existing Job of an execution: the cache, and for an adoption also a fresh
    /// list (the cache may not have seen a Job another replica just created).
    async fn existing(&self, uid: &str, adopt: bool) -> Option<Arc<Job>> {
        if let Some(j) = self.find_by_uid(uid) {
            return Some(j);
        }
        if !adopt {
            return None;
        }
        let lp = ListParams::default().labels(&execution_selector(ENGINE, uid));
        match self.api().list(&lp).await {
            Ok(list) => list
                .items
                .into_iter()
                .max_by_key(|j| owner_of(&j.metadata).map_or(0, |o| o.attempt))
                .map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, execution = %uid, "cannot list jobs for adoption");
                None
            }
        }
    }

    /// Takes over an existing Job: records the new assignment on it, reports its state.
    async fn adopt(&self, job: Arc<Job>, a: &Assign) -> StatusReport {
        let name = job.name_any();
        let current = owner_of(&job.metadata).map_or(0, |o| o.fencing_token);
        if a.fencing_token > current {
            let patch = serde_json::json!({"metadata": {
                "labels": {labels::ATTEMPT: a.attempt.to_string()},
                "annotations": {labels::FENCING_TOKEN_ANNOTATION: a.fencing_token.to_string()},
            }});
            if let Err(e) = self
                .api()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(error = %e, job = %name, "cannot record adoption on job");
            }
        }
        tracing::info!(job = %name, execution = %owner_from_assign(a).key.uid, "adopted job");
        let mut owner = owner_of(&job.metadata).unwrap_or_else(|| owner_from_assign(a));
        owner.fencing_token = owner.fencing_token.max(a.fencing_token);
        owner.attempt = a.attempt;
        let now = Timestamp::now();
        let state = self.state_of(&job, &owner, now);
        report(&owner, Some(self.reference(&job)), &state.observation, now)
    }

    async fn create(&self, a: &Assign, owner: &Owner) -> StatusReport {
        let ns = &self.cfg.namespace;
        if !a.primitive_namespace.is_empty() && a.primitive_namespace != *ns {
            let msg = format!(
                "this agent runs Jobs in namespace {ns}, not {}",
                a.primitive_namespace
            );
            return self.failed(owner, FailureReason::ConfigurationError, msg, false, None);
        }
        let job = match build_job(a, ns, Timestamp::now()) {
            Ok(j) => j,
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
        match create_with_retries(|| api.create(&params, &job)).await {
            Ok(created) => {
                tracing::info!(job = %created.name_any(), execution = %owner.key.uid, "created job");
                let now = Timestamp::now();
                let state = self.state_of(&created, owner, now);
                report(
                    owner,
                    Some(self.reference(&created)),
                    &state.observation,
                    now,
                )
            }
            Err(e) if is_already_exists(&e) => self.collision(a, owner).await,
            Err(e) => {
                let (reason, msg) = create_failure("Job", &e);
                self.failed(owner, reason, msg, false, None)
            }
        }
    }

    /// The deterministic name is taken: adopt it if it is this execution's.
    async fn collision(&self, a: &Assign, owner: &Owner) -> StatusReport {
        match self.api().get(&a.primitive_name).await {
            Ok(job) if owner_of(&job.metadata).is_some_and(|o| o.key.uid == owner.key.uid) => {
                self.adopt(Arc::new(job), a).await
            }
            Ok(job) => {
                let other = owner_of(&job.metadata)
                    .map(|o| o.key.uid)
                    .unwrap_or_else(|| "nobody".into());
                let msg = format!(
                    "Job {} already exists and belongs to execution {other}",
                    a.primitive_name
                );
                self.failed(owner, FailureReason::Unknown, msg, false, None)
            }
            Err(e) => self.failed(
                owner,
                FailureReason::Unknown,
                format!("Job exists but cannot be read: {e}"),
                false,
                None,
            ),
        }
    }
}

#[async_trait]
impl Executor for JobExecutor {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn availability(&self) -> Availability {
        Availability::Available
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
                _ = tick.tick() => Change::All,
            };
            self.on_change(c, &tx).await;
        }
    }

    async fn synced(&self) {
        let _ = self.jobs.store().wait_until_ready().await;
        let _ = self.pods.store().wait_until_ready().await;
        let _ = self.events.store().wait_until_ready().await;
    }

    fn inventory(&self) -> Vec<StatusReport> {
        let now = Timestamp::now();
        self.jobs
            .store()
            .state()
            .iter()
            .filter_map(|j| self.report_of(j, now).map(|(r, _)| r))
            .collect()
    }

    async fn start(&self, a: &Assign) -> StatusReport {
        let owner = owner_from_assign(a);
        match self.existing(&owner.key.uid, a.adopt).await {
            Some(job) => self.adopt(job, a).await,
            None => self.create(a, &owner).await,
        }
    }

    async fn cancel(&self, c: &Cancel) -> Result<StatusReport, ExecutorError> {
        let why = cancel_reason(c);
        let uid = c
            .execution
            .as_ref()
            .map(|k| k.uid.as_str())
            .unwrap_or_default();
        let Some(job) = self.find_by_uid(uid) else {
            let owner = owner_from_cancel(c);
            return Ok(self.failed(
                &owner,
                FailureReason::Cancelled,
                format!("Cancelled before a Job existed: {why}"),
                false,
                None,
            ));
        };
        let mut owner = owner_of(&job.metadata).unwrap_or_default();
        owner.fencing_token = owner.fencing_token.max(c.fencing_token);
        let started = self
            .state_of(&job, &owner, Timestamp::now())
            .observation
            .started_at
            .is_some();
        self.delete(&job.name_any()).await?;
        let msg = format!("Job {} deleted: {why}", job.name_any());
        Ok(self.failed(&owner, FailureReason::Cancelled, msg, started, Some(&job)))
    }

    async fn release(&self, r: &Release) -> Result<(), ExecutorError> {
        let uid = r.execution.as_ref().map(|k| k.uid.as_str()).unwrap_or("");
        let name = r
            .primitive
            .as_ref()
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| self.find_by_uid(uid).map(|j| j.name_any()));
        let Some(name) = name else { return Ok(()) };
        // Never delete a Job of another execution (upstream #383).
        if let Some(job) = self.job(&name)
            && owner_of(&job.metadata).is_some_and(|o| o.key.uid != uid)
        {
            return Ok(());
        }
        self.delete(&name).await.map_err(ExecutorError::from)
    }
}
