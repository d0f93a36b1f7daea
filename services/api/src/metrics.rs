//! Prometheus metrics of workflow-api (prefix `workflowexecution_api`), plus a tower layer
//! that counts and times every gRPC request by method and code.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels `engine`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineOutcome {
    /// `job` or `tekton`.
    pub engine: String,
    /// `Completed`, `Failed`, `Cancelled` or `Skipped`.
    pub outcome: String,
}

/// Label `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// A skip reason, or why a status report was refused.
    pub reason: String,
}

/// Labels `engine`, `cluster`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineCluster {
    /// Engine.
    pub engine: String,
    /// Cluster id ("local" for the local cluster).
    pub cluster: String,
}

/// Labels `method`, `code`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodCode {
    /// gRPC method, e.g. `ExecuteWorkflow`.
    pub method: String,
    /// gRPC status code name, e.g. `OK`.
    pub code: String,
}

fn duration_histogram() -> Histogram {
    // 5 s … 320 s, like upstream's reconciler histogram.
    Histogram::new(exponential_buckets(5.0, 2.0, 7))
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of the API.
#[derive(Debug)]
pub struct Metrics {
    /// The registry served at /metrics.
    pub registry: Registry,
    /// Terminal executions by engine and outcome.
    pub executions: Family<EngineOutcome, Counter>,
    /// Execution duration by engine and outcome.
    pub duration: HistFamily<EngineOutcome>,
    /// Skipped executions by reason.
    pub skips: Family<Reason, Counter>,
    /// Terminal executions deleted when their retention ended.
    pub executions_deleted: Counter,
    /// Agent status reports refused, by reason (`crate::status::report::Refused`).
    pub status_reports_refused: Family<Reason, Counter>,
    /// Accept → assignment sent.
    pub dispatch_latency: Histogram,
    /// Pending executions.
    pub pending: Gauge,
    /// Connected agents by engine and cluster.
    pub agents: Family<EngineCluster, Gauge>,
    /// Audit events waiting in the outbox.
    pub audit_outbox_depth: Gauge,
    /// Audit deliveries or writes that failed.
    pub audit_failures: Counter,
    /// Audit events set aside under the outbox's `rejected/` (refused by DataStorage, or
    /// failing its contract before sending).
    pub audit_rejected: Counter,
    /// The auditor's counters, read at every scrape.
    audit_stats: OnceLock<Arc<wfe_audit::AuditStats>>,
    /// Audit writes (file or outbox) that failed; added to the delivery failures.
    audit_write_failures: AtomicU64,
    /// Serializes scrapes, so the failure counter catches up once per change.
    scrape: parking_lot::Mutex<()>,
    /// gRPC requests by method and code.
    pub grpc_requests: Family<MethodCode, Counter>,
    /// gRPC latency by method and code.
    pub grpc_latency: HistFamily<MethodCode>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("workflowexecution_api");
        let m = Self {
            executions: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            skips: Family::default(),
            executions_deleted: Counter::default(),
            status_reports_refused: Family::default(),
            dispatch_latency: latency_histogram(),
            pending: Gauge::default(),
            agents: Family::default(),
            audit_outbox_depth: Gauge::default(),
            audit_failures: Counter::default(),
            audit_rejected: Counter::default(),
            audit_stats: OnceLock::new(),
            audit_write_failures: AtomicU64::new(0),
            scrape: parking_lot::Mutex::new(()),
            grpc_requests: Family::default(),
            grpc_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "executions",
            "Executions that reached a terminal phase",
            m.executions.clone(),
        );
        r.register(
            "execution_duration_seconds",
            "Execution duration, start to completion",
            m.duration.clone(),
        );
        r.register("skips", "Executions skipped by admission", m.skips.clone());
        r.register(
            "executions_deleted",
            "Terminal executions deleted at the end of their retention",
            m.executions_deleted.clone(),
        );
        r.register(
            "status_reports_refused",
            "Agent status reports refused, by reason",
            m.status_reports_refused.clone(),
        );
        r.register(
            "dispatch_latency_seconds",
            "Time from acceptance (the resource persisted) to the assignment persisted",
            m.dispatch_latency.clone(),
        );
        r.register(
            "pending_executions",
            "Executions waiting for an agent",
            m.pending.clone(),
        );
        r.register(
            "connected_agents",
            "Connected agent sessions",
            m.agents.clone(),
        );
        r.register(
            "audit_outbox_depth",
            "Audit events waiting for delivery",
            m.audit_outbox_depth.clone(),
        );
        r.register(
            "audit_delivery_failures",
            "Audit writes or deliveries that failed",
            m.audit_failures.clone(),
        );
        r.register(
            "audit_events_rejected",
            "Audit events DataStorage refused or that fail its contract, kept in the outbox's rejected/",
            m.audit_rejected.clone(),
        );
        r.register("grpc_requests", "gRPC requests", m.grpc_requests.clone());
        r.register(
            "grpc_request_duration_seconds",
            "gRPC request latency",
            m.grpc_latency.clone(),
        );
        Arc::new(Self { registry, ..m })
    }

    /// Counts a terminal execution.
    pub fn terminal(&self, engine: &str, outcome: &str, duration_secs: Option<f64>) {
        let l = EngineOutcome {
            engine: engine.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.executions.get_or_create(&l).inc();
        self.duration
            .get_or_create(&l)
            .observe(duration_secs.unwrap_or(0.0));
    }

    /// Reads the audit gauges from `stats` at every scrape from now on.
    pub fn watch_audit(&self, stats: Arc<wfe_audit::AuditStats>) {
        let _ = self.audit_stats.set(stats);
    }

    /// Counts an audit write that failed.
    pub fn audit_write_failed(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Brings the audit outbox depth, failure and rejection counters up to the auditor's
    /// counters.
    fn refresh_audit(&self) {
        let _guard = self.scrape.lock();
        let (depth, delivery, rejected) = self.audit_stats.get().map_or((0, 0, 0), |s| {
            (
                s.outbox_depth.load(Ordering::Relaxed),
                s.delivery_failures.load(Ordering::Relaxed),
                s.rejected.load(Ordering::Relaxed),
            )
        });
        let seen = self.audit_rejected.get();
        if rejected > seen {
            self.audit_rejected.inc_by(rejected - seen);
        }
        self.audit_outbox_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        let total = delivery + self.audit_write_failures.load(Ordering::Relaxed);
        let seen = self.audit_failures.get();
        if total > seen {
            self.audit_failures.inc_by(total - seen);
        }
    }

    /// The text exposition (audit figures refreshed first).
    pub fn encode(&self) -> String {
        self.refresh_audit();
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Tower layer recording [`Metrics::grpc_requests`] and [`Metrics::grpc_latency`].
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            // Errors travel as trailers-only responses with grpc-status in the headers; a
            // success puts it in the trailers, so a missing header means OK.
            let code = match &res {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map(|c| format!("{:?}", tonic::Code::from_i32(c)))
                    .unwrap_or_else(|| "Ok".to_owned()),
                Err(_) => "Unavailable".to_owned(),
            };
            let l = MethodCode { method, code };
            metrics.grpc_requests.get_or_create(&l).inc();
            metrics
                .grpc_latency
                .get_or_create(&l)
                .observe(start.elapsed().as_secs_f64());
            res
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names() {
        let m = Metrics::new();
        m.terminal("job", "Completed", Some(12.0));
        m.skips
            .get_or_create(&Reason {
                reason: "ResourceBusy".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains(
                "workflowexecution_api_executions_total{engine=\"job\",outcome=\"Completed\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("workflowexecution_api_skips_total{reason=\"ResourceBusy\"} 1"));
        assert!(text.contains("workflowexecution_api_execution_duration_seconds_bucket"));
        let prom = wfe_process::metrics::to_prometheus_text(&text);
        assert!(prom.contains("# TYPE workflowexecution_api_executions_total counter\n"));
        assert!(prom.contains("# HELP workflowexecution_api_skips_total "));
        assert!(prom.contains("# TYPE workflowexecution_api_pending_executions gauge\n"));
        assert!(!prom.contains("# EOF"));
    }
}
