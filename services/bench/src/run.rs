//! The latency/throughput mode: start the stack, warm up, drive N executions, report.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::oneshot;

use crate::cli::Args;
use crate::drive::{self, Plan};
use crate::proc_stats::{self, ProcStats};
use crate::report::{self, Measured};
use crate::stack::{CALLER_TOKEN, Stack};
use crate::watch::Recorder;
use crate::writes::WriteCounter;

/// A started stack with its clients and recorders.
pub struct Running {
    /// The processes.
    pub stack: Stack,
    /// Client for ExecuteWorkflow.
    pub client: crate::grpc::Client,
    /// What the Watch client saw.
    pub recorder: Recorder,
    /// Writes seen on the sandbox (None with `--no-write-count`).
    pub writes: Option<WriteCounter>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the Watch client and the write counter.
    pub fn stop_watchers(&mut self) {
        self.tasks.drain(..).for_each(|t| t.abort());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Starts sandbox, API and job-agent, the Watch client and the write counter.
pub async fn start(args: &Args) -> anyhow::Result<Running> {
    let wfe = crate::binary::wfe(args.wfe.as_ref())?;
    let mut stack = Stack::new(
        wfe,
        &args.component_log,
        args.keep,
        args.backend,
        args.etcd_fsync,
    )?;
    stack.start_sandbox().await?;
    stack
        .start_api(args.whole_life.map(Duration::from_secs))
        .await?;
    stack.start_agent(args.agent_capacity).await?;
    let client = crate::grpc::connect(stack.grpc, CALLER_TOKEN).await?;
    let recorder = Recorder::default();
    let watch_client = crate::grpc::connect(stack.grpc, CALLER_TOKEN).await?;
    let (tx, rx) = oneshot::channel();
    let mut tasks = vec![tokio::spawn(recorder.clone().follow(watch_client, tx))];
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .context("the Watch did not sync within 30 s")??;
    let writes = if args.no_write_count {
        None
    } else {
        let counter = WriteCounter::default();
        tasks.extend(counter.spawn(&crate::writes::client(&stack.kubeconfig()).await?));
        Some(counter)
    };
    Ok(Running {
        stack,
        client,
        recorder,
        writes,
        tasks,
    })
}

/// Runs the benchmark and prints the report.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    let r = start(args).await?;
    let timeout = Duration::from_secs(args.timeout_seconds);
    if args.warmup > 0 {
        let warm = plan(
            "w",
            args.warmup,
            args.targets.min(args.warmup),
            args,
            timeout,
        );
        let d = drive::drive(&r.client, &r.recorder, &warm).await;
        eprintln!(
            "warm-up: {} executions, {} errors",
            d.outcomes.len(),
            d.errors.len()
        );
        settle(&r).await;
        if args.whole_life.is_some() {
            wait_jobs_deleted(&r, None, args.warmup as u64, args).await;
        }
    }
    let before_procs = proc_snapshot(&r.stack);
    let before_writes = r.writes.as_ref().map(WriteCounter::snapshot);
    let before_changes = r.writes.as_ref().map(WriteCounter::changes);
    let before_hist = crate::metrics::dispatch_latency(r.stack.api_admin).await?;
    let measured = plan("m", args.executions, args.targets, args, timeout);
    let t0 = Instant::now();
    let driven = drive::drive(&r.client, &r.recorder, &measured).await;
    let wall = t0.elapsed();
    let hist = crate::metrics::dispatch_latency(r.stack.api_admin)
        .await?
        .since(&before_hist);
    settle(&r).await;
    let writes = match (&r.writes, &before_writes) {
        (Some(w), Some(b)) => Some(crate::writes::diff(b, &w.snapshot())),
        _ => None,
    };
    let changes = match (&r.writes, before_changes) {
        (Some(w), Some(b)) => Some(
            w.changes()
                .into_iter()
                .map(|(k, v)| {
                    let before = b.get(&k).copied().unwrap_or(0);
                    (k, v - before)
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
        ),
        _ => None,
    };
    let whole_life = match (args.whole_life, &r.writes, &before_writes) {
        (Some(_), Some(w), Some(b)) => {
            let jobs = driven.outcomes.len() as u64;
            wait_jobs_deleted(&r, Some(b), jobs, args).await;
            settle(&r).await;
            Some(crate::writes::diff(b, &w.snapshot()))
        }
        _ => None,
    };
    let m = Measured {
        changes,
        whole_life,
        driven,
        wall,
        procs: proc_delta(&before_procs, &proc_snapshot(&r.stack)),
        writes,
        dispatch_hist: hist,
    };
    report::print(args, &r, &m);
    Ok(())
}

fn plan(run: &str, n: usize, m: usize, args: &Args, timeout: Duration) -> Plan {
    let unique = std::process::id();
    Plan {
        run: format!("{run}{unique}"),
        executions: n,
        targets: m,
        concurrency: args.concurrency,
        timeout,
        interval: args
            .rate
            .map(|per_minute| Duration::from_secs_f64(60.0 / per_minute)),
    }
}

/// Waits until `jobs` Jobs were deleted since `since` (since the start without it): their
/// executions' retention (`--whole-life`) passed and the agent released them. Gives up
/// after the retention plus two minutes; the report then shows the shortfall.
async fn wait_jobs_deleted(
    r: &Running,
    since: Option<&crate::writes::Counts>,
    jobs: u64,
    args: &Args,
) {
    let Some(w) = &r.writes else { return };
    let retention = Duration::from_secs(args.whole_life.unwrap_or(0));
    let deadline = Instant::now() + retention + Duration::from_secs(120);
    let deleted = || {
        let now = w.snapshot();
        let d = |c: &crate::writes::Counts| c.get(&("Job", "DELETED")).copied().unwrap_or(0);
        d(&now) - since.map_or(0, d)
    };
    eprintln!("waiting for {jobs} Jobs to be released (retention {retention:?})");
    while deleted() < jobs && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the sandbox shows no new writes for a second (trailing writes such as
/// lease deletions and audit conditions land after the terminal phase), at most 30 s.
async fn settle(r: &Running) {
    let Some(w) = &r.writes else {
        tokio::time::sleep(Duration::from_secs(2)).await;
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = w.snapshot();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = w.snapshot();
        if now == last {
            return;
        }
        last = now;
    }
}

/// `(name, stats)` of every component and of this harness.
pub fn proc_snapshot(stack: &Stack) -> Vec<(&'static str, ProcStats)> {
    let mut v: Vec<_> = stack
        .pids()
        .into_iter()
        .filter_map(|(name, pid)| Some((name, proc_stats::read(&pid.to_string())?)))
        .collect();
    v.extend(proc_stats::read("self").map(|s| ("wfe-bench", s)));
    v
}

/// The `after` stats with the CPU time replaced by the CPU used since `before`.
fn proc_delta(
    before: &[(&'static str, ProcStats)],
    after: &[(&'static str, ProcStats)],
) -> Vec<(&'static str, ProcStats)> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, b)| b.cpu_secs);
            (
                *name,
                ProcStats {
                    cpu_secs: a.cpu_secs - b,
                    ..*a
                },
            )
        })
        .collect()
}
