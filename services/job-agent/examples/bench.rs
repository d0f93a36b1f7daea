//! job-agent benchmark: prints figures, asserts nothing.
//!
//! `cargo run --release -p wfe-job-agent --example bench [-- <executions>]`
//!
//! ```text
//!  this process: sandbox (API server + Job controller + kubelet) + workflow-api
//!                + watches on WorkflowExecutions and Jobs (timestamps on arrival)
//!        ▲ gRPC session                       ▲ kube API
//!  child process (this binary, `agent` mode): the job-agent alone → its VmRSS
//! ```
//!
//! Figures: agent RSS idle and with N running executions (default 100); assignment
//! persisted → Job created; Job condition change → execution status persisted. Both
//! latencies are the difference between two watch events received by this process, so
//! the watch delivery delay cancels out; the second one includes workflow-api's status
//! write, so it is an upper bound of "condition change → status report sent".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tonic::transport::Channel;
use wfe_k8s::workflow_execution::WorkflowExecution;
use wfe_proto::v1;
use wfe_proto::v1::workflow_execution_service_client::WorkflowExecutionServiceClient;

const NS: &str = "default";
const EXEC_NS: &str = "kubernaut-workflows";
const UID_LABEL: &str = "kubernaut.ai/workflow-execution-uid";
/// How long each workload runs: long enough to hold N executions Running at once.
const RUN_SECONDS: u64 = 40;

/// When this process first saw each milestone of an execution (by execution uid).
#[derive(Default)]
struct Times {
    assigned: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
    completed: HashMap<String, Instant>,
    job_created: HashMap<String, Instant>,
    job_complete: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<Times>>;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("agent") {
        return agent_main(&args[2..]);
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    tokio::runtime::Runtime::new()?.block_on(bench(n))
}

/// Child mode: the job-agent as its binary runs it (multi-thread runtime, JobExecutor,
/// `wfe_agent::run_with`), against the sandbox URL and API address given.
fn agent_main(args: &[String]) -> anyhow::Result<()> {
    let [sandbox, api, token] = args else {
        anyhow::bail!("usage: bench agent <sandbox-url> <api-addr> <token-file>")
    };
    tokio::runtime::Runtime::new()?.block_on(async {
        wfe_agent::init_tracing();
        let client = kube::Client::try_from(kube::Config::new(sandbox.parse()?))?;
        let exec = wfe_job_agent::JobExecutor::new(
            client,
            wfe_job_agent::JobExecutorConfig {
                namespace: EXEC_NS.into(),
                cluster_id: String::new(),
                policy: wfe_job_agent::status::Policy::default(),
            },
        );
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("admin {}", admin.local_addr()?);
        let cfg = wfe_agent::AgentConfig {
            dial: wfe_agent::session::Dial {
                url: format!("http://{api}"),
                token_file: Some(token.into()),
                tls_ca: None,
            },
            agent_id: "bench-agent".into(),
            cluster_id: String::new(),
            capacity: 500,
            version: "bench".into(),
            drain_timeout: Duration::from_secs(5),
            backoff: wfe_agent::backoff::Backoff::default(),
        };
        let stop = wfe_process::shutdown::on_signals();
        wfe_agent::run_with(cfg, Arc::new(exec), admin, stop).await
    })
}

async fn bench(n: usize) -> anyhow::Result<()> {
    let crd = serde_json::to_value(wfe_k8s::crd::workflow_execution_crd())?;
    let sandbox = wfe_sandbox::Sandbox::start(wfe_sandbox::SandboxConfig {
        crds: vec![crd],
        tekton_controller: false,
        ..Default::default()
    })
    .await?;
    let client = sandbox.kube_client()?;
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": EXEC_NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("callers"), "caller alice\n")?;
    std::fs::write(dir.path().join("agents"), "agent-token - job\n")?;
    std::fs::write(dir.path().join("agent-token"), "agent-token")?;
    let mut config = wfe_api::Config::local(NS, dir.path().join("audit.jsonl"));
    config.caller_tokens_file = Some(dir.path().join("callers"));
    config.agent_tokens_file = Some(dir.path().join("agents"));
    config.execution_namespace = EXEC_NS.into();
    let api = wfe_api::start(config, client.clone()).await?;
    api.wait_ready().await;

    let times = Shared::default();
    tokio::spawn(watch_executions(client.clone(), times.clone()));
    tokio::spawn(watch_jobs(client.clone(), times.clone()));

    let token = dir.path().join("agent-token");
    let (mut child, admin) = spawn_agent(&sandbox.url(), api.grpc_addr, &token.to_string_lossy())?;
    wait_ready(admin).await?;
    // Let start-up allocations settle before the idle figure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib(child.id())?;

    let mut caller = caller(api.grpc_addr).await?;
    let started = Instant::now();
    for i in 0..n {
        execute(&mut caller, i).await?;
    }
    let submit = started.elapsed();
    wait_for(&times, n, |t| t.running.len(), "running").await?;
    let all_running = started.elapsed();
    let busy = sample_rss(child.id()).await?;
    wait_for(&times, n, |t| t.completed.len(), "completed").await?;
    let peak = hwm_kib(child.id())?;
    let _ = child.kill();
    let _ = child.wait();
    report(
        n,
        idle,
        busy,
        peak,
        submit,
        all_running,
        &times.lock().unwrap(),
    );
    api.abort();
    Ok(())
}

/// Starts this binary in agent mode; returns it and its admin address.
fn spawn_agent(sandbox: &str, api: SocketAddr, token: &str) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["agent", sandbox, &api.to_string(), token])
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("admin ")
        .ok_or_else(|| anyhow::anyhow!("unexpected agent output {line:?}"))?
        .parse()?;
    Ok((child, addr))
}

/// Polls the agent's `/readyz` (connected and synced) with a deadline.
async fn wait_ready(admin: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://{admin}/readyz");
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "agent never became ready");
    }
}

async fn wait_for(
    times: &Shared,
    n: usize,
    count: impl Fn(&Times) -> usize,
    what: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(RUN_SECONDS + 120);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let have = count(&times.lock().unwrap());
        if have >= n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "only {have}/{n} {what}");
    }
}

fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or_else(|| anyhow::anyhow!("{key} missing"))?;
    let kib = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(kib)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn hwm_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// The largest VmRSS over 3 s while every execution runs.
async fn sample_rss(pid: u32) -> anyhow::Result<u64> {
    let mut max = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    for _ in 0..12 {
        tick.tick().await;
        max = max.max(rss_kib(pid)?);
    }
    Ok(max)
}

type Caller = WorkflowExecutionServiceClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

fn bearer(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let v = "Bearer caller"
        .parse()
        .map_err(|_| tonic::Status::internal("header"))?;
    req.metadata_mut().insert("authorization", v);
    Ok(req)
}

async fn caller(addr: SocketAddr) -> anyhow::Result<Caller> {
    let ch = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let f: fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> = bearer;
    Ok(WorkflowExecutionServiceClient::with_interceptor(ch, f))
}

/// One execution on its own target (no target lock or cooldown between them).
async fn execute(c: &mut Caller, i: usize) -> anyhow::Result<()> {
    let spec = v1::ExecutionSpec {
        remediation_request_ref: Some(v1::RemediationRequestReference {
            name: format!("rr-{i}"),
            namespace: "kubernaut".into(),
            uid: String::new(),
        }),
        workflow_ref: Some(v1::WorkflowReference {
            workflow_id: "wf-bench".into(),
            workflow_name: "restart-pod".into(),
            action_type: "RestartPod".into(),
            version: "1.0.0".into(),
            container_image: format!("quay.io/kubernaut/restart@sha256:{}", "a".repeat(64)),
        }),
        execution_engine: "job".into(),
        target_resource: format!("default/Deployment/app-{i}"),
        parameters: [
            ("SANDBOX_OUTCOME".to_owned(), "succeed".to_owned()),
            ("SANDBOX_DURATION".to_owned(), format!("{RUN_SECONDS}s")),
        ]
        .into(),
        ..Default::default()
    };
    let req = v1::ExecuteWorkflowRequest {
        namespace: String::new(),
        idempotency_key: format!("bench-{i}"),
        spec: Some(spec),
    };
    c.execute_workflow(req).await?;
    Ok(())
}

fn first(map: &mut HashMap<String, Instant>, key: String) {
    map.entry(key).or_insert_with(Instant::now);
}

async fn watch_executions(client: kube::Client, times: Shared) {
    let api = Api::<WorkflowExecution>::namespaced(client, NS);
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = events.next().await {
        let Ok(watcher::Event::Apply(we) | watcher::Event::InitApply(we)) = ev else {
            continue;
        };
        let (Some(uid), Some(status)) = (we.uid(), we.status.as_ref()) else {
            continue;
        };
        let mut t = times.lock().unwrap();
        if status.assignment.is_some() {
            first(&mut t.assigned, uid.clone());
        }
        match status.phase {
            Some(wfe_core::Phase::Running) => first(&mut t.running, uid),
            Some(wfe_core::Phase::Completed | wfe_core::Phase::Failed) => {
                first(&mut t.completed, uid)
            }
            _ => {}
        }
    }
}

async fn watch_jobs(client: kube::Client, times: Shared) {
    let api = Api::<Job>::namespaced(client, EXEC_NS);
    let mut events = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = events.next().await {
        let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = ev else {
            continue;
        };
        let Some(uid) = job.labels().get(UID_LABEL).cloned() else {
            continue;
        };
        let complete = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        let mut t = times.lock().unwrap();
        first(&mut t.job_created, uid.clone());
        if complete {
            first(&mut t.job_complete, uid);
        }
    }
}

/// Milliseconds from `from[uid]` to `to[uid]` for every uid in both, sorted.
fn deltas(from: &HashMap<String, Instant>, to: &HashMap<String, Instant>) -> Vec<f64> {
    let mut v: Vec<f64> = from
        .iter()
        .filter_map(|(k, a)| {
            to.get(k)
                .map(|b| b.saturating_duration_since(*a).as_secs_f64() * 1e3)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    format!("{cpus} CPUs (nproc), {model}")
}

fn report(
    n: usize,
    idle: u64,
    busy: u64,
    peak: u64,
    submit: Duration,
    all_running: Duration,
    t: &Times,
) {
    let mib = |k: u64| k as f64 / 1024.0;
    let assign = deltas(&t.assigned, &t.job_created);
    let cond = deltas(&t.job_complete, &t.completed);
    println!("machine: {}", machine());
    println!(
        "executions: {n} (each runs {RUN_SECONDS}s), submitted in {:.2}s, all Running after {:.2}s",
        submit.as_secs_f64(),
        all_running.as_secs_f64()
    );
    println!(
        "agent RSS idle:            {:.1} MiB (goal < 20 MiB)",
        mib(idle)
    );
    println!(
        "agent RSS {n} running:     {:.1} MiB (goal < 40 MiB); peak VmHWM {:.1} MiB",
        mib(busy),
        mib(peak)
    );
    println!(
        "assignment persisted -> Job created:               p50 {:.1} ms  p99 {:.1} ms  (n={})",
        pct(&assign, 50.0),
        pct(&assign, 99.0),
        assign.len()
    );
    println!(
        "Job Complete condition -> execution status written: p50 {:.1} ms  p99 {:.1} ms  (n={})",
        pct(&cond, 50.0),
        pct(&cond, 99.0),
        cond.len()
    );
}
