//! Where events end up: a JSON-lines file, or DataStorage's batch endpoint.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::{AuditError, AuditEvent};

/// Appends events to a file, one JSON object a line, and drops an event whose
/// id it has already written (so a regenerated event is not recorded twice,
/// also across restarts: the ids are read back at open).
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    state: Mutex<JsonlState>,
}

#[derive(Debug)]
struct JsonlState {
    file: tokio::fs::File,
    seen: HashSet<String>,
}

impl JsonlSink {
    /// Opens (or creates) the file and reads the ids it already holds.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let seen = read_ids(&path).await?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await?;
        Ok(Self {
            path,
            state: Mutex::new(JsonlState { file, seen }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the event unless its id was written before; returns whether it wrote.
    /// The line is flushed and synced before this returns.
    pub async fn write(&self, event: &AuditEvent) -> Result<bool, AuditError> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut state = self.state.lock().await;
        if state.seen.contains(&event.event_id) {
            return Ok(false);
        }
        state.file.write_all(&line).await?;
        state.file.sync_data().await?;
        state.seen.insert(event.event_id.clone());
        Ok(true)
    }
}

/// Ids of the events already in a JSON-lines file; a torn last line (a crash
/// mid-write) is ignored.
async fn read_ids(path: &Path) -> Result<HashSet<String>, AuditError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v.get("event_id")
                .and_then(|i| i.as_str())
                .map(str::to_owned)
        })
        .collect())
}

/// How a batch delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again later: network error, timeout, 5xx, 408, 429.
    #[error("retryable delivery failure: {0}")]
    Retryable(String),
    /// DataStorage refused the batch (4xx): sending it again cannot help. It refuses a whole
    /// batch when one event fails its validation.
    #[error("DataStorage rejected the batch: {0}")]
    Rejected(String),
}

/// Posts batches to DataStorage: `POST {base}/api/v1/audit/events/batch` with a
/// JSON array of events.
#[derive(Debug, Clone)]
pub struct DataStorageSink {
    client: reqwest::Client,
    endpoint: String,
}

impl DataStorageSink {
    /// A sink for the DataStorage at `base_url` (e.g. `http://data-storage:8080`).
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| DeliveryError::Rejected(format!("cannot build HTTP client: {e}")))?;
        let endpoint = format!(
            "{}/api/v1/audit/events/batch",
            base_url.trim_end_matches('/')
        );
        Ok(Self { client, endpoint })
    }

    /// Delivers one batch of `AuditEventRequest`s (see [`crate::wire`]). DataStorage takes a
    /// batch whole or refuses it whole.
    pub async fn deliver(&self, batch: &[serde_json::Value]) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(&self.endpoint)
            .json(batch)
            .send()
            .await
            .map_err(|e| DeliveryError::Retryable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let what = format!("{status}: {}", body.chars().take(300).collect::<String>());
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(DeliveryError::Retryable(what))
        } else {
            Err(DeliveryError::Rejected(what))
        }
    }
}
