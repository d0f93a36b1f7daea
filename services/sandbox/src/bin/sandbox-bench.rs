//! `sandbox-bench`: prints the sandbox API server's write throughput and create → watch-event
//! latency, measured over real HTTP with kube-rs (client and server share this machine's cores,
//! so the figures are conservative). Not a test: it only reports.
//!
//! `cargo run --release -p wfe-sandbox --bin sandbox-bench -- --writes 20000 --concurrency 64`

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use wfe_sandbox::{Sandbox, SandboxConfig};

/// Benchmark options.
#[derive(Debug, Parser)]
struct Args {
    /// Total concurrent creates for the throughput figure.
    #[arg(long, env = "SANDBOX_BENCH_WRITES", default_value_t = 20_000)]
    writes: usize,
    /// Concurrent in-flight requests.
    #[arg(long, env = "SANDBOX_BENCH_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// Sequential creates timed until their watch event arrives.
    #[arg(long, env = "SANDBOX_BENCH_LATENCY_SAMPLES", default_value_t = 2_000)]
    latency_samples: usize,
    /// Benchmark a running sandbox at this URL instead of an in-process one.
    #[arg(long, env = "SANDBOX_BENCH_URL")]
    url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (sandbox, client) = match &args.url {
        Some(url) => (
            None,
            kube::Client::try_from(kube::Config::new(url.parse()?))?,
        ),
        None => {
            let config = SandboxConfig {
                job_controller: false,
                tekton_controller: false,
                ..SandboxConfig::default()
            };
            let sb = Sandbox::start(config).await?;
            let client = sb.kube_client()?;
            (Some(sb), client)
        }
    };
    let run = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    create_namespace(&client, &format!("{run}-w")).await?;
    create_namespace(&client, &format!("{run}-l")).await?;
    throughput(&client, &format!("{run}-w"), args.writes, args.concurrency).await?;
    latency(&client, &format!("{run}-l"), args.latency_samples).await?;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }
    Ok(())
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

fn config_map(name: &str) -> anyhow::Result<ConfigMap> {
    Ok(serde_json::from_value(
        serde_json::json!({"metadata": {"name": name, "labels": {"app": "bench"}}, "data": {"k": "v"}}),
    )?)
}

async fn throughput(
    client: &kube::Client,
    ns: &str,
    writes: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    futures::stream::iter(0..writes)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &config_map(&format!("cm-{i}"))?)
                    .await
                    .context("create")
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "writes: {writes} creates over HTTP, {concurrency} in flight: {:.0} writes/s ({secs:.2}s)",
        writes as f64 / secs
    );
    Ok(())
}

async fn latency(client: &kube::Client, ns: &str, samples: usize) -> anyhow::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let rv = api
        .list_metadata(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut events = api.watch(&WatchParams::default(), &rv).await?.boxed();
    let mut watch_lat = Vec::with_capacity(samples);
    let mut create_lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let name = format!("lat-{i}");
        let t0 = Instant::now();
        api.create(&PostParams::default(), &config_map(&name)?)
            .await?;
        create_lat.push(t0.elapsed());
        loop {
            match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
                Ok(Some(Ok(WatchEvent::Added(cm))))
                    if cm.metadata.name.as_deref() == Some(name.as_str()) =>
                {
                    break;
                }
                Ok(Some(Ok(_))) => continue,
                other => anyhow::bail!("watch ended or timed out: {other:?}"),
            }
        }
        watch_lat.push(t0.elapsed());
    }
    report("create request → response", &mut create_lat);
    report("create request → watch event", &mut watch_lat);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "latency {what}: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} samples)",
        us(pct(0.50)),
        us(pct(0.99)),
        us(pct(1.0)),
        samples.len()
    );
}
