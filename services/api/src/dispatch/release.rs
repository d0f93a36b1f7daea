//! Release: once an execution is terminal, its audit recorded and the retention passed, the
//! API asks an agent of its engine and cluster to delete the primitive (Job, PipelineRun).
//!
//! The command is resent until acknowledged (and waits while no agent is connected); the
//! acknowledgement sets the `PrimitiveReleased` condition, after which nothing is sent
//! again, also after a restart.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;
use wfe_core::Engine;
use wfe_core::conditions::{ConditionStatus, ConditionUpdate};
use wfe_k8s::WorkflowExecution;
use wfe_proto::agent::{self, SessionResponse, session_response::Message};
use wfe_proto::v1;

use super::Dispatcher;
use super::dispatcher::{assignment_id, parse_assignment_id};
use super::registry::AgentSession;
use crate::status::audit_sync::audit_complete;
use crate::status::{Edit, transitions, update_status};
use crate::store::ExecKey;

/// Command ids of releases: `release/<namespace>/<name>/<fencing token>`.
pub const PREFIX: &str = "release/";
/// The condition type set once an agent acknowledged the release.
pub const PRIMITIVE_RELEASED: &str = "PrimitiveReleased";

/// Whether the execution's primitive was released.
pub fn released(obj: &WorkflowExecution) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == PRIMITIVE_RELEASED && c.status == ConditionStatus::True.as_str())
    })
}

/// Whether the primitive may be released now: terminal, a primitive exists, the audit is
/// recorded, the retention passed, and it was not released yet.
pub fn releasable(obj: &WorkflowExecution, retention: std::time::Duration, now: Timestamp) -> bool {
    let Some(st) = &obj.status else { return false };
    let Some(done) = &st.completion_time else {
        return false;
    };
    let retention = jiff::SignedDuration::try_from(retention).unwrap_or(jiff::SignedDuration::MAX);
    let due = done.0.checked_add(retention).is_ok_and(|t| t <= now);
    st.execution_ref.is_some() && due && !released(obj) && audit_complete(obj)
}

impl Dispatcher {
    /// Sends the releases that are due.
    pub(super) fn release_pass(&self) {
        let now = Timestamp::now();
        let retention = self.ctx.config.primitive_retention;
        let Ok(cutoff) = jiff::SignedDuration::try_from(retention)
            .map_err(|_| ())
            .and_then(|r| now.checked_sub(r).map_err(|_| ()))
        else {
            return; // a retention longer than the calendar: never released
        };
        for obj in self.ctx.index.unreleased_until(cutoff) {
            if releasable(&obj, retention, now) {
                self.release(&obj);
            }
        }
    }

    fn release(&self, obj: &WorkflowExecution) {
        let key = ExecKey::of(obj);
        let Some(session) = self.release_target(obj) else {
            return; // no agent here: another replica's, or the next one to connect, does it
        };
        let token = obj
            .status
            .as_ref()
            .and_then(|s| s.assignment.as_ref())
            .map_or(0, |a| a.fencing_token);
        let id = format!("{PREFIX}{}", assignment_id(&key, token));
        if !self.due(&id) {
            return;
        }
        let Some(msg) = release_message(obj, &key, id.clone(), token) else {
            return;
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

    /// The agent that ran it when connected here; when it is connected to another replica,
    /// none (that replica releases); otherwise any agent of its engine and cluster here.
    fn release_target(&self, obj: &WorkflowExecution) -> Option<Arc<AgentSession>> {
        let engine = Engine::parse(&obj.spec.execution_engine).ok()?;
        let cluster = &obj.spec.cluster_id;
        let assigned = obj.status.as_ref()?.assignment.as_ref();
        if let Some(a) = assigned {
            if let Some(s) = self.ctx.agents.by_agent(&a.agent_id) {
                return Some(s);
            }
            if self.ctx.liveness.alive_elsewhere(&a.agent_id) {
                return None;
            }
        }
        self.ctx
            .agents
            .all()
            .into_iter()
            .filter(|s| s.engine == engine && s.cluster_id == *cluster)
            .min_by(|a, b| a.agent_id.cmp(&b.agent_id))
    }

    /// An agent acknowledged a release: record PrimitiveReleased (once).
    pub(super) async fn on_release_ack(&self, session: &AgentSession, id: &str) {
        let Some((key, _token)) = parse_assignment_id(id) else {
            return;
        };
        let agent_id = session.agent_id.clone();
        let res = update_status(&self.ctx, &key, |obj, st, now| {
            if released(obj) {
                return Edit::Skip;
            }
            let what = st
                .execution_ref
                .as_ref()
                .map(|r| format!("{} {}/{}", r.kind, r.namespace, r.name))
                .unwrap_or_default();
            let update = ConditionUpdate {
                type_: PRIMITIVE_RELEASED,
                status: ConditionStatus::True,
                reason: "Released",
                message: format!("primitive {what} released by agent {agent_id}"),
            };
            transitions::set_condition(obj, st, update, now);
            Edit::Write
        })
        .await;
        if let Err(e) = res {
            tracing::warn!(execution = %key, error = %e, "recording the release failed");
        }
    }
}

fn release_message(
    obj: &WorkflowExecution,
    key: &ExecKey,
    command_id: String,
    token: u64,
) -> Option<agent::Release> {
    let r = obj.status.as_ref()?.execution_ref.as_ref()?;
    Some(agent::Release {
        command_id,
        execution: Some(agent::ExecutionKey {
            name: key.name.clone(),
            namespace: key.namespace.clone(),
            uid: obj.uid().unwrap_or_default(),
        }),
        fencing_token: token,
        primitive: Some(v1::PrimitiveReference {
            cluster_id: r.cluster_id.clone(),
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }),
    })
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
            phase: Some("Completed".into()),
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
    fn released_only_after_audit_and_retention_and_once() {
        let retention = std::time::Duration::from_secs(600);
        let before = Timestamp::from_second(1_599).unwrap();
        let after = Timestamp::from_second(1_600).unwrap();
        assert!(
            !releasable(&terminal(false), retention, after),
            "audit first"
        );
        assert!(!releasable(&terminal(true), retention, before), "retention");
        let mut w = terminal(true);
        assert!(releasable(&w, retention, after));
        let st = w.status.as_mut().unwrap();
        st.conditions.push(Condition {
            type_: PRIMITIVE_RELEASED.into(),
            status: "True".into(),
            reason: "Released".into(),
            message: String::new(),
            last_transition_time: Time(after),
            observed_generation: None,
        });
        assert!(!releasable(&w, retention, after), "not twice");
    }
}
