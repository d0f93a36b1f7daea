//! The outbox delivery worker: sends the outbox to DataStorage in batches, in the form its
//! contract accepts ([`crate::wire`]), retrying with backoff while DataStorage is away.
//!
//! DataStorage validates every event of a batch and refuses the whole batch (400) when one
//! fails. A refused batch is therefore halved, and each half sent again, until the refused
//! events stand alone: those move to the outbox's `rejected/` (with the reason beside them)
//! and every other event is delivered. One bad event among `n` costs about `2·log2(n)`
//! extra requests. An event that fails our own contract check ([`crate::contract`]) is set
//! aside before it is sent, so it never takes a batch down with it.
//!
//! ```text
//!  outbox (oldest N) ──► wire::requests ──► contract::validate ──✗──► rejected/
//!                                               │ ✓
//!                                               ▼
//!                         POST batch ──201──► removed from pending/
//!                             │ 4xx: halve and resend each half; a lone event ──► rejected/
//!                             │ 5xx/timeout: stop, back off, retry from the oldest
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::auditor::{AuditConfig, AuditStats};
use crate::outbox::{Entry, Outbox};
use crate::sink::{DataStorageSink, DeliveryError};
use crate::{AuditError, contract, wire};

/// Delivers the outbox to DataStorage. Spawn [`DeliveryWorker::run`].
#[derive(Debug)]
pub struct DeliveryWorker {
    outbox: Arc<Outbox>,
    sink: DataStorageSink,
    wake: Arc<Notify>,
    stats: Arc<AuditStats>,
    config: AuditConfig,
    shutdown: watch::Receiver<bool>,
}

/// An outbox entry with the requests DataStorage receives for it.
struct Prepared {
    entry: Entry,
    requests: Vec<Value>,
}

impl DeliveryWorker {
    pub(crate) fn new(
        outbox: Arc<Outbox>,
        sink: DataStorageSink,
        wake: Arc<Notify>,
        stats: Arc<AuditStats>,
        config: AuditConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            outbox,
            sink,
            wake,
            stats,
            config,
            shutdown,
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self) {
        let mut backoff = self.config.initial_backoff;
        loop {
            match self.deliver_once().await {
                Ok(0) => {
                    backoff = self.config.initial_backoff;
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = self.shutdown.changed() => return,
                    }
                }
                Ok(_) => backoff = self.config.initial_backoff,
                Err(e) => {
                    self.stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?backoff, "audit delivery failed; events stay in the outbox");
                    let delay = jittered(backoff);
                    backoff = (backoff * 2).min(self.config.max_backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.changed() => return,
                    }
                }
            }
            if *self.shutdown.borrow() {
                return;
            }
        }
    }

    /// Delivers (or sets aside) the oldest batch; returns how many events left `pending/`.
    async fn deliver_once(&self) -> Result<usize, DeliveryError> {
        let batch = self
            .outbox
            .oldest(self.config.batch_size)
            .await
            .map_err(io_retry)?;
        let taken = batch.len();
        if taken == 0 {
            return Ok(0);
        }
        let mut ready = Vec::with_capacity(taken);
        for entry in batch {
            let requests = wire::requests(&entry.event);
            match check(&requests) {
                Ok(()) => ready.push(Prepared { entry, requests }),
                Err(why) => {
                    self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                    self.set_aside(&entry, &format!("fails the DataStorage contract: {why}"))
                        .await?;
                }
            }
        }
        let result = self.send_splitting(&ready).await;
        self.stats
            .outbox_depth
            .store(self.outbox.depth().await as u64, Ordering::Relaxed);
        result.map(|()| taken)
    }

    /// Sends `ready` in one request; a refused part is halved and each half sent again, so
    /// only the refused events are set aside. Stops at the first retryable failure (what was
    /// delivered so far has left the outbox).
    async fn send_splitting(&self, ready: &[Prepared]) -> Result<(), DeliveryError> {
        // Parts still to send; the last is sent next, so the oldest events go first.
        let mut parts: Vec<&[Prepared]> = vec![ready];
        while let Some(part) = parts.pop() {
            if part.is_empty() {
                continue;
            }
            let body: Vec<Value> = part.iter().flat_map(|p| p.requests.clone()).collect();
            match self.sink.deliver(&body).await {
                Ok(()) => {
                    let entries: Vec<Entry> = part.iter().map(|p| p.entry.clone()).collect();
                    self.outbox.remove(&entries).await.map_err(io_retry)?;
                    self.stats
                        .delivered
                        .fetch_add(part.len() as u64, Ordering::Relaxed);
                }
                Err(DeliveryError::Rejected(why)) if part.len() == 1 => {
                    self.set_aside(&part[0].entry, &format!("refused by DataStorage: {why}"))
                        .await?;
                }
                Err(DeliveryError::Rejected(why)) => {
                    self.stats.split_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(events = part.len(), reason = %why, "DataStorage refused an audit batch; splitting it to find the refused events");
                    let (older, newer) = part.split_at(part.len() / 2);
                    parts.push(newer);
                    parts.push(older);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves one event to `rejected/`, with the reason, and counts it.
    async fn set_aside(&self, entry: &Entry, why: &str) -> Result<(), DeliveryError> {
        let e = &entry.event;
        tracing::error!(
            execution = %e.resource_id,
            namespace = %e.namespace,
            event = %e.event_type,
            event_id = %e.event_id,
            reason = %why,
            "audit event not delivered to DataStorage; kept under rejected/"
        );
        self.outbox
            .reject(std::slice::from_ref(entry), why)
            .await
            .map_err(io_retry)?;
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Checks every request of an event against the contract; the violations, joined.
fn check(requests: &[Value]) -> Result<(), String> {
    let violations: Vec<String> = requests
        .iter()
        .filter_map(|r| contract::validate(r).err())
        .flatten()
        .map(|v| v.to_string())
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations.join("; "))
    }
}

fn io_retry(e: AuditError) -> DeliveryError {
    DeliveryError::Retryable(e.to_string())
}

/// ±10 % jitter so many API replicas do not retry in lockstep.
fn jittered(d: Duration) -> Duration {
    let factor = 0.9 + rand::random::<f64>() * 0.2;
    d.mul_f64(factor)
}
