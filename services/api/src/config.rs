//! Command-line flags and their environment variables (`WFE_API_*`): the whole configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wfe_core::AdmissionPolicy;

/// workflow-api configuration. Every flag is also an environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "workflow-api",
    version,
    about = "WorkflowExecution gRPC API and agent session server"
)]
pub struct Config {
    /// gRPC listen address (WorkflowExecutionService, AgentSessionService, health, reflection).
    #[arg(long, env = "WFE_API_GRPC_ADDR", default_value = "0.0.0.0:8443")]
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listen address (/livez, /readyz, /metrics).
    #[arg(long, env = "WFE_API_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    pub admin_addr: SocketAddr,
    /// Namespace of WorkflowExecution resources when a request leaves it empty.
    #[arg(long, env = "WFE_API_NAMESPACE", default_value = "kubernaut-system")]
    pub namespace: String,
    /// Further namespaces whose executions this server serves (comma-separated).
    #[arg(long, env = "WFE_API_EXTRA_NAMESPACES", value_delimiter = ',')]
    pub extra_namespaces: Vec<String>,
    /// Namespace where agents create primitives (Jobs, PipelineRuns).
    #[arg(
        long,
        env = "WFE_API_EXECUTION_NAMESPACE",
        default_value = "kubernaut-workflows"
    )]
    pub execution_namespace: String,
    /// Callers' bearer tokens: one `<token> <identity>` per line. Without it, callers are not
    /// authenticated (development only).
    #[arg(long, env = "WFE_API_CALLER_TOKENS_FILE")]
    pub caller_tokens_file: Option<PathBuf>,
    /// Agents' bearer tokens: one `<token> <cluster-id|-> <engine>` per line. Without it,
    /// agents are not authenticated (development only).
    #[arg(long, env = "WFE_API_AGENT_TOKENS_FILE")]
    pub agent_tokens_file: Option<PathBuf>,
    /// PEM certificate chain for TLS on the gRPC port (with --tls-key).
    #[arg(long, env = "WFE_API_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the gRPC port (with --tls-cert).
    #[arg(long, env = "WFE_API_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where audit events go: `file` (JSON lines) or `datastorage` (HTTP batches behind a
    /// durable on-disk outbox).
    #[arg(long, env = "WFE_API_AUDIT_SINK", value_enum, default_value = "file")]
    pub audit_sink: AuditSinkKind,
    /// Append audit events to this JSON-lines file (`--audit-sink file`).
    #[arg(long, env = "WFE_API_AUDIT_FILE", default_value = "audit-events.jsonl")]
    pub audit_file: PathBuf,
    /// DataStorage base URL (`--audit-sink datastorage`), e.g. `http://data-storage:8080`.
    #[arg(long, env = "WFE_API_DATASTORAGE_URL")]
    pub datastorage_url: Option<String>,
    /// Directory of the audit outbox (`--audit-sink datastorage`); keep it on a volume that
    /// survives restarts.
    #[arg(long, env = "WFE_API_AUDIT_OUTBOX_DIR", default_value = "audit-outbox")]
    pub audit_outbox_dir: PathBuf,
    /// First delay before retrying a failed DataStorage delivery (doubles per failure).
    #[arg(long, env = "WFE_API_AUDIT_RETRY_BASE", default_value = "1s", value_parser = parse_duration)]
    pub audit_retry_base: Duration,
    /// Status edits that change no phase (AuditRecorded, a created primitive) wait up to
    /// this long to ride along with the execution's next write (0 writes them at once).
    #[arg(long, env = "WFE_API_STATUS_COALESCE_WINDOW", default_value = "1s", value_parser = parse_duration)]
    pub status_coalesce_window: Duration,
    /// How often executions are checked for audit events a crash left unrecorded.
    #[arg(long, env = "WFE_API_AUDIT_RESYNC_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub audit_resync_interval: Duration,
    /// How long a terminal execution's primitive (Job, PipelineRun) is kept, after its audit
    /// is recorded, before the API asks the agent holding it to delete it (no status write;
    /// Jobs also carry `ttlSecondsAfterFinished: 600` as a fallback).
    #[arg(long, env = "WFE_API_PRIMITIVE_RETENTION", default_value = "10m", value_parser = parse_duration)]
    pub primitive_retention: Duration,
    /// How long a terminal WorkflowExecution is kept after it ended (default 7 days); 0 keeps
    /// it for ever.
    /// It goes only once its audit events are delivered (the audit trail is the long-term
    /// record), its primitive is released, and nothing it blocks is still blocked; never
    /// sooner than `--primitive-retention` or `--lock-grace`
    /// (`wfe_core::retention`). Its idempotency key is remembered as long as it is kept.
    #[arg(long, env = "WFE_API_EXECUTION_RETENTION", default_value = "168h", value_parser = parse_duration)]
    pub execution_retention: Duration,
    /// How often agents send a heartbeat.
    #[arg(long, env = "WFE_API_HEARTBEAT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// After this long without a message an agent is lost (about two heartbeats).
    #[arg(long, env = "WFE_API_LEASE_DURATION", default_value = "5s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// An Assign not acknowledged within this time is sent again.
    #[arg(long, env = "WFE_API_ACK_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub ack_timeout: Duration,
    /// How often Watch streams send a heartbeat.
    #[arg(long, env = "WFE_API_WATCH_HEARTBEAT", default_value = "10s", value_parser = parse_duration)]
    pub watch_heartbeat: Duration,
    /// A target lock whose holder execution cannot be found is taken over after this grace.
    #[arg(long, env = "WFE_API_LOCK_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub lock_grace: Duration,
    /// A WorkflowExecution left without its initial status (its API died, or the status
    /// write failed, between the create and the status write) is admitted by the dispatcher
    /// after this long; a retry of the same idempotency key does it at once.
    #[arg(long, env = "WFE_API_ACCEPT_RECOVERY_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub accept_recovery_grace: Duration,
    /// A target lock free for this long is deleted (a busy target reuses its lock).
    #[arg(long, env = "WFE_API_LOCK_IDLE_TTL", default_value = "1h", value_parser = parse_duration)]
    pub lock_idle_ttl: Duration,
    /// RecentlyRemediated cooldown for the same workflow on the same target.
    #[arg(long, env = "WFE_API_COOLDOWN", default_value = "5m", value_parser = parse_duration)]
    pub cooldown: Duration,
    /// First backoff delay after a pre-execution failure.
    #[arg(long, env = "WFE_API_BACKOFF_BASE", default_value = "60s", value_parser = parse_duration)]
    pub backoff_base: Duration,
    /// Longest backoff delay.
    #[arg(long, env = "WFE_API_BACKOFF_MAX", default_value = "10m", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Consecutive pre-execution failures that exhaust retries.
    #[arg(long, env = "WFE_API_MAX_CONSECUTIVE_FAILURES", default_value_t = 3)]
    pub max_consecutive_failures: u32,
    /// How long ExhaustedRetries blocks unless cleared.
    #[arg(long, env = "WFE_API_EXHAUSTED_RETRIES_BLOCK", default_value = "1h", value_parser = parse_duration)]
    pub exhausted_retries_block: Duration,
    /// Identity of this replica (logs, lease holder); defaults to the host name.
    #[arg(long, env = "WFE_API_INSTANCE_ID", default_value = "")]
    pub instance_id: String,
    /// Log format: `text` or `json`.
    #[arg(long, env = "WFE_API_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// OTLP/gRPC collector for traces, e.g. `http://otel-collector:4317`; without it no
    /// span is exported.
    #[arg(long, env = "WFE_API_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// How long a graceful shutdown waits for streams to end.
    #[arg(long, env = "WFE_API_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Config {
    /// The audit intent journal: beside the audit file, or in the outbox directory.
    pub fn audit_intents_path(&self) -> PathBuf {
        match self.audit_sink {
            AuditSinkKind::File => {
                let mut name = self.audit_file.clone().into_os_string();
                name.push(".intents");
                PathBuf::from(name)
            }
            AuditSinkKind::Datastorage => self.audit_outbox_dir.join("intents.jsonl"),
        }
    }

    /// Defaults for in-process use (tests, the dev stack): ephemeral ports on 127.0.0.1.
    pub fn local(namespace: &str, audit_file: PathBuf) -> Self {
        use clap::Parser;
        let mut c = Self::parse_from(["workflow-api"]);
        c.grpc_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.admin_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        c.namespace = namespace.to_owned();
        c.audit_file = audit_file;
        c
    }

    /// Every namespace served, the default first.
    pub fn namespaces(&self) -> Vec<String> {
        let mut out = vec![self.namespace.clone()];
        for ns in &self.extra_namespaces {
            if !ns.is_empty() && !out.contains(ns) {
                out.push(ns.clone());
            }
        }
        out
    }

    /// The admission thresholds.
    pub fn admission_policy(&self) -> AdmissionPolicy {
        AdmissionPolicy {
            cooldown: self.cooldown,
            backoff_base: self.backoff_base,
            backoff_max: self.backoff_max,
            max_consecutive_failures: self.max_consecutive_failures,
            exhausted_retries_block: self.exhausted_retries_block,
            ..AdmissionPolicy::default()
        }
    }
}

/// Audit sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditSinkKind {
    /// A JSON-lines file.
    File,
    /// DataStorage's batch endpoint behind a durable outbox.
    Datastorage,
}

/// Parses `500ms`, `2s`, `5m`, `1h` or a bare number of seconds ([`wfe_process::duration`]).
pub use wfe_process::duration::parse as parse_duration;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("x").is_err());
    }
}
