//! Bounded ring of recent events, the window a watch can resume from.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Expired, StoredEvent};

/// Recent events in rv order; older ones are dropped once `cap` is exceeded.
#[derive(Debug)]
pub struct History {
    events: VecDeque<Arc<StoredEvent>>,
    cap: usize,
    /// Every event with rv ≤ this is gone; a watch from an older rv must get 410.
    compacted: u64,
}

impl History {
    /// An empty ring keeping at most `cap` events (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            events: VecDeque::new(),
            cap: cap.max(1),
            compacted: 0,
        }
    }

    /// Append an event (rvs are strictly increasing), evicting the oldest past capacity.
    pub fn push(&mut self, event: Arc<StoredEvent>) {
        self.events.push_back(event);
        while self.events.len() > self.cap {
            if let Some(old) = self.events.pop_front() {
                self.compacted = old.rv;
            }
        }
    }

    /// Forget everything up to `rv` (inclusive).
    pub fn reset(&mut self, rv: u64) {
        self.events.clear();
        self.compacted = rv;
    }

    /// Events with rv > `rv`.
    pub fn since(&self, rv: u64) -> Result<Vec<Arc<StoredEvent>>, Expired> {
        if rv < self.compacted {
            return Err(Expired {
                requested: rv,
                compacted: self.compacted,
            });
        }
        let start = self.events.partition_point(|e| e.rv <= rv);
        Ok(self.events.range(start..).cloned().collect())
    }
}
