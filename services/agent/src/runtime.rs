//! The agent's single actor: it owns the ledger and the report book, keeps one session
//! open (reconnecting with backoff), turns commands into executor tasks and executor
//! observations into status reports.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use wfe_proto::agent::{
    Ack, Assign, Cancel, Draining, Heartbeat, Hello, PrimitivePhase, Release, SessionRequest,
    SessionResponse, StatusReport, session_request::Message as Out,
    session_response::Message as In,
};

use crate::backoff::{Backoff, RandomJitter};
use crate::book::{ReportBook, uid_of};
use crate::executor::{Availability, Executor};
use crate::health::Health;
use crate::ledger::{AssignDecision, Ledger};
use crate::metrics::Metrics;
use crate::primitive::to_proto_time;
use crate::session::{self, Conn, Dial, SessionError};

/// Everything the runtime needs besides the executor.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the API is.
    pub dial: Dial,
    /// This replica's id.
    pub agent_id: String,
    /// Cluster id ("" for local).
    pub cluster_id: String,
    /// Slots.
    pub capacity: u32,
    /// Version sent in Hello.
    pub version: String,
    /// Longest drain.
    pub drain_timeout: Duration,
    /// Reconnect schedule.
    pub backoff: Backoff,
}

/// How a session ended.
enum End {
    /// Drain finished: stop.
    Drained,
    /// Connection lost: reconnect.
    Lost(SessionError),
}

/// Work finished by a spawned executor call.
enum TaskDone {
    Started {
        uid: String,
        report: StatusReport,
    },
    Command {
        command: &'static str,
        ack: Ack,
        report: Option<StatusReport>,
        released: Option<String>,
    },
}

/// The runtime state (one task owns it; no locks).
pub(crate) struct Agent {
    cfg: AgentConfig,
    executor: Arc<dyn Executor>,
    availability: Availability,
    ledger: Ledger,
    book: ReportBook,
    reports: mpsc::Receiver<StatusReport>,
    tasks: JoinSet<TaskDone>,
    in_flight: HashSet<String>,
    health: Health,
    metrics: Metrics,
    drain_deadline: Option<Instant>,
}

fn msg(m: Out) -> SessionRequest {
    SessionRequest { message: Some(m) }
}

fn now_ts() -> prost_types::Timestamp {
    to_proto_time(jiff::Timestamp::now())
}

async fn send(tx: &mpsc::Sender<SessionRequest>, m: Out) -> Result<(), SessionError> {
    tx.send(msg(m))
        .await
        .map_err(|_| SessionError::Closed("outbound stream"))
}

impl Agent {
    pub(crate) fn new(
        cfg: AgentConfig,
        executor: Arc<dyn Executor>,
        availability: Availability,
        reports: mpsc::Receiver<StatusReport>,
        health: Health,
        metrics: Metrics,
    ) -> Self {
        Self {
            ledger: Ledger::new(cfg.capacity),
            cfg,
            executor,
            availability,
            book: ReportBook::default(),
            reports,
            tasks: JoinSet::new(),
            in_flight: HashSet::new(),
            health,
            metrics,
            drain_deadline: None,
        }
    }

    fn draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// Connect, serve, reconnect, until drained.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                self.begin_drain();
            }
            if self.draining() {
                self.finish_offline().await;
                return;
            }
            let hello = self.hello();
            let opened = tokio::select! {
                r = session::open(&self.cfg.dial, hello) => r,
                () = shutdown.cancelled() => continue,
            };
            match opened {
                Ok(conn) => {
                    failures = 0;
                    tracing::info!(session = %conn.welcome.session_id, "session established");
                    match self.serve(conn, &shutdown).await {
                        End::Drained => return,
                        End::Lost(e) => tracing::warn!(error = %e, "session lost"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot open session"),
            }
            self.book.disconnected();
            self.metrics.session_errors.inc();
            let delay = self.cfg.backoff.delay(failures, &mut RandomJitter);
            failures = failures.saturating_add(1);
            self.wait_offline(delay, &shutdown).await;
        }
    }

    /// Hello with the inventory: the cluster's primitives merged with what this process
    /// knows (e.g. a terminal report whose primitive vanished while disconnected).
    fn hello(&mut self) -> Hello {
        let cluster = self.executor.inventory();
        let stamped: Vec<StatusReport> = cluster.into_iter().map(|r| self.stamp(r)).collect();
        let inventory = self.book.inventory(stamped);
        for r in &inventory {
            self.track(r);
        }
        let (available, unavailable_reason) = match &self.availability {
            Availability::Available => (true, String::new()),
            Availability::Unavailable(r) => (false, r.clone()),
        };
        Hello {
            agent_id: self.cfg.agent_id.clone(),
            cluster_id: self.cfg.cluster_id.clone(),
            engine: self.executor.engine().to_owned(),
            version: self.cfg.version.clone(),
            capacity: self.cfg.capacity,
            inventory,
            available,
            unavailable_reason,
        }
    }

    /// Reports carry the newest fencing token this agent holds for the execution: a
    /// primitive adopted under a newer assignment still carries the old one.
    fn stamp(&self, mut r: StatusReport) -> StatusReport {
        if let Some(h) = self.ledger.get(uid_of(&r))
            && h.fencing_token > r.fencing_token
        {
            r.fencing_token = h.fencing_token;
            r.attempt = h.attempt;
        }
        r
    }

    fn track(&mut self, r: &StatusReport) {
        let terminal = !matches!(
            PrimitivePhase::try_from(r.phase),
            Ok(PrimitivePhase::Pending | PrimitivePhase::Running)
        );
        // A create in flight holds its slot even if an old primitive is gone.
        let terminal = terminal && !self.in_flight.contains(uid_of(r));
        self.ledger
            .observe(uid_of(r), r.fencing_token, r.attempt, terminal);
        self.refresh_gauges();
    }

    /// Stamps and records a report; returns it when the API must hear it.
    fn intake(&mut self, r: StatusReport) -> Option<StatusReport> {
        let r = self.stamp(r);
        let uid = uid_of(&r).to_owned();
        let news = self.book.record(r);
        if news.is_some()
            && let Some(latest) = self.book.latest(&uid).cloned()
        {
            self.track(&latest);
        }
        news
    }

    fn refresh_gauges(&self) {
        self.metrics.running.set(i64::from(self.ledger.running()));
        self.metrics
            .free_slots
            .set(i64::from(self.ledger.free_slots()));
    }

    fn begin_drain(&mut self) {
        if self.draining() {
            return;
        }
        tracing::info!(in_flight = self.tasks.len(), "draining");
        self.ledger.start_draining();
        self.health.update(|r| r.draining = true);
        self.drain_deadline = Some(Instant::now() + self.cfg.drain_timeout);
        self.refresh_gauges();
    }
}

mod offline;
mod serve;
