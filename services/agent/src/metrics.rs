//! The runtime's Prometheus metrics (prometheus-client). Executors may register their
//! own metrics in the same registry through [`crate::AgentConfig::registry`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set of command counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// `assign`, `cancel` or `release`.
    pub command: &'static str,
    /// `accepted`, or the refusal (`stale`, `full`, `draining`, `error`).
    pub result: &'static str,
}

/// Metrics of one agent.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// 1 while a session is established.
    pub connected: Gauge,
    /// Sessions established.
    pub sessions: Counter,
    /// Session attempts or sessions that failed.
    pub session_errors: Counter,
    /// Commands received, by outcome.
    pub commands: Family<CommandLabels, Counter>,
    /// Status reports sent (inventory excluded).
    pub reports_sent: Counter,
    /// Heartbeats sent.
    pub heartbeats_sent: Counter,
    /// Executions held whose primitive is not terminal.
    pub running: Gauge,
    /// Free slots.
    pub free_slots: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them under `wfe_agent_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("wfe_agent");
        r.register(
            "session_connected",
            "1 while the session to workflow-api is established",
            m.connected.clone(),
        );
        r.register("sessions", "Sessions established", m.sessions.clone());
        r.register(
            "session_errors",
            "Failed session attempts and sessions ended by an error",
            m.session_errors.clone(),
        );
        r.register(
            "commands",
            "Commands received from workflow-api, by outcome",
            m.commands.clone(),
        );
        r.register(
            "reports_sent",
            "Status reports sent",
            m.reports_sent.clone(),
        );
        r.register(
            "heartbeats_sent",
            "Heartbeats sent",
            m.heartbeats_sent.clone(),
        );
        r.register(
            "running_executions",
            "Executions held whose primitive is not terminal",
            m.running.clone(),
        );
        r.register(
            "free_slots",
            "Slots free for new work",
            m.free_slots.clone(),
        );
        m
    }

    /// Counts a command.
    pub fn command(&self, command: &'static str, result: &'static str) {
        self.commands
            .get_or_create(&CommandLabels { command, result })
            .inc();
    }
}
