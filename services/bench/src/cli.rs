//! Command line of `wfe-bench`; every flag is also a `WFE_BENCH_*` environment variable.

use std::path::PathBuf;

/// Drives the real stack (sandbox, workflow-api, job-agent as processes) and prints
/// latency, throughput, RSS and Kubernetes API writes per execution.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "wfe-bench", version)]
pub struct Args {
    /// The `wfe` binary; when absent it is built with
    /// `cargo build --release -p wfe-dev --bin wfe`.
    #[arg(long, env = "WFE_BENCH_WFE")]
    pub wfe: Option<PathBuf>,
    /// The Kubernetes to run on: the sandbox, or a real control plane (etcd,
    /// kube-apiserver, kube-controller-manager from tests/control-plane/build).
    #[arg(long, env = "WFE_BENCH_BACKEND", value_enum, default_value = "sandbox")]
    pub backend: crate::stack::Backend,
    /// Real backend: etcd fsyncs its log, as in production (off by default: faster).
    #[arg(long, env = "WFE_BENCH_ETCD_FSYNC")]
    pub etcd_fsync: bool,
    /// Executions to measure.
    #[arg(long, env = "WFE_BENCH_EXECUTIONS", default_value_t = 2000)]
    pub executions: usize,
    /// Distinct targets; executions on one target run one after the other.
    #[arg(long, env = "WFE_BENCH_TARGETS", default_value_t = 200)]
    pub targets: usize,
    /// Executions in flight (accepted, not yet terminal) at most.
    #[arg(long, env = "WFE_BENCH_CONCURRENCY", default_value_t = 50)]
    pub concurrency: usize,
    /// Open loop: start executions at this many per minute (evenly spaced) instead of as
    /// fast as the in-flight limit allows, so latencies are measured at a known offered
    /// load (for example the 3,000/min goal) rather than at saturation, where they are
    /// mostly queueing. The in-flight limit still applies; sends it delays are counted.
    #[arg(long, env = "WFE_BENCH_RATE")]
    pub rate: Option<f64>,
    /// Unmeasured executions run first (connections, caches, allocator).
    #[arg(long, env = "WFE_BENCH_WARMUP", default_value_t = 50)]
    pub warmup: usize,
    /// The job-agent's `--capacity` (its production default is 50).
    #[arg(long, env = "WFE_BENCH_AGENT_CAPACITY", default_value_t = 50)]
    pub agent_capacity: u32,
    /// Instead of the run: store this many terminal executions and report the API's RSS.
    #[arg(long, env = "WFE_BENCH_STORED")]
    pub stored: Option<usize>,
    /// Also count writes over each execution's whole life: the API releases primitives this
    /// many seconds after an execution's audit (its `--primitive-retention`, 10 minutes in
    /// production), and the harness waits for every measured Job to be deleted. The warm-up's
    /// Jobs are deleted before the measured batch starts.
    #[arg(long, env = "WFE_BENCH_WHOLE_LIFE", value_name = "RETENTION_SECONDS")]
    pub whole_life: Option<u64>,
    /// Do not watch the sandbox to count writes (to see what the counting costs).
    #[arg(long, env = "WFE_BENCH_NO_WRITE_COUNT")]
    pub no_write_count: bool,
    /// `RUST_LOG` of the components (their logs go to files in the state directory).
    #[arg(long, env = "WFE_BENCH_COMPONENT_LOG", default_value = "info")]
    pub component_log: String,
    /// Keep the state directory (component logs, audit file) after the run.
    #[arg(long, env = "WFE_BENCH_KEEP")]
    pub keep: bool,
    /// Seconds an execution may take from accept to terminal before it counts as lost.
    #[arg(long, env = "WFE_BENCH_TIMEOUT_SECONDS", default_value_t = 120)]
    pub timeout_seconds: u64,
}

impl Args {
    /// Runs the chosen mode.
    pub async fn run(self) -> anyhow::Result<()> {
        anyhow::ensure!(self.targets > 0, "--targets must be at least 1");
        anyhow::ensure!(self.concurrency > 0, "--concurrency must be at least 1");
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of executions per minute, got {rate}"
            );
        }
        anyhow::ensure!(
            self.whole_life.is_none() || !self.no_write_count,
            "--whole-life counts writes: it cannot go with --no-write-count"
        );
        match self.stored {
            Some(n) => crate::stored::run(&self, n).await,
            None => crate::run::run(&self).await,
        }
    }
}
