//! The load: N executions over M targets through ExecuteWorkflow, at most C in
//! flight. Executions on one target run one after the other (the next is sent once
//! the Watch client saw the previous one terminal), so admission never skips them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wfe_proto::v1::{Disposition, Phase};

use crate::grpc::{self, Client};
use crate::watch::Recorder;

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Distinguishes this batch's workflow ids and targets from any other.
    pub run: String,
    /// Executions (N).
    pub executions: usize,
    /// Targets (M).
    pub targets: usize,
    /// Executions in flight at most (C).
    pub concurrency: usize,
    /// How long an execution may take to be seen terminal.
    pub timeout: Duration,
    /// Open loop: execution `i` is due `i × interval` after the start (None: closed loop).
    pub interval: Option<Duration>,
}

/// One accepted execution.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Resource name.
    pub name: String,
    /// When ExecuteWorkflow was sent.
    pub sent: Instant,
    /// Open loop: how late the send was against its schedule (the previous execution on
    /// its target or the in-flight limit held it back).
    pub late: Option<Duration>,
    /// When its response arrived: the execution is persisted ("accepted").
    pub accepted: Instant,
    /// Created, already existed or skipped.
    pub disposition: Disposition,
    /// The terminal phase the Watch client saw; None if it timed out.
    pub phase: Option<Phase>,
}

/// Every outcome and every failed call of a batch.
#[derive(Debug, Default)]
pub struct Driven {
    /// Accepted executions.
    pub outcomes: Vec<Outcome>,
    /// ExecuteWorkflow calls that failed, with the status.
    pub errors: Vec<String>,
}

/// Sends the batch and waits until every execution was seen terminal (or timed out).
pub async fn drive(client: &Client, rec: &Recorder, plan: &Plan) -> Driven {
    let sem = Arc::new(Semaphore::new(plan.concurrency));
    let start = Instant::now();
    let tasks: Vec<_> = (0..plan.targets.min(plan.executions))
        .map(|t| {
            let (client, rec, sem, plan) = (client.clone(), rec.clone(), sem.clone(), plan.clone());
            tokio::spawn(async move { target_loop(client, rec, sem, plan, t, start).await })
        })
        .collect();
    let mut driven = Driven::default();
    for t in futures::future::join_all(tasks).await {
        match t {
            Ok(results) => results.into_iter().for_each(|r| match r {
                Ok(o) => driven.outcomes.push(o),
                Err(e) => driven.errors.push(e),
            }),
            Err(e) => driven.errors.push(format!("a target task failed: {e}")),
        }
    }
    driven
}

/// Executions `t, t + M, t + 2M, …` on target `t`, one after the other.
async fn target_loop(
    client: Client,
    rec: Recorder,
    sem: Arc<Semaphore>,
    plan: Plan,
    t: usize,
    start: Instant,
) -> Vec<Result<Outcome, String>> {
    let target = grpc::target(&plan.run, t);
    let mut out = Vec::new();
    for seq in (t..plan.executions).step_by(plan.targets) {
        let due = plan.interval.map(|i| start + i * seq as u32);
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(_permit) = sem.acquire().await else {
            break;
        };
        let late = due.map(|due| Instant::now().saturating_duration_since(due));
        out.push(one(client.clone(), &rec, &plan, seq, &target, late).await);
    }
    out
}

/// Sends one ExecuteWorkflow and waits until the Watch client saw it terminal.
async fn one(
    mut client: Client,
    rec: &Recorder,
    plan: &Plan,
    seq: usize,
    target: &str,
    late: Option<Duration>,
) -> Result<Outcome, String> {
    let req = grpc::request(&plan.run, seq, target);
    let sent = Instant::now();
    let resp = client
        .execute_workflow(req)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let accepted = Instant::now();
    let disposition = resp.disposition();
    let name = resp.execution.map(|e| e.name).unwrap_or_default();
    let phase = match disposition {
        Disposition::Created => rec.wait_terminal(&name, plan.timeout).await,
        _ => None,
    };
    Ok(Outcome {
        name,
        sent,
        late,
        accepted,
        disposition,
        phase,
    })
}
