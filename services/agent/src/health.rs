//! Liveness and readiness of the agent, shared by the runtime and the admin port.

use tokio::sync::watch;

/// The facts readiness is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The session to workflow-api is established.
    pub connected: bool,
    /// The executor's watches listed everything.
    pub synced: bool,
    /// Shutting down: no new work.
    pub draining: bool,
    /// Why the engine cannot run work, if it cannot.
    pub unavailable: Option<String>,
}

impl Readiness {
    /// Ready to take work.
    pub fn is_ready(&self) -> bool {
        self.connected && self.synced && !self.draining && self.unavailable.is_none()
    }

    /// Why not ready, for `/readyz`.
    pub fn explain(&self) -> String {
        let mut why = Vec::new();
        if let Some(r) = &self.unavailable {
            why.push(format!("engine unavailable: {r}"));
        }
        if !self.synced {
            why.push("watches not synced".to_owned());
        }
        if !self.connected {
            why.push("not connected to workflow-api".to_owned());
        }
        if self.draining {
            why.push("draining".to_owned());
        }
        if why.is_empty() {
            "ok".to_owned()
        } else {
            why.join("; ")
        }
    }
}

/// Shared readiness; the admin port and tonic-health subscribe to changes.
#[derive(Debug, Clone)]
pub struct Health {
    tx: watch::Sender<Readiness>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(Readiness::default()),
        }
    }
}

impl Health {
    /// Changes readiness facts; subscribers see the result.
    pub fn update(&self, f: impl FnOnce(&mut Readiness)) {
        self.tx.send_modify(f);
    }

    /// The current facts.
    pub fn get(&self) -> Readiness {
        self.tx.borrow().clone()
    }

    /// A receiver of changes.
    pub fn subscribe(&self) -> watch::Receiver<Readiness> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_everything_holds() {
        let mut r = Readiness {
            connected: true,
            synced: true,
            ..Default::default()
        };
        assert!(r.is_ready());
        assert_eq!(r.explain(), "ok");
        r.draining = true;
        assert!(!r.is_ready());
        r.draining = false;
        r.unavailable = Some("tekton.dev/v1 pipelineruns not served".into());
        assert!(!r.is_ready());
        assert!(r.explain().contains("tekton.dev"));
    }
}
