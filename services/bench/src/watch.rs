//! The Watch client: follows WatchWorkflowExecutions and records, per execution, when
//! it was first seen assigned, Running and terminal (instants on this process's clock).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use wfe_proto::v1::{Phase, WatchEventType, WatchWorkflowExecutionsRequest, WorkflowExecution};

use crate::grpc::Client;

/// What the Watch client saw of one execution.
#[derive(Debug, Default)]
pub struct Seen {
    /// First event with `status.assignment` set.
    pub assigned: Option<Instant>,
    /// First event in phase Running.
    pub running: Option<Instant>,
    /// First event in a terminal phase, and that phase.
    pub terminal: Option<(Instant, Phase)>,
    waiters: Vec<oneshot::Sender<()>>,
}

/// Shared record of every execution the Watch client saw, by name.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
}

fn is_terminal(p: Phase) -> bool {
    matches!(p, Phase::Completed | Phase::Failed | Phase::Skipped)
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // A panic while holding the lock cannot leave the map inconsistent: take it.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one event about `e` received at `at`.
    fn on_event(&self, e: &WorkflowExecution, at: Instant) {
        let Some(st) = e.status.as_ref() else { return };
        let phase = st.phase();
        let mut map = self.lock();
        let s = map.entry(e.name.clone()).or_default();
        if st.assignment.is_some() && s.assigned.is_none() {
            s.assigned = Some(at);
        }
        if phase == Phase::Running && s.running.is_none() {
            s.running = Some(at);
        }
        if is_terminal(phase) && s.terminal.is_none() {
            s.terminal = Some((at, phase));
            for w in s.waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Waits until `name` was seen terminal, at most `timeout`; its phase if it was.
    pub async fn wait_terminal(&self, name: &str, timeout: Duration) -> Option<Phase> {
        let rx = {
            let mut map = self.lock();
            let s = map.entry(name.to_owned()).or_default();
            if let Some((_, p)) = s.terminal {
                return Some(p);
            }
            let (tx, rx) = oneshot::channel();
            s.waiters.push(tx);
            rx
        };
        tokio::time::timeout(timeout, rx).await.ok()?.ok()?;
        self.lock().get(name).and_then(|s| s.terminal.map(|t| t.1))
    }

    /// Reads what was seen of `name`.
    pub fn with<T>(&self, name: &str, f: impl FnOnce(&Seen) -> T) -> Option<T> {
        self.lock().get(name).map(f)
    }

    /// Follows the Watch until the task is aborted, resuming after a disconnect.
    /// `synced` fires once the initial state has been received.
    pub async fn follow(self, client: Client, synced: oneshot::Sender<()>) {
        let mut synced = Some(synced);
        let mut token = String::new();
        loop {
            if let Err(e) = self
                .follow_once(client.clone(), &mut token, &mut synced)
                .await
            {
                eprintln!("watch: {e}; resuming");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn follow_once(
        &self,
        mut client: Client,
        token: &mut String,
        synced: &mut Option<oneshot::Sender<()>>,
    ) -> anyhow::Result<()> {
        let req = WatchWorkflowExecutionsRequest {
            resume_token: token.clone(),
            ..Default::default()
        };
        let mut stream = client.watch_workflow_executions(req).await?.into_inner();
        while let Some(ev) = stream.message().await? {
            let at = Instant::now();
            if let Some(e) = &ev.execution {
                self.on_event(e, at);
            }
            if ev.r#type() == WatchEventType::Synced
                && let Some(tx) = synced.take()
            {
                let _ = tx.send(());
            }
            if !ev.resume_token.is_empty() {
                *token = ev.resume_token;
            }
        }
        anyhow::bail!("the watch stream ended")
    }
}
