//! Agent status reports → execution status, with the fencing and binding rules of the
//! agent protocol.

use jiff::Timestamp;
use kube::ResourceExt;
use wfe_core::{Engine, FailureDetails, FailureReason, Phase};
use wfe_k8s::WorkflowExecution;
use wfe_k8s::workflow_execution as k8s;
use wfe_proto::agent::{PrimitivePhase, StatusReport};
use wfe_proto::v1;

use super::{Edit, transitions};
use crate::convert::from_ts;
use crate::ctx::Ctx;
use crate::store::{ExecKey, phase_of};

/// Who sent a report: the session it came on.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// Agent replica id.
    pub agent_id: String,
    /// The session (one per stream, named by the API).
    pub session_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// Its engine.
    pub engine: Engine,
}

/// Why a report was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The execution does not exist (or was recreated with another UID).
    Unknown,
    /// The execution belongs to another cluster or engine.
    NotYours,
    /// The execution is assigned to another agent, or to none.
    NotAssignee,
    /// The execution is assigned to this agent, but on another of its sessions: it
    /// reconnected, and the dispatcher assigns the execution anew to this session.
    OtherSession,
    /// The report's fencing token is older than the current assignment's.
    Stale,
    /// The report's fencing token is newer than the current assignment's: no assignment
    /// ever carried it.
    FutureToken,
}

impl Refused {
    /// The `reason` label of the refusal counter.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unknown => "unknown_execution",
            Self::NotYours => "other_cluster_or_engine",
            Self::NotAssignee => "not_assignee",
            Self::OtherSession => "other_session",
            Self::Stale => "stale_token",
            Self::FutureToken => "future_token",
        }
    }
}

/// Checks a report against the stored execution: it must come from the execution's
/// cluster and engine, and (unless the execution is terminal: then it is ignored) from
/// the very session the execution is assigned to, under exactly the assignment's fencing
/// token. Work moves to another session only through a new assignment (the dispatcher's),
/// never through a report.
pub fn check(obj: &WorkflowExecution, who: &Reporter, r: &StatusReport) -> Result<(), Refused> {
    let key = r.execution.as_ref().ok_or(Refused::Unknown)?;
    if !key.uid.is_empty() && obj.uid().as_deref() != Some(key.uid.as_str()) {
        return Err(Refused::Unknown);
    }
    let engine = Engine::parse(&obj.spec.execution_engine).ok();
    if obj.spec.cluster_id != who.cluster_id || engine != Some(who.engine) {
        return Err(Refused::NotYours);
    }
    if phase_of(obj).is_terminal() {
        return Ok(()); // ignored by the caller: a terminal execution takes no report
    }
    let assignment = obj.status.as_ref().and_then(|s| s.assignment.as_ref());
    let Some(a) = assignment.filter(|a| a.agent_id == who.agent_id) else {
        return Err(Refused::NotAssignee);
    };
    if a.session_id != who.session_id {
        return Err(Refused::OtherSession);
    }
    match r.fencing_token.cmp(&a.fencing_token) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(Refused::Stale),
        std::cmp::Ordering::Greater => Err(Refused::FutureToken),
    }
}

/// What a refusal log names of the report.
struct About {
    execution: String,
    fencing_token: u64,
    phase: PrimitivePhase,
}

impl About {
    fn of(r: &StatusReport) -> Self {
        Self {
            execution: r
                .execution
                .as_ref()
                .map(|k| format!("{}/{}", k.namespace, k.name))
                .unwrap_or_default(),
            fencing_token: r.fencing_token,
            phase: PrimitivePhase::try_from(r.phase).unwrap_or(PrimitivePhase::Unspecified),
        }
    }
}

/// Counts and logs a refused report with the reporter's identity. A report from another
/// session of the assigned agent is expected after every reconnect (until the dispatcher
/// assigns the execution to the new session), so it is logged at info only.
fn log_refusal(ctx: &Ctx, who: &Reporter, about: &About, refused: Refused) {
    let reason = refused.reason();
    ctx.metrics
        .status_reports_refused
        .get_or_create(&crate::metrics::Reason {
            reason: reason.to_owned(),
        })
        .inc();
    macro_rules! log {
        ($level:ident, $msg:literal) => {
            tracing::$level!(
                execution = %about.execution,
                agent = %who.agent_id,
                session = %who.session_id,
                cluster = %who.cluster_id,
                engine = %who.engine,
                fencing_token = about.fencing_token,
                phase = about.phase.as_str_name(),
                reason,
                $msg
            )
        };
    }
    if refused == Refused::OtherSession {
        log!(
            info,
            "status report refused: not this session's assignment (yet)"
        );
    } else {
        log!(warn, "status report refused");
    }
}

/// Applies one report (or inventory entry); a refusal is counted and logged. Terminal
/// executions ignore reports.
pub async fn apply(ctx: &Ctx, who: &Reporter, r: StatusReport) -> Result<(), Refused> {
    let about = About::of(&r);
    let res = apply_checked(ctx, who, r).await;
    if let Err(refused) = res {
        log_refusal(ctx, who, &about, refused);
    }
    res
}

async fn apply_checked(ctx: &Ctx, who: &Reporter, r: StatusReport) -> Result<(), Refused> {
    let Some(k) = r.execution.as_ref() else {
        return Err(Refused::Unknown);
    };
    let key = ExecKey {
        namespace: k.namespace.clone(),
        name: k.name.clone(),
    };
    let obj = ctx.index.get(&key).ok_or(Refused::Unknown)?;
    check(&obj, who, &r)?;
    if phase_of(&obj).is_terminal() {
        return Ok(());
    }
    let window = ctx.config.status_coalesce_window;
    if r.phase == PrimitivePhase::Pending as i32 && !window.is_zero() {
        // No phase change: it waits for the next write (usually Running), see
        // `super::deferred`.
        let who = who.clone();
        let edit = move |obj: &WorkflowExecution, status: &mut _, now| {
            check(obj, &who, &r).is_ok()
                && !phase_of(obj).is_terminal()
                && matches!(edit(obj, status, &r, now), Edit::Write)
        };
        ctx.writer.defer(&key, std::sync::Arc::new(edit), window);
        return Ok(());
    }
    let mut refused = None;
    let res = ctx
        .writer
        .update(&key, |obj, status, now| {
            if let Err(e) = check(obj, who, &r) {
                refused = Some(e);
                return Edit::Skip;
            }
            if phase_of(obj).is_terminal() {
                return Edit::Skip;
            }
            edit(obj, status, &r, now)
        })
        .await;
    if let Err(e) = res {
        tracing::warn!(execution = %key, error = %e, "applying a status report failed");
    }
    refused.map_or(Ok(()), Err)
}

fn primitive(r: &StatusReport) -> Option<k8s::ExecutionRef> {
    r.primitive
        .as_ref()
        .filter(|p| !p.name.is_empty())
        .map(|p| k8s::ExecutionRef {
            cluster_id: p.cluster_id.clone(),
            api_version: p.api_version.clone(),
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        })
}

/// A report under the current fencing token means the agent holds the assignment: it is
/// acknowledged (the Ack itself is not written, see `Dispatcher::on_ack`), and an
/// AgentLost condition left by a reassignment gives way to Assigned.
fn acknowledge(
    obj: &WorkflowExecution,
    status: &mut wfe_k8s::WorkflowExecutionStatus,
    r: &StatusReport,
    now: Timestamp,
) {
    let Some(a) = status.assignment.as_mut() else {
        return;
    };
    if a.acknowledged || a.fencing_token != r.fencing_token {
        return;
    }
    a.acknowledged = true;
    let msg = format!("assigned to agent {}", a.agent_id);
    let update =
        wfe_core::conditions::dispatched(wfe_core::conditions::DispatchState::Assigned, &msg);
    transitions::set_condition(obj, status, update, now);
}

fn summary(status: &mut wfe_k8s::WorkflowExecutionStatus, r: &StatusReport) {
    if let Some(p) = &r.progress {
        status.summary = Some(k8s::ExecutionSummary {
            completed_tasks: p.completed_tasks,
            total_tasks: p.total_tasks,
            retry_count: p.retry_count,
        });
    }
}

fn edit(
    obj: &WorkflowExecution,
    status: &mut wfe_k8s::WorkflowExecutionStatus,
    r: &StatusReport,
    now: Timestamp,
) -> Edit {
    let before = status.clone();
    let phase = phase_of(obj);
    acknowledge(obj, status, r, now);
    summary(status, r);
    let started = r.started_at.as_ref().and_then(from_ts);
    let completed = r.completed_at.as_ref().and_then(from_ts);
    let detail = if r.reason.is_empty() {
        "Running"
    } else {
        r.reason.as_str()
    };
    match PrimitivePhase::try_from(r.phase).unwrap_or(PrimitivePhase::Unspecified) {
        PrimitivePhase::Unspecified => return Edit::Skip,
        PrimitivePhase::Pending => {
            transitions::set_primitive(obj, status, primitive(r), now);
            transitions::note_waiting(status, &r.reason, &r.message);
        }
        PrimitivePhase::Running => {
            transitions::mark_running(obj, status, primitive(r), started, detail, now)
        }
        PrimitivePhase::Succeeded => {
            transitions::set_primitive(obj, status, primitive(r), now);
            if status.start_time.is_none() {
                status.start_time =
                    started.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            }
            transitions::mark_completed(obj, status, completed, now);
        }
        PrimitivePhase::Failed => {
            transitions::set_primitive(obj, status, primitive(r), now);
            if status.start_time.is_none() {
                status.start_time =
                    started.map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time);
            }
            let details = failure_of(
                r,
                status.start_time.is_some() || phase == Phase::Running,
                completed.unwrap_or(now),
            );
            let details = as_cancelled_if_requested(status, details);
            transitions::mark_failed(obj, status, details, now);
        }
        PrimitivePhase::Missing => {
            let had_primitive = status.execution_ref.is_some();
            if phase == Phase::Pending && !had_primitive {
                return Edit::Skip;
            }
            let msg = "the primitive was deleted externally";
            let details =
                FailureDetails::new(FailureReason::Unknown, msg, phase == Phase::Running, now);
            let details = as_cancelled_if_requested(status, details);
            transitions::mark_failed(obj, status, details, now);
        }
    }
    if *status == before {
        Edit::Skip
    } else {
        Edit::Write
    }
}

/// After a cancel request, whatever end the agent reports (the Job it deleted
/// seen as missing, a run that failed while stopping) is the cancellation: the
/// cancel and the deletion race, and the person who cancelled must see
/// Cancelled, not "deleted externally".
fn as_cancelled_if_requested(
    status: &wfe_k8s::WorkflowExecutionStatus,
    details: FailureDetails,
) -> FailureDetails {
    let Some(cancel) = &status.cancel_request else {
        return details;
    };
    if details.reason == FailureReason::Cancelled {
        return details;
    }
    let mut message = format!("cancelled by {}", cancel.requested_by);
    if !cancel.reason.is_empty() {
        message.push_str(&format!(": {}", cancel.reason));
    }
    FailureDetails {
        reason: FailureReason::Cancelled,
        message,
        ..details
    }
}

fn failure_of(r: &StatusReport, started: bool, at: Timestamp) -> FailureDetails {
    let Some(f) = &r.failure else {
        let msg = if r.message.is_empty() {
            "the workflow failed"
        } else {
            r.message.as_str()
        };
        return FailureDetails::new(FailureReason::Unknown, msg, started, at);
    };
    let reason = FailureReason::from(
        v1::FailureReason::try_from(f.reason).unwrap_or(v1::FailureReason::Unknown),
    );
    let mut d = FailureDetails::new(
        reason,
        f.message.clone(),
        started || f.was_execution_failure,
        at,
    );
    d.failed_task_index = Some(f.failed_task_index);
    d.failed_task_name = Some(f.failed_task_name.clone()).filter(|s| !s.is_empty());
    d.failed_step_name = Some(f.failed_step_name.clone()).filter(|s| !s.is_empty());
    d.exit_code = f.exit_code;
    if let Some(t) = f.failed_at.as_ref().and_then(from_ts) {
        d.failed_at = t;
    }
    d
}

#[cfg(test)]
mod tests;
