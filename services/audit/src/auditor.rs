//! The facade workflow-api records events through, and the outbox delivery worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::delivery::DeliveryWorker;
use crate::outbox::Outbox;
use crate::sink::{DataStorageSink, JsonlSink};
use crate::{AuditError, AuditEvent};

/// Where events go.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// Append to a JSON-lines file (the default).
    JsonlFile(PathBuf),
    /// Deliver to DataStorage through a durable outbox in `outbox_dir`.
    DataStorage {
        /// DataStorage base URL, e.g. `http://data-storage:8080`.
        url: String,
        /// Directory of the on-disk outbox.
        outbox_dir: PathBuf,
    },
}

/// Delivery tuning for the DataStorage sink.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Where events go.
    pub sink: SinkConfig,
    /// Events per batch.
    pub batch_size: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl AuditConfig {
    /// Defaults for a sink (batches of 100, 10 s timeout, 1 s → 30 s backoff, as upstream).
    pub fn new(sink: SinkConfig) -> Self {
        Self {
            sink,
            batch_size: 100,
            request_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Events recorded (after de-duplication).
    pub recorded: AtomicU64,
    /// Events dropped because an event with the same id was already recorded.
    pub duplicates: AtomicU64,
    /// Events delivered to DataStorage.
    pub delivered: AtomicU64,
    /// Failed delivery attempts (batches) that will be retried.
    pub delivery_failures: AtomicU64,
    /// Events set aside under the outbox's `rejected/`: refused by DataStorage, or failing
    /// the contract check before sending (those are also counted in `invalid`).
    pub rejected: AtomicU64,
    /// Events the contract check ([`crate::contract`]) refused before sending.
    pub invalid: AtomicU64,
    /// Batches DataStorage refused that were split to find the refused events.
    pub split_batches: AtomicU64,
    /// Events waiting in the outbox.
    pub outbox_depth: AtomicU64,
}

/// Records audit events durably. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Auditor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    Jsonl {
        sink: JsonlSink,
        stats: Arc<AuditStats>,
    },
    Outbox {
        outbox: Arc<Outbox>,
        wake: Arc<Notify>,
        stats: Arc<AuditStats>,
    },
}

impl Auditor {
    /// Opens the sink. For DataStorage, also returns the delivery worker to
    /// spawn; it runs until `shutdown` turns true, then tries one last flush.
    pub async fn open(
        config: AuditConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Self, Option<DeliveryWorker>), AuditError> {
        let stats = Arc::new(AuditStats::default());
        match config.sink.clone() {
            SinkConfig::JsonlFile(path) => {
                let sink = JsonlSink::open(path).await?;
                Ok((
                    Self {
                        inner: Arc::new(Inner::Jsonl { sink, stats }),
                    },
                    None,
                ))
            }
            SinkConfig::DataStorage { url, outbox_dir } => {
                let outbox = Arc::new(Outbox::open(outbox_dir).await?);
                stats
                    .outbox_depth
                    .store(outbox.depth().await as u64, Ordering::Relaxed);
                let wake = Arc::new(Notify::new());
                let sink = DataStorageSink::new(&url, config.request_timeout)
                    .map_err(|e| AuditError::Io(std::io::Error::other(e.to_string())))?;
                let worker = DeliveryWorker::new(
                    outbox.clone(),
                    sink,
                    wake.clone(),
                    stats.clone(),
                    config,
                    shutdown,
                );
                let inner = Inner::Outbox {
                    outbox,
                    wake,
                    stats,
                };
                Ok((
                    Self {
                        inner: Arc::new(inner),
                    },
                    Some(worker),
                ))
            }
        }
    }

    /// Records an event; returns once it is durable. Returns false when an
    /// event with the same id was already recorded (it is dropped).
    pub async fn record(&self, event: &AuditEvent) -> Result<bool, AuditError> {
        let (written, stats) = match &*self.inner {
            Inner::Jsonl { sink, stats } => (sink.write(event).await?, stats),
            Inner::Outbox {
                outbox,
                wake,
                stats,
            } => {
                let written = outbox.enqueue(event).await?;
                if written {
                    stats.outbox_depth.fetch_add(1, Ordering::Relaxed);
                    wake.notify_one();
                }
                (written, stats)
            }
        };
        let counter = if written {
            &stats.recorded
        } else {
            &stats.duplicates
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(written)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> Arc<AuditStats> {
        match &*self.inner {
            Inner::Jsonl { stats, .. } | Inner::Outbox { stats, .. } => stats.clone(),
        }
    }
}
