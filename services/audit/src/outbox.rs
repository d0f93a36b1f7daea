//! A durable on-disk outbox in front of DataStorage.
//!
//! One file per event under `pending/`, written to a temporary name, synced,
//! then renamed, so a crash leaves either the whole event or nothing. Names
//! start with a sequence number, so delivery keeps the order events were
//! recorded in. Delivered events are removed; events DataStorage refuses (or
//! that fail its contract, see [`crate::contract`]) move to `rejected/`, each
//! with a `.reason` file, where an operator can read them: nothing accepted is
//! silently lost.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use crate::{AuditError, AuditEvent};

/// The outbox directory.
#[derive(Debug)]
pub struct Outbox {
    pending: PathBuf,
    rejected: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Ids of the events waiting in `pending/`, to drop a duplicate enqueue.
    ids: HashSet<String>,
}

/// An event read back from the outbox, with the file that holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file under `pending/`.
    pub path: PathBuf,
    /// The event.
    pub event: AuditEvent,
}

impl Outbox {
    /// Opens the outbox in `dir`, creating it, and recovers what a previous
    /// process left in it.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, AuditError> {
        let pending = dir.as_ref().join("pending");
        let rejected = dir.as_ref().join("rejected");
        tokio::fs::create_dir_all(&pending).await?;
        tokio::fs::create_dir_all(&rejected).await?;
        let names = list_events(&pending).await?;
        let next_seq = names
            .iter()
            .filter_map(|n| parse_name(n).map(|(s, _)| s + 1))
            .max()
            .unwrap_or(0);
        let ids = names
            .iter()
            .filter_map(|n| parse_name(n).map(|(_, id)| id.to_owned()))
            .collect();
        Ok(Self {
            pending,
            rejected,
            state: Mutex::new(State { next_seq, ids }),
        })
    }

    /// Stores the event durably; returns false when an event with its id is
    /// already waiting.
    pub async fn enqueue(&self, event: &AuditEvent) -> Result<bool, AuditError> {
        let body = serde_json::to_vec(event)?;
        let mut state = self.state.lock().await;
        if state.ids.contains(&event.event_id) {
            return Ok(false);
        }
        let name = format!("{:020}-{}.json", state.next_seq, event.event_id);
        write_atomically(&self.pending, &name, &body).await?;
        state.next_seq += 1;
        state.ids.insert(event.event_id.clone());
        Ok(true)
    }

    /// The oldest `max` events. A file that cannot be parsed is moved to
    /// `rejected/` rather than blocking the queue forever.
    pub async fn oldest(&self, max: usize) -> Result<Vec<Entry>, AuditError> {
        let mut entries = Vec::new();
        for name in list_events(&self.pending).await?.into_iter().take(max) {
            let path = self.pending.join(&name);
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            match serde_json::from_slice(&bytes) {
                Ok(event) => entries.push(Entry { path, event }),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable audit outbox entry moved to rejected/");
                    self.move_to_rejected(&path).await?;
                }
            }
        }
        Ok(entries)
    }

    /// Removes delivered entries.
    pub async fn remove(&self, entries: &[Entry]) -> Result<(), AuditError> {
        let mut state = self.state.lock().await;
        for entry in entries {
            match tokio::fs::remove_file(&entry.path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            state.ids.remove(&entry.event.event_id);
        }
        Ok(())
    }

    /// Moves entries that cannot be delivered to `rejected/`, each with a
    /// `<name>.reason` file beside it saying why.
    pub async fn reject(&self, entries: &[Entry], reason: &str) -> Result<(), AuditError> {
        let mut state = self.state.lock().await;
        for entry in entries {
            if let Some(name) = entry.path.file_name().and_then(|n| n.to_str()) {
                let why = format!("{reason}\n");
                write_atomically(&self.rejected, &format!("{name}.reason"), why.as_bytes()).await?;
            }
            self.move_to_rejected(&entry.path).await?;
            state.ids.remove(&entry.event.event_id);
        }
        Ok(())
    }

    /// The directory of events set aside.
    pub fn rejected_dir(&self) -> &Path {
        &self.rejected
    }

    /// Events waiting for delivery.
    pub async fn depth(&self) -> usize {
        self.state.lock().await.ids.len()
    }

    async fn move_to_rejected(&self, path: &Path) -> Result<(), AuditError> {
        let Some(name) = path.file_name() else {
            return Ok(());
        };
        match tokio::fs::rename(path, self.rejected.join(name)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// `<seq>-<event id>.json` → (seq, event id).
fn parse_name(name: &str) -> Option<(u64, &str)> {
    let stem = name.strip_suffix(".json")?;
    let (seq, id) = stem.split_once('-')?;
    Some((seq.parse().ok()?, id))
}

/// Event file names in `dir`, oldest first (temporary files excluded).
async fn list_events(dir: &Path) -> Result<Vec<String>, AuditError> {
    let mut names = Vec::new();
    let mut read = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = read.next_entry().await? {
        if let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| parse_name(n).is_some())
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `body` to `dir/name` so that a crash leaves the whole file or none.
async fn write_atomically(dir: &Path, name: &str, body: &[u8]) -> Result<(), AuditError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let file_path = dir.join(name);
    {
        let mut file = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut file, body).await?;
        file.sync_all().await?;
    }
    tokio::fs::rename(&tmp, &file_path).await?;
    // The rename is durable only once the directory entry is synced.
    tokio::fs::File::open(dir).await?.sync_all().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        assert_eq!(
            parse_name("00000000000000000007-abc.json"),
            Some((7, "abc"))
        );
        assert_eq!(parse_name(".00000000000000000007-abc.json.tmp"), None);
        assert_eq!(parse_name("junk"), None);
    }
}
