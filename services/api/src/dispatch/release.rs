//! Release: once an execution is terminal, its audit recorded and the retention passed, the
//! API asks the agent that holds its primitive (Job, PipelineRun) to delete it.
//!
//! What exists is what agents say exists: each session keeps the primitives of its Hello's
//! inventory and later reports (`AgentSession::held`). A release goes to a session holding
//! the primitive, is resent until acknowledged, and the acknowledgement only forgets it: no
//! status write. After a restart of either side the next Hello's inventory lists only the
//! primitives still there, so nothing released is asked for again and nothing left over is
//! missed. Each replica releases what the agents connected to it hold.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::ResourceExt;
use wfe_core::Engine;
use wfe_k8s::WorkflowExecution;
use wfe_proto::agent::{self, SessionResponse, session_response::Message};

use super::Dispatcher;
use super::commands::{parse_release_id, release_id};
use super::registry::{AgentSession, HeldPrimitive};
use crate::audit::events::audit_complete;
use crate::store::ExecKey;

/// The longest time between two looks at the held primitives: releases are due minutes
/// after completion, so a second's delay costs nothing, and a pass over every held
/// primitive on each index change would.
const RELEASE_PASS_EVERY: Duration = Duration::from_secs(1);

/// Whether the primitive of an execution may be released now: terminal, the audit is
/// recorded, the retention passed.
pub fn releasable(obj: &WorkflowExecution, retention: Duration, now: Timestamp) -> bool {
    let Some(st) = &obj.status else { return false };
    let Some(done) = &st.completion_time else {
        return false;
    };
    let retention = jiff::SignedDuration::try_from(retention).unwrap_or(jiff::SignedDuration::MAX);
    let due = done.0.checked_add(retention).is_ok_and(|t| t <= now);
    due && audit_complete(obj)
}

/// Whether a session may be asked to release this execution's primitive: the execution is
/// of its engine and cluster, and the primitive it holds belongs to this execution (not to
/// an earlier one of the same name, deleted and created again).
fn belongs(obj: &WorkflowExecution, session: &AgentSession, held_uid: &str) -> bool {
    let engine = Engine::parse(&obj.spec.execution_engine).ok();
    let same_uid = held_uid.is_empty() || obj.uid().is_none_or(|u| u == held_uid);
    engine == Some(session.engine) && obj.spec.cluster_id == session.cluster_id && same_uid
}

impl Dispatcher {
    /// Sends the releases that are due, at most once per `RELEASE_PASS_EVERY` (sooner with a
    /// shorter retention).
    pub(super) fn release_pass(&self) {
        let retention = self.ctx.config.primitive_retention;
        {
            let mut last = self.last_release_pass.lock();
            if last.is_some_and(|t| t.elapsed() < retention.min(RELEASE_PASS_EVERY)) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.prune_inflight();
        let now = Timestamp::now();
        for session in self.ctx.agents.all() {
            for (obj, held) in self.due_releases(&session, retention, now) {
                self.release(&session, &obj, held);
            }
        }
    }

    /// The session's held primitives whose execution is releasable now.
    fn due_releases(
        &self,
        session: &AgentSession,
        retention: Duration,
        now: Timestamp,
    ) -> Vec<(std::sync::Arc<WorkflowExecution>, HeldPrimitive)> {
        let held = session.held.lock();
        held.iter()
            .filter_map(|(key, h)| {
                let obj = self.ctx.index.get(key)?;
                (belongs(&obj, session, &h.execution_uid) && releasable(&obj, retention, now))
                    .then(|| (obj, h.clone()))
            })
            .collect()
    }

    fn release(&self, session: &AgentSession, obj: &WorkflowExecution, held: HeldPrimitive) {
        let key = ExecKey::of(obj);
        let token = obj
            .status
            .as_ref()
            .and_then(|s| s.assignment.as_ref())
            .map_or(0, |a| a.fencing_token);
        let id = release_id(&key, token);
        if !self.due(&id) {
            return; // sent to this or another holder within the ack timeout
        }
        let msg = agent::Release {
            command_id: id.clone(),
            execution: Some(agent::ExecutionKey {
                name: key.name.clone(),
                namespace: key.namespace.clone(),
                uid: obj.uid().unwrap_or_default(),
            }),
            fencing_token: token,
            primitive: Some(held.primitive),
        };
        tracing::info!(execution = %key, agent = %session.agent_id, "releasing the primitive");
        let sent = session.tx.try_send(SessionResponse {
            message: Some(Message::Release(msg)),
        });
        if sent.is_err() {
            tracing::warn!(agent = %session.agent_id, "agent outbound queue full; the release is resent later");
        }
        self.mark_sent(id);
    }

    /// An agent acknowledged a release: the primitive is gone; every session of that engine
    /// and cluster forgets it. No write: the next inventory will not list it.
    pub(super) fn on_release_ack(&self, session: &AgentSession, command_id: &str) {
        let Some((key, _token)) = parse_release_id(command_id) else {
            return;
        };
        tracing::debug!(execution = %key, agent = %session.agent_id, "primitive released");
        for s in self.ctx.agents.all() {
            if s.engine == session.engine && s.cluster_id == session.cluster_id {
                s.forget(&key);
            }
        }
        self.forget_command(command_id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use wfe_k8s::workflow_execution as k8s;

    fn terminal(audited: bool) -> WorkflowExecution {
        let mut w = WorkflowExecution::new("we-1", Default::default());
        let done = Timestamp::from_second(1_000).unwrap();
        let cond = |t: &str, msg: &str| Condition {
            type_: t.into(),
            status: "True".into(),
            reason: "R".into(),
            message: msg.into(),
            last_transition_time: Time(done),
            observed_generation: None,
        };
        let mut conditions = Vec::new();
        if audited {
            conditions.push(cond(
                "AuditRecorded",
                "Audit event workflowexecution.workflow.completed recorded",
            ));
        }
        w.status = Some(wfe_k8s::WorkflowExecutionStatus {
            phase: Some(wfe_core::Phase::Completed),
            completion_time: Some(Time(done)),
            execution_ref: Some(k8s::ExecutionRef {
                name: "job-1".into(),
                ..Default::default()
            }),
            conditions,
            ..Default::default()
        });
        w
    }

    #[test]
    fn released_only_after_audit_and_retention() {
        let retention = Duration::from_secs(600);
        let before = Timestamp::from_second(1_599).unwrap();
        let after = Timestamp::from_second(1_600).unwrap();
        assert!(
            !releasable(&terminal(false), retention, after),
            "audit first"
        );
        assert!(!releasable(&terminal(true), retention, before), "retention");
        assert!(releasable(&terminal(true), retention, after));
        let mut running = terminal(true);
        running.status.as_mut().unwrap().completion_time = None;
        assert!(!releasable(&running, retention, after), "terminal first");
    }
}
