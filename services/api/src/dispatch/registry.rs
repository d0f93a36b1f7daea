//! Connected agent sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use wfe_core::Engine;
use wfe_proto::agent::{PrimitivePhase, SessionResponse, StatusReport};
use wfe_proto::v1::PrimitiveReference;

use crate::store::ExecKey;

/// One agent replica's open session.
#[derive(Debug)]
pub struct AgentSession {
    /// Session id (unique per stream).
    pub session_id: String,
    /// Agent replica id.
    pub agent_id: String,
    /// Cluster ("" = local).
    pub cluster_id: String,
    /// Engine.
    pub engine: Engine,
    /// Executions it runs at once.
    pub capacity: u32,
    /// False when the agent cannot run work.
    pub available: bool,
    /// Set by Draining: no new work.
    pub draining: AtomicBool,
    /// Free slots as last reported.
    pub reported_free: AtomicU32,
    /// Slots promised to executions whose assignment is being written at accept time:
    /// concurrent ExecuteWorkflow calls must not promise the same last slot twice.
    pub reserved: AtomicU32,
    /// When its Hello arrived (wall clock: compared with assignments' `assignedAt`).
    pub connected_at: jiff::Timestamp,
    /// Last message received.
    pub last_seen: Mutex<Instant>,
    /// Outbound messages.
    pub tx: mpsc::Sender<SessionResponse>,
    /// Cancelled when the session ends (lost, closed or shutdown): ends the outbound stream.
    pub closed: tokio_util::sync::CancellationToken,
    /// The primitives this agent says exist (its Hello's inventory, then its reports), by
    /// execution: what a release asks it to delete. Memory only, and no status condition:
    /// every Hello resends the inventory, so after any restart the API learns again what
    /// still exists, and a released primitive costs no write of its own.
    pub held: Mutex<HashMap<ExecKey, HeldPrimitive>>,
}

/// A primitive an agent says exists.
#[derive(Debug, Clone)]
pub struct HeldPrimitive {
    /// The primitive.
    pub primitive: PrimitiveReference,
    /// The UID of the execution it was created for, as its labels say.
    pub execution_uid: String,
}

impl AgentSession {
    /// Marks the session alive now.
    pub fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }

    /// Records what a report (or inventory entry) says exists: a primitive, or none.
    pub fn note_report(&self, r: &StatusReport) {
        let Some(e) = &r.execution else { return };
        let key = ExecKey {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
        };
        let exists = r.phase() != PrimitivePhase::Missing;
        match r.primitive.as_ref().filter(|_| exists) {
            Some(p) => self.held.lock().insert(
                key,
                HeldPrimitive {
                    primitive: p.clone(),
                    execution_uid: e.uid.clone(),
                },
            ),
            None => self.held.lock().remove(&key),
        };
    }

    /// Forgets a primitive (it was released).
    pub fn forget(&self, key: &ExecKey) {
        self.held.lock().remove(key);
    }

    /// Whether it may get new work.
    pub fn accepts_work(&self) -> bool {
        self.available && !self.draining.load(Ordering::Relaxed)
    }
}

/// Every connected session, by session id.
#[derive(Debug, Default)]
pub struct AgentRegistry {
    sessions: RwLock<HashMap<String, Arc<AgentSession>>>,
}

impl AgentRegistry {
    /// Adds a session.
    pub fn add(&self, s: Arc<AgentSession>) {
        self.sessions.write().insert(s.session_id.clone(), s);
    }

    /// Removes a session; true if it was present.
    pub fn remove(&self, session_id: &str) -> bool {
        self.sessions.write().remove(session_id).is_some()
    }

    /// Every session.
    pub fn all(&self) -> Vec<Arc<AgentSession>> {
        self.sessions.read().values().cloned().collect()
    }

    /// The newest session of an agent replica: the one it opened last (a restarted agent's
    /// old stream may linger until its lease runs out). By connection, not by last
    /// message, so two live sessions of one agent id do not take turns.
    pub fn by_agent(&self, agent_id: &str) -> Option<Arc<AgentSession>> {
        self.sessions
            .read()
            .values()
            .filter(|s| s.agent_id == agent_id)
            .max_by_key(|s| s.connected_at)
            .cloned()
    }

    /// A session by id.
    pub fn get(&self, session_id: &str) -> Option<Arc<AgentSession>> {
        self.sessions.read().get(session_id).cloned()
    }

    /// Sessions of an engine and cluster that take work.
    pub fn candidates(&self, engine: Engine, cluster: &str) -> Vec<Arc<AgentSession>> {
        let mut v: Vec<_> = self
            .sessions
            .read()
            .values()
            .filter(|s| s.engine == engine && s.cluster_id == cluster && s.accepts_work())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        v
    }

    /// Whether any session of an engine and cluster takes work.
    pub fn any_for(&self, engine: Engine, cluster: &str) -> bool {
        !self.candidates(engine, cluster).is_empty()
    }
}
