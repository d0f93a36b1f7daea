//! The [`Executor`] implementation: the watch loop here, start/adopt, cancel and release
//! on the shared skeleton ([`owned`]) through [`OwnedPrimitive`].

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
            if let Err(e) = self.stop(&job.name_any()).await {
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
}

/// What a Job engine builds, how it stops (deletion), how it reads status; the
/// create/adopt/collide/cancel/release skeleton is [`owned`]'s.
#[async_trait]
impl OwnedPrimitive for JobExecutor {
    type Object = Job;
    const KIND: &'static str = "Job";
    const STOPPED: &'static str = "deleted";

    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn namespace(&self) -> &str {
        &self.cfg.namespace
    }

    fn api(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.cfg.namespace)
    }

    fn cached(&self, name: &str) -> Option<Arc<Job>> {
        self.job(name)
    }

    fn cached_of(&self, uid: &str) -> Vec<Arc<Job>> {
        self.jobs.find(uid)
    }

    fn build(&self, a: &Assign, now: Timestamp) -> Result<Job, String> {
        build_job(a, &self.cfg.namespace, now).map_err(|e| e.to_string())
    }

    fn observation(&self, job: &Job, owner: &Owner, now: Timestamp) -> Observation {
        self.state_of(job, owner, now).observation
    }

    fn reference(&self, job: &Job) -> PrimitiveReference {
        primitive_ref(&self.cfg.cluster_id, "batch/v1", "Job", &job.metadata)
    }

    /// A Job cannot be paused: deletion (background, so its pods go too) stops it.
    async fn stop(&self, name: &str) -> Result<(), kube::Error> {
        owned::delete(self, name).await
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
        owned::start(self, a).await
    }

    async fn cancel(&self, c: &Cancel) -> Result<StatusReport, ExecutorError> {
        owned::cancel(self, c).await
    }

    async fn release(&self, r: &Release) -> Result<(), ExecutorError> {
        owned::release(self, r).await
    }
}
