//! The `--stored N` mode: RSS of workflow-api with N terminal executions stored.
//!
//! One real execution runs through the whole stack (the seed). The API and the agent
//! then stop, N copies of the Completed seed (each with its own name, target and
//! workflow id) are written straight to the sandbox, and the API starts again and
//! builds its index from them. Its RSS is read once `/readyz` says the index synced,
//! and again after a Watch client received every execution.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::cli::Args;
use crate::drive::{self, Plan};
use crate::proc_stats;
use crate::stack::{API_NAMESPACE, CALLER_TOKEN};

/// Stores `n` terminal executions and reports the API's RSS.
pub async fn run(args: &Args, n: usize) -> anyhow::Result<()> {
    let mut quiet = args.clone();
    quiet.no_write_count = true;
    let mut r = crate::run::start(&quiet).await?;
    let empty = api_rss(&r.stack)?;
    let run = format!("s{}", std::process::id());
    let seed = seed(&r, &run, args).await?;
    r.stop_watchers();
    r.stack.stop("job-agent");
    r.stack.stop("workflow-api");
    let client = crate::writes::client(&r.stack.kubeconfig()).await?;
    let api = executions(client);
    let t = Instant::now();
    store(&api, &seed, &run, n).await?;
    let stored_in = t.elapsed();
    let t = Instant::now();
    r.stack.start_api(None).await?;
    let synced_in = t.elapsed();
    // Work the API starts after its sync (audit resync, lock checks) settles first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let synced = api_rss(&r.stack)?;
    let watched = watch_all(&r.stack).await?;
    let after_watch = api_rss(&r.stack)?;
    crate::report::print_machine();
    println!(
        "\n== wfe-bench --stored {n}: workflow-api RSS with {n} terminal executions stored =="
    );
    println!(
        "seed execution: {} bytes as JSON",
        serde_json::to_vec(&seed)?.len()
    );
    println!(
        "stored {n} copies in the sandbox in {:.1} s; the API started and synced its index in {:.2} s",
        stored_in.as_secs_f64(),
        synced_in.as_secs_f64()
    );
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "  API RSS, empty index (at start):             {:>7.1} MiB",
        mib(empty.rss_kib)
    );
    println!(
        "  API RSS, {n} stored, synced + 3 s:            {:>7.1} MiB   peak during start-up {:.1} MiB",
        mib(synced.rss_kib),
        mib(synced.hwm_kib)
    );
    println!(
        "  API RSS after a Watch received all {watched}:    {:>7.1} MiB   peak {:.1} MiB",
        mib(after_watch.rss_kib),
        mib(after_watch.hwm_kib)
    );
    let verdict = if mib(after_watch.rss_kib.max(synced.rss_kib)) < 100.0 {
        "met"
    } else {
        "MISSED"
    };
    println!("  goal < 100 MiB with 10,000 stored: {verdict}");
    Ok(())
}

fn api_rss(stack: &crate::stack::Stack) -> anyhow::Result<proc_stats::ProcStats> {
    let (_, pid) = stack
        .pids()
        .into_iter()
        .find(|(n, _)| *n == "workflow-api")
        .context("workflow-api is not running")?;
    proc_stats::read(&pid.to_string()).context("reading the API's /proc entry")
}

fn executions(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kubernaut.ai", "v1alpha1", "WorkflowExecution");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "workflowexecutions");
    Api::namespaced_with(client, API_NAMESPACE, &ar)
}

/// Runs one execution through the stack and returns its Completed resource.
async fn seed(r: &crate::run::Running, run: &str, args: &Args) -> anyhow::Result<DynamicObject> {
    let plan = Plan {
        run: run.to_owned(),
        executions: 1,
        targets: 1,
        concurrency: 1,
        timeout: Duration::from_secs(args.timeout_seconds),
        interval: None,
    };
    let d = drive::drive(&r.client, &r.recorder, &plan).await;
    let o = d
        .outcomes
        .first()
        .with_context(|| format!("the seed execution failed: {:?}", d.errors))?;
    anyhow::ensure!(o.phase.is_some(), "the seed execution did not finish");
    // Trailing writes (audit condition, lease release) land just after the terminal phase.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let client = crate::writes::client(&r.stack.kubeconfig()).await?;
    Ok(executions(client).get(&o.name).await?)
}

/// Writes `n` copies of `seed`: create, then the status through `/status`.
async fn store(
    api: &Api<DynamicObject>,
    seed: &DynamicObject,
    run: &str,
    n: usize,
) -> anyhow::Result<()> {
    let seed_json = serde_json::to_string(seed)?;
    let name = seed.metadata.name.clone().unwrap_or_default();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let copy = copy_of(&seed_json, &name, run, i);
            async move { store_one(api, copy?).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} copies failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    Ok(())
}

/// The seed with every mention of its target, workflow and RemediationRequest
/// (`<run>-0`) renamed to copy `i`'s, under a name of its own.
fn copy_of(seed_json: &str, seed_name: &str, run: &str, i: usize) -> anyhow::Result<Value> {
    let text = seed_json.replace(&format!("{run}-0\""), &format!("{run}-c{i}\""));
    let mut v: Value = serde_json::from_str(&text)?;
    let meta = v["metadata"]
        .as_object_mut()
        .context("seed without metadata")?;
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
    ] {
        meta.remove(k);
    }
    meta.insert("name".into(), Value::String(format!("{seed_name}-c{i}")));
    Ok(v)
}

async fn store_one(api: &Api<DynamicObject>, copy: Value) -> anyhow::Result<()> {
    let obj: DynamicObject = serde_json::from_value(copy.clone())?;
    let created = api.create(&PostParams::default(), &obj).await?;
    let name = created.metadata.name.unwrap_or_default();
    let status = serde_json::json!({ "status": copy["status"] });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// Opens a Watch and counts the executions of its initial state.
async fn watch_all(stack: &crate::stack::Stack) -> anyhow::Result<usize> {
    let mut client = crate::grpc::connect(stack.grpc, CALLER_TOKEN).await?;
    let req = wfe_proto::v1::WatchWorkflowExecutionsRequest::default();
    let mut stream = client.watch_workflow_executions(req).await?.into_inner();
    let mut added = 0;
    while let Some(ev) = stream.message().await? {
        match ev.r#type() {
            wfe_proto::v1::WatchEventType::Added => added += 1,
            wfe_proto::v1::WatchEventType::Synced => return Ok(added),
            _ => {}
        }
    }
    anyhow::bail!("the Watch ended before SYNCED")
}
