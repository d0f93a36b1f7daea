//! Assignment of Pending executions to agents, redelivery, loss handling and cancels: the
//! I/O around [`super::plan`], which decides what each execution needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::ResourceExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wfe_core::conditions::{self, DispatchState};
use wfe_core::{Engine, Phase, naming};
use wfe_k8s::WorkflowExecution;
use wfe_k8s::workflow_execution as k8s;
use wfe_proto::agent::{self, SessionResponse, session_response::Message};

use super::commands::{
    CANCEL_PREFIX, RELEASE_PREFIX, assignment_id, cancel_id, parse_assignment_id,
};
use super::liveness::Liveness;
use super::plan::{self, AgentView, Command};
use super::registry::{AgentRegistry, AgentSession};
use crate::convert;
use crate::ctx::SharedCtx;
use crate::metrics::EngineCluster;
use crate::status::{Edit, transitions};
use crate::store::{ExecKey, phase_of};

/// A command sent and not yet acknowledged.
#[derive(Debug, Clone)]
struct Inflight {
    sent: Instant,
    acked: bool,
}

/// How an assignment follows the one before it.
#[derive(Debug, Clone, Copy)]
struct Handover<'a> {
    /// The agent it was taken from, lost (or refusing it).
    lost: Option<&'a str>,
    /// Whether the attempt grows: the work moves to another agent, or starts.
    next_attempt: bool,
}

/// A slot of an agent promised to an execution being accepted.
#[derive(Debug)]
pub struct Reservation {
    /// The agent's session.
    pub session: Arc<AgentSession>,
}

impl Reservation {
    /// The first assignment of an execution to this agent.
    pub fn assignment(&self, now: Timestamp) -> k8s::Assignment {
        plan::assignment(&self.session.agent_id, &self.session.session_id, 1, now)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.session.reserved.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Routes Pending executions to agents and keeps the assignments honest.
pub struct Dispatcher {
    pub(super) ctx: SharedCtx,
    inflight: Mutex<HashMap<String, Inflight>>,
    reserving: Mutex<()>,
    started: Instant,
    wake: Notify,
    /// When executions accepted here were persisted, for the dispatch latency
    /// (creationTimestamp has whole seconds only; it is the fallback after a restart or
    /// for another replica's executions).
    accepted_at: Mutex<HashMap<ExecKey, Instant>>,
    /// When the held primitives were last looked at for releases.
    pub(super) last_release_pass: Mutex<Option<Instant>>,
    /// Executions left without their initial status, for the acceptance side to finish
    /// (bounded: one that does not fit is sent again by a later pass).
    abandoned: mpsc::Sender<Arc<WorkflowExecution>>,
}

/// Commands are remembered for this many ack timeouts after they were sent, then
/// forgotten. Forgetting an unacknowledged one changes nothing (it is due again anyway); an
/// acknowledged one is due again only if its execution still calls for it by then (an
/// Assign whose acknowledgement no report persisted, a Cancel whose execution still runs),
/// and agents obey repeats idempotently. Without it the map grew with every command.
const INFLIGHT_KEPT_ACK_TIMEOUTS: u32 = 10;

/// Entries of `accepted_at` kept at most; older ones go first when it is full (an
/// execution cancelled while Pending is never assigned).
const ACCEPTED_AT_MAX: usize = 10_000;

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// The Dispatched state for an execution of this engine and cluster that has no agent yet:
/// waiting for a free one (connected to any replica), or none connected.
pub fn availability(
    agents: &AgentRegistry,
    liveness: &Liveness,
    engine: Engine,
    cluster: &str,
) -> (DispatchState, String) {
    // Agents of other replicas count too (their Leases): that replica assigns the work.
    let any = agents.any_for(engine, cluster) || liveness.any_elsewhere(engine, cluster);
    plan::no_agent(engine, cluster, None, any)
}

/// What a pass knows of the agents and of the commands sent, for [`plan::plan`].
struct PassView<'a>(&'a Dispatcher);

impl AgentView for PassView<'_> {
    fn session_here(&self, agent_id: &str) -> Option<plan::SessionHere> {
        let session = self.0.ctx.agents.by_agent(agent_id)?;
        Some(plan::SessionHere {
            id: session.session_id.clone(),
            connected_at: session.connected_at,
        })
    }
    fn alive_elsewhere(&self, agent_id: &str) -> bool {
        self.0.ctx.liveness.alive_elsewhere(agent_id)
    }
    fn due(&self, command_id: &str) -> bool {
        self.0.due(command_id)
    }
}

impl Dispatcher {
    /// A dispatcher over the shared state; executions left without their initial status go
    /// to `abandoned`, for the acceptance side to finish.
    pub fn new(ctx: SharedCtx, abandoned: mpsc::Sender<Arc<WorkflowExecution>>) -> Arc<Self> {
        Arc::new(Self {
            abandoned,
            ctx,
            inflight: Mutex::default(),
            reserving: Mutex::default(),
            started: Instant::now(),
            wake: Notify::new(),
            accepted_at: Mutex::default(),
            last_release_pass: Mutex::default(),
        })
    }

    /// Notes that an execution accepted here was persisted at `at` and waits for dispatch.
    pub fn note_accepted(&self, key: &ExecKey, at: Instant) {
        let mut m = self.accepted_at.lock();
        if m.len() >= ACCEPTED_AT_MAX {
            if let Some(cutoff) = Instant::now().checked_sub(Duration::from_secs(3600)) {
                m.retain(|_, t| *t > cutoff);
            }
            if m.len() >= ACCEPTED_AT_MAX {
                m.clear();
            }
        }
        m.insert(key.clone(), at);
    }

    /// Whether a command is due: never sent, or unacknowledged past the ack timeout.
    pub(super) fn due(&self, id: &str) -> bool {
        self.inflight
            .lock()
            .get(id)
            .is_none_or(|i| !i.acked && i.sent.elapsed() >= self.ctx.config.ack_timeout)
    }

    /// Records that a command was sent now.
    pub(super) fn mark_sent(&self, id: String) {
        self.inflight.lock().insert(
            id,
            Inflight {
                sent: Instant::now(),
                acked: false,
            },
        );
    }

    /// Forgets a command (it needs no resend, ever).
    pub(super) fn forget_command(&self, id: &str) {
        self.inflight.lock().remove(id);
    }

    /// Forgets commands sent `INFLIGHT_KEPT_ACK_TIMEOUTS` ack timeouts ago.
    pub(super) fn prune_inflight(&self) {
        let keep = self.ctx.config.ack_timeout * INFLIGHT_KEPT_ACK_TIMEOUTS;
        self.inflight.lock().retain(|_, i| i.sent.elapsed() < keep);
    }

    /// Asks for a pass soon (an agent connected, left or acknowledged).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Runs passes until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.ctx.index.wait_synced().await;
        let period = (self
            .ctx
            .config
            .ack_timeout
            .min(self.ctx.config.lease_duration)
            / 4)
        .max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.ctx.index.changed().notified() => {}
                _ = self.wake.notified() => {}
            }
            self.pass().await;
        }
    }

    async fn pass(&self) {
        self.expire_sessions();
        let pending = self.ctx.index.by_phase(Phase::Pending);
        self.ctx
            .metrics
            .pending
            .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
        let running = self.ctx.index.by_phase(Phase::Running);
        for obj in pending.iter().chain(running.iter()) {
            self.handle(obj).await;
        }
        self.release_pass();
    }

    fn expire_sessions(&self) {
        let lease = self.ctx.config.lease_duration;
        let mut counts: HashMap<EngineCluster, i64> = HashMap::new();
        for s in self.ctx.agents.all() {
            if s.last_seen.lock().elapsed() > lease {
                tracing::warn!(agent = %s.agent_id, session = %s.session_id, "agent lost: no message within the lease");
                self.ctx.agents.remove(&s.session_id);
                s.closed.cancel();
                continue;
            }
            let cluster = if s.cluster_id.is_empty() {
                "local".to_owned()
            } else {
                s.cluster_id.clone()
            };
            *counts
                .entry(EngineCluster {
                    engine: s.engine.to_string(),
                    cluster,
                })
                .or_default() += 1;
        }
        self.ctx.metrics.agents.clear();
        for (l, n) in counts {
            self.ctx.metrics.agents.get_or_create(&l).set(n);
        }
    }

    async fn handle(&self, obj: &Arc<WorkflowExecution>) {
        let key = ExecKey::of(obj);
        let policy = plan::Policy {
            lease_duration: self.ctx.config.lease_duration,
            accept_recovery_grace: self.ctx.config.accept_recovery_grace,
        };
        let clock = plan::Clock {
            now: Timestamp::now(),
            since_start: self.started.elapsed(),
        };
        for command in plan::plan(obj, &PassView(self), policy, clock) {
            match command {
                Command::Admit => self.hand_over_abandoned(obj, &key),
                Command::Cancel { token } => self.send_cancel(obj, &key, token),
                Command::Assign => self.try_assign(obj, &key, false, None).await,
                Command::Resend { .. } => {
                    // Adopt on every redelivery: the agent may have created the primitive already.
                    let assigned = obj.status.as_ref().and_then(|s| s.assignment.as_ref());
                    if let Some(session) = assigned.and_then(|a| self.ctx.agents.get(&a.session_id))
                    {
                        self.send_assign(obj, &key, &session, true);
                    }
                }
                Command::Reassign { lost } => self.try_assign(obj, &key, true, Some(&lost)).await,
                Command::Resume { agent } => self.resume(obj, &key, &agent).await,
                Command::Wait(why) => {
                    tracing::trace!(execution = %key, ?why, "nothing to dispatch")
                }
            }
        }
    }

    /// Hands an execution left without its initial status to the acceptance side.
    fn hand_over_abandoned(&self, obj: &Arc<WorkflowExecution>, key: &ExecKey) {
        if self.abandoned.try_send(obj.clone()).is_err() {
            tracing::debug!(execution = %key, "admission of abandoned executions is busy; next pass");
        }
    }

    fn free_slots(&self, s: &AgentSession) -> u32 {
        let held = self
            .ctx
            .index
            .by_agent(&s.agent_id)
            .iter()
            .filter(|o| !phase_of(o).is_terminal())
            .count();
        s.capacity
            .saturating_sub(u32::try_from(held).unwrap_or(u32::MAX))
            .saturating_sub(s.reserved.load(Ordering::Relaxed))
    }

    /// For ExecuteWorkflow: a connected agent of this engine and cluster with a free slot,
    /// that slot held until the returned [`Reservation`] drops (by then the index shows the
    /// assignment, or there is none).
    pub fn reserve(
        &self,
        engine: Engine,
        cluster: &str,
        exclude: Option<&str>,
    ) -> Option<Reservation> {
        // One reservation at a time, so two calls cannot both see the last free slot.
        let _one = self.reserving.lock();
        let session = self.pick(engine, cluster, exclude)?;
        session.reserved.fetch_add(1, Ordering::Relaxed);
        Some(Reservation { session })
    }

    /// For ExecuteWorkflow, before it writes a first assignment: a pass that sees the
    /// committed write before the Assign went out must not send it as well.
    pub fn expect_first_assign(&self, key: &ExecKey) {
        self.mark_sent(assignment_id(key, 1));
    }

    /// For ExecuteWorkflow: the initial status was written with the assignment of
    /// `reservation`; send the Assign.
    pub fn assigned_at_accept(&self, obj: &WorkflowExecution, reservation: &Reservation) {
        self.observe_latency(obj);
        self.send_assign(obj, &ExecKey::of(obj), &reservation.session, false);
    }

    fn pick(
        &self,
        engine: Engine,
        cluster: &str,
        exclude: Option<&str>,
    ) -> Option<Arc<AgentSession>> {
        self.ctx
            .agents
            .candidates(engine, cluster)
            .into_iter()
            .filter(|s| Some(s.agent_id.as_str()) != exclude)
            .map(|s| (self.free_slots(&s), s))
            .filter(|(free, _)| *free > 0)
            .max_by_key(|(free, _)| *free)
            .map(|(_, s)| s)
    }

    async fn try_assign(
        &self,
        obj: &WorkflowExecution,
        key: &ExecKey,
        adopt: bool,
        lost: Option<&str>,
    ) {
        let Ok(engine) = Engine::parse(&obj.spec.execution_engine) else {
            return;
        };
        let cluster = obj.spec.cluster_id.clone();
        let Some(reservation) = self.reserve(engine, &cluster, lost) else {
            self.explain_no_agent(obj, key, engine, &cluster, lost)
                .await;
            return;
        };
        let session = reservation.session.clone();
        let first = obj.status.as_ref().is_none_or(|s| s.assignment.is_none());
        let handover = Handover {
            lost,
            next_attempt: true,
        };
        if let Some(c) = self.persist_assignment(obj, key, &session, handover).await {
            if first {
                self.observe_latency(&c.obj);
            }
            self.send_assign(&c.obj, key, &session, adopt || lost.is_some());
        }
    }

    /// Assigns an execution anew to its agent's current session here (the agent
    /// reconnected): the next fencing token, the same attempt (the work stays with the
    /// same agent), and adopt, since the agent runs the primitive already. No free slot is
    /// needed: the execution holds one of this agent's. Until then the new session's
    /// reports on it are refused (only the assigned session reports).
    async fn resume(&self, obj: &WorkflowExecution, key: &ExecKey, agent_id: &str) {
        let Some(session) = self.ctx.agents.by_agent(agent_id) else {
            return;
        };
        let handover = Handover {
            lost: None,
            next_attempt: false,
        };
        if let Some(c) = self.persist_assignment(obj, key, &session, handover).await {
            tracing::info!(execution = %key, agent = %agent_id, session = %session.session_id, "agent reconnected; execution assigned to its new session");
            self.send_assign(&c.obj, key, &session, true);
        }
    }

    /// Persists the next assignment of an execution to `session`, if the execution is still
    /// as `obj` shows it (see below); the committed write, or None.
    async fn persist_assignment(
        &self,
        obj: &WorkflowExecution,
        key: &ExecKey,
        session: &AgentSession,
        handover: Handover<'_>,
    ) -> Option<crate::status::Committed> {
        let seen = obj
            .status
            .as_ref()
            .and_then(|s| s.assignment.as_ref())
            .map(|a| a.fencing_token);
        // The decision holds only for the version it was made on: the write carries that
        // resourceVersion, so of two replicas deciding on it exactly one commits, and a
        // replica that finds a newer version (a conflict) drops its decision and sends nothing.
        let decided_on = obj.resource_version();
        let res = self
            .ctx
            .writer
            .update(key, |obj, st, now| {
                let current = st.assignment.as_ref().map(|a| a.fencing_token);
                if phase_of(obj).is_terminal()
                    || current != seen
                    || obj.resource_version() != decided_on
                {
                    return Edit::Skip;
                }
                let token = current.unwrap_or(0) + 1;
                st.assignment = Some(plan::assignment(
                    &session.agent_id,
                    &session.session_id,
                    token,
                    now,
                ));
                if handover.next_attempt || st.attempt.is_none() {
                    st.attempt = Some(st.attempt.unwrap_or(0) + 1);
                }
                let (state, message) = plan::assigned_state(&session.agent_id, handover.lost);
                transitions::set_condition(obj, st, conditions::dispatched(state, &message), now);
                Edit::Write
            })
            .await;
        match res {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(execution = %key, error = %e, "persisting an assignment failed");
                None
            }
        }
    }

    fn observe_latency(&self, obj: &WorkflowExecution) {
        if let Some(at) = self.accepted_at.lock().remove(&ExecKey::of(obj)) {
            self.ctx
                .metrics
                .dispatch_latency
                .observe(at.elapsed().as_secs_f64());
            return;
        }
        if let Some(created) = &obj.metadata.creation_timestamp {
            let secs = Timestamp::now()
                .duration_since(created.0)
                .as_secs_f64()
                .max(0.0);
            self.ctx.metrics.dispatch_latency.observe(secs);
        }
    }

    async fn explain_no_agent(
        &self,
        obj: &WorkflowExecution,
        key: &ExecKey,
        engine: Engine,
        cluster: &str,
        lost: Option<&str>,
    ) {
        let (state, msg) = match lost {
            Some(_) => plan::no_agent(engine, cluster, lost, false),
            None => availability(&self.ctx.agents, &self.ctx.liveness, engine, cluster),
        };
        let update = conditions::dispatched(state, &msg);
        let current = obj
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == update.type_));
        if current.is_some_and(|c| c.reason == update.reason && c.message == update.message) {
            return;
        }
        let seen = obj
            .status
            .as_ref()
            .and_then(|s| s.assignment.as_ref())
            .map(|a| a.fencing_token);
        let res = self
            .ctx
            .writer
            .update(key, |obj, st, now| {
                // Another replica may have assigned it meanwhile: its Dispatched condition stands.
                let current = st.assignment.as_ref().map(|a| a.fencing_token);
                if phase_of(obj).is_terminal() || current != seen {
                    return Edit::Skip;
                }
                if transitions::set_condition(obj, st, update.clone(), now) {
                    Edit::Write
                } else {
                    Edit::Skip
                }
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(execution = %key, error = %e, "writing the Dispatched condition failed");
        }
    }

    fn assign_message(
        &self,
        obj: &WorkflowExecution,
        key: &ExecKey,
        adopt: bool,
    ) -> Option<agent::Assign> {
        let st = obj.status.as_ref()?;
        let a = st.assignment.as_ref()?;
        let attempt = st.attempt.unwrap_or(1);
        let primitive_name = st
            .execution_ref
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| naming::primitive_name(&key.namespace, &key.name, attempt));
        let spec = &obj.spec;
        let c = &spec.execution_config;
        let trace = obj
            .annotations()
            .get(crate::TRACEPARENT_ANNOTATION)
            .map(|t| [("traceparent".to_owned(), t.clone())].into())
            .unwrap_or_default();
        Some(agent::Assign {
            assignment_id: assignment_id(key, a.fencing_token),
            execution: Some(agent::ExecutionKey {
                name: key.name.clone(),
                namespace: key.namespace.clone(),
                uid: obj.uid().unwrap_or_default(),
            }),
            attempt,
            fencing_token: a.fencing_token,
            deadline: c.times_out_at.as_ref().map(convert::kts),
            trace_context: trace,
            adopt,
            primitive_namespace: self.ctx.config.execution_namespace.clone(),
            primitive_name,
            workflow_ref: Some(convert::workflow_ref_to_proto(&spec.workflow_ref)),
            target_resource: spec.target_resource.clone(),
            parameters: spec.parameters.clone().into_iter().collect(),
            declared_parameter_names: c
                .declared_parameter_names
                .as_ref()
                .map(|n| wfe_proto::v1::DeclaredParameterNames { names: n.clone() }),
            service_account_name: c.service_account_name.clone(),
            dependencies: c.dependencies.as_ref().map(convert::dependencies_to_proto),
            resources: c.resources.as_ref().map(convert::resources_to_proto),
            remediation_request_ref: Some(wfe_proto::v1::RemediationRequestReference {
                name: spec.remediation_request_ref.name.clone(),
                namespace: spec.remediation_request_ref.namespace.clone(),
                uid: spec.remediation_request_ref.uid.clone(),
            }),
        })
    }

    fn send_assign(
        &self,
        obj: &WorkflowExecution,
        key: &ExecKey,
        session: &AgentSession,
        adopt: bool,
    ) {
        let Some(msg) = self.assign_message(obj, key, adopt) else {
            return;
        };
        let span = tracing::info_span!("dispatch", execution = %key, agent = %session.agent_id);
        wfe_telemetry::set_parent_from_map(&span, &msg.trace_context);
        let _in_span = span.enter();
        let id = msg.assignment_id.clone();
        tracing::info!(execution = %key, agent = %session.agent_id, fencing_token = msg.fencing_token, adopt, "assigning");
        if session
            .tx
            .try_send(SessionResponse {
                message: Some(Message::Assign(msg)),
            })
            .is_err()
        {
            tracing::warn!(agent = %session.agent_id, "agent outbound queue full; the assignment is resent later");
        }
        self.mark_sent(id);
    }

    /// Sends the Cancel of the assignment with `token` to its agent, if connected here.
    fn send_cancel(&self, obj: &WorkflowExecution, key: &ExecKey, token: u64) {
        let Some(st) = &obj.status else { return };
        let (Some(a), Some(req)) = (&st.assignment, &st.cancel_request) else {
            return;
        };
        let Some(session) = self.ctx.agents.get(&a.session_id) else {
            return;
        };
        send_cancel(&session, obj, key, token, &req.reason);
        self.mark_sent(cancel_id(key, token));
    }

    /// Handles an Ack from an agent.
    pub async fn on_ack(&self, session: &AgentSession, ack: agent::Ack) {
        if let Some(i) = self.inflight.lock().get_mut(&ack.command_id) {
            i.acked = ack.accepted;
        }
        if ack.command_id.starts_with(CANCEL_PREFIX) {
            return;
        }
        if ack.command_id.starts_with(RELEASE_PREFIX) {
            if ack.accepted {
                self.on_release_ack(session, &ack.command_id);
            }
            return;
        }
        // An accepted Assign needs no write of its own: the in-memory record above stops
        // the resends, and the agent's first status report (it follows at once: the
        // primitive was created or adopted) persists `acknowledged` with its own change.
        if ack.accepted {
            return;
        }
        let Some((key, _token)) = parse_assignment_id(&ack.command_id) else {
            return;
        };
        tracing::warn!(execution = %key, agent = %session.agent_id, reason = %ack.reason, "agent refused an assignment");
        if let Some(obj) = self.ctx.index.get(&key) {
            self.try_assign(&obj, &key, true, Some(&session.agent_id))
                .await;
        }
    }
}

/// Sends a Cancel for an execution's current assignment.
pub fn send_cancel(
    session: &AgentSession,
    obj: &WorkflowExecution,
    key: &ExecKey,
    token: u64,
    reason: &str,
) {
    let msg = agent::Cancel {
        command_id: cancel_id(key, token),
        execution: Some(agent::ExecutionKey {
            name: key.name.clone(),
            namespace: key.namespace.clone(),
            uid: obj.uid().unwrap_or_default(),
        }),
        fencing_token: token,
        reason: reason.to_owned(),
    };
    if session
        .tx
        .try_send(SessionResponse {
            message: Some(Message::Cancel(msg)),
        })
        .is_err()
    {
        tracing::warn!(agent = %session.agent_id, "agent outbound queue full; the cancel is resent later");
    }
}
