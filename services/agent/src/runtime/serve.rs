//! One established session: commands in, acks/reports/heartbeats out.

use super::*;
use tracing::Instrument as _;

/// How long the API may take to end the stream after our final message.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

impl Agent {
    /// Serves one session until it is lost or the drain completes.
    pub(super) async fn serve(&mut self, conn: Conn, shutdown: &CancellationToken) -> End {
        let Conn {
            tx,
            mut rx,
            welcome,
        } = conn;
        self.health.update(|r| r.connected = true);
        self.metrics.sessions.inc();
        self.metrics.connected.set(1);
        let mut heartbeat = tokio::time::interval(session::heartbeat_interval(&welcome));
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = loop {
            if self.draining() && self.tasks.is_empty() {
                break self.flush(&tx).await;
            }
            let deadline = self.drain_deadline.unwrap_or_else(Instant::now);
            let step = tokio::select! {
                () = shutdown.cancelled(), if !self.draining() => {
                    self.begin_drain();
                    let reason = "agent shutting down".to_owned();
                    send(&tx, Out::Draining(Draining { reason })).await
                }
                () = tokio::time::sleep_until(deadline), if self.draining() => {
                    tracing::warn!(left = self.tasks.len(), "drain timeout; closing with work in flight");
                    break self.flush(&tx).await;
                }
                m = rx.message() => match m {
                    Ok(Some(m)) => self.on_message(m, &tx).await,
                    Ok(None) => Err(SessionError::Closed("closed by workflow-api")),
                    Err(status) => Err(SessionError::Status(status)),
                },
                Some(r) = self.reports.recv() => self.report(r, &tx).await,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => match done {
                    Ok(done) => self.on_done(done, Some(&tx)).await,
                    Err(e) => { tracing::error!(error = %e, "executor task failed"); Ok(()) }
                },
                _ = heartbeat.tick() => self.heartbeat(&tx).await,
            };
            if let Err(e) = step {
                break End::Lost(e);
            }
        };
        if matches!(end, End::Drained) {
            // Close our half, then let the API finish reading: dropping the response stream
            // at once would reset the call and could lose the final reports.
            drop(tx);
            let rest = async { while let Ok(Some(_)) = rx.message().await {} };
            let _ = tokio::time::timeout(CLOSE_GRACE, rest).await;
        }
        self.health.update(|r| r.connected = false);
        self.metrics.connected.set(0);
        end
    }

    /// Sends the reports already queued, then ends the session (closing our half).
    async fn flush(&mut self, tx: &mpsc::Sender<SessionRequest>) -> End {
        while let Ok(r) = self.reports.try_recv() {
            if self.report(r, tx).await.is_err() {
                break;
            }
        }
        End::Drained
    }

    async fn report(
        &mut self,
        r: StatusReport,
        tx: &mpsc::Sender<SessionRequest>,
    ) -> Result<(), SessionError> {
        let Some(r) = self.intake(r) else {
            return Ok(());
        };
        self.book.mark_sent(&r);
        self.metrics.reports_sent.inc();
        send(tx, Out::Status(r)).await
    }

    async fn heartbeat(&mut self, tx: &mpsc::Sender<SessionRequest>) -> Result<(), SessionError> {
        self.refresh_gauges();
        self.metrics.heartbeats_sent.inc();
        let hb = Heartbeat {
            free_slots: self.ledger.free_slots(),
            running: self.ledger.running(),
            sent_at: Some(now_ts()),
        };
        send(tx, Out::Heartbeat(hb)).await
    }

    async fn on_message(
        &mut self,
        m: SessionResponse,
        tx: &mpsc::Sender<SessionRequest>,
    ) -> Result<(), SessionError> {
        match m.message {
            Some(In::Assign(a)) => self.on_assign(a, tx).await,
            Some(In::Cancel(c)) => self.on_cancel(c, tx).await,
            Some(In::Release(r)) => self.on_release(r, tx).await,
            Some(In::Welcome(_)) | None => Ok(()),
        }
    }

    async fn ack(
        &self,
        tx: &mpsc::Sender<SessionRequest>,
        command_id: &str,
        refusal: Option<String>,
    ) -> Result<(), SessionError> {
        let ack = Ack {
            command_id: command_id.to_owned(),
            accepted: refusal.is_none(),
            reason: refusal.unwrap_or_default(),
        };
        send(tx, Out::Ack(ack)).await
    }

    async fn on_assign(
        &mut self,
        a: Assign,
        tx: &mpsc::Sender<SessionRequest>,
    ) -> Result<(), SessionError> {
        let uid = a
            .execution
            .as_ref()
            .map(|k| k.uid.clone())
            .unwrap_or_default();
        if uid.is_empty() {
            self.metrics.command("assign", "invalid");
            return self
                .ack(
                    tx,
                    &a.assignment_id,
                    Some("assign without execution uid".into()),
                )
                .await;
        }
        if let Availability::Unavailable(why) = &self.availability {
            self.metrics.command("assign", "unavailable");
            let why = format!("engine unavailable: {why}");
            return self.ack(tx, &a.assignment_id, Some(why)).await;
        }
        let decision = self.ledger.assign(&uid, a.fencing_token, a.attempt);
        self.refresh_gauges();
        let AssignDecision::Accept { redelivery } = decision else {
            self.metrics.command("assign", label(decision));
            tracing::info!(execution = %uid, reason = decision.refusal_reason(), "assign refused");
            let why = decision.refusal_reason().to_owned();
            return self.ack(tx, &a.assignment_id, Some(why)).await;
        };
        self.metrics.command("assign", "accepted");
        self.ack(tx, &a.assignment_id, None).await?;
        if self.in_flight.contains(&uid) {
            return Ok(()); // the create under way answers with its report
        }
        if redelivery && let Some(r) = self.book.resend(&uid) {
            return send(tx, Out::Status(r)).await;
        }
        self.spawn_start(uid, a);
        Ok(())
    }

    fn spawn_start(&mut self, uid: String, a: Assign) {
        self.in_flight.insert(uid.clone());
        let exec = self.executor.clone();
        let span = tracing::info_span!("assign", execution = %uid, adopt = a.adopt);
        wfe_telemetry::set_parent_from_map(&span, &a.trace_context);
        self.tasks.spawn(
            async move {
                let report = exec.start(&a).await;
                TaskDone::Started { uid, report }
            }
            .instrument(span),
        );
    }

    async fn on_cancel(
        &mut self,
        c: Cancel,
        tx: &mpsc::Sender<SessionRequest>,
    ) -> Result<(), SessionError> {
        let uid = c
            .execution
            .as_ref()
            .map(|k| k.uid.clone())
            .unwrap_or_default();
        if !self.ledger.command_allowed(&uid, c.fencing_token) {
            self.metrics.command("cancel", "stale");
            return self
                .ack(tx, &c.command_id, Some("stale fencing token".into()))
                .await;
        }
        let exec = self.executor.clone();
        self.tasks.spawn(async move {
            let (ack, report) = match exec.cancel(&c).await {
                Ok(r) => (accepted(&c.command_id), Some(r)),
                Err(e) => (refused(&c.command_id, e.to_string()), None),
            };
            TaskDone::Command {
                command: "cancel",
                ack,
                report,
                released: None,
            }
        });
        Ok(())
    }

    async fn on_release(
        &mut self,
        r: Release,
        tx: &mpsc::Sender<SessionRequest>,
    ) -> Result<(), SessionError> {
        let uid = r
            .execution
            .as_ref()
            .map(|k| k.uid.clone())
            .unwrap_or_default();
        if !self.ledger.command_allowed(&uid, r.fencing_token) {
            self.metrics.command("release", "stale");
            return self
                .ack(tx, &r.command_id, Some("stale fencing token".into()))
                .await;
        }
        let exec = self.executor.clone();
        self.tasks.spawn(async move {
            match exec.release(&r).await {
                Ok(()) => TaskDone::Command {
                    command: "release",
                    ack: accepted(&r.command_id),
                    report: None,
                    released: Some(uid),
                },
                Err(e) => TaskDone::Command {
                    command: "release",
                    ack: refused(&r.command_id, e.to_string()),
                    report: None,
                    released: None,
                },
            }
        });
        Ok(())
    }

    /// Applies a finished task; sends its ack and report when a session is open.
    pub(super) async fn on_done(
        &mut self,
        done: TaskDone,
        tx: Option<&mpsc::Sender<SessionRequest>>,
    ) -> Result<(), SessionError> {
        let (ack, report) = match done {
            TaskDone::Started { uid, report } => {
                self.in_flight.remove(&uid);
                (None, Some(report))
            }
            TaskDone::Command {
                command,
                ack,
                report,
                released,
            } => {
                self.metrics
                    .command(command, if ack.accepted { "accepted" } else { "error" });
                if let Some(uid) = released {
                    self.book.release(&uid);
                    self.ledger.forget(&uid);
                    self.refresh_gauges();
                }
                (Some(ack), report)
            }
        };
        let news = report.and_then(|r| self.intake(r));
        let Some(tx) = tx else { return Ok(()) };
        if let Some(ack) = ack {
            send(tx, Out::Ack(ack)).await?;
        }
        if let Some(r) = news {
            self.book.mark_sent(&r);
            self.metrics.reports_sent.inc();
            send(tx, Out::Status(r)).await?;
        }
        Ok(())
    }
}

fn accepted(command_id: &str) -> Ack {
    Ack {
        command_id: command_id.to_owned(),
        accepted: true,
        reason: String::new(),
    }
}

fn refused(command_id: &str, reason: String) -> Ack {
    Ack {
        command_id: command_id.to_owned(),
        accepted: false,
        reason,
    }
}

fn label(d: AssignDecision) -> &'static str {
    match d {
        AssignDecision::Accept { .. } => "accepted",
        AssignDecision::Stale => "stale",
        AssignDecision::Full => "full",
        AssignDecision::Draining => "draining",
    }
}
