//! Optional persistence to a data directory: a snapshot plus an append-only event log.
//!
//! Files: `snapshot.jsonl` (first line `{"rv":N}`, then one stored object per line) and
//! `log.jsonl` (one committed change per line). On start the snapshot is loaded, the log replayed
//! (a torn last line from a crash is ignored), a fresh snapshot written atomically (temp file +
//! rename) and the log truncated. A dedicated thread appends every committed event in commit
//! order and flushes after each batch, so:
//!
//! - a clean shutdown ([`crate::Sandbox::shutdown`], SIGTERM/Ctrl-C of the binary) loses nothing
//!   (the log is drained and fsynced);
//! - a SIGKILL loses at most the writes acknowledged in the last flush window (about a millisecond),
//!   since flushed data sits in the OS page cache;
//! - a power loss can lose what was not fsynced (we fsync on snapshot and shutdown only).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::storage::{EventType, ObjKey, ResKey, Store, StoredEvent};

/// Log lines between snapshots.
const COMPACT_AFTER: usize = 50_000;

/// Persistence failures.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A snapshot line that is not valid.
    #[error("{path}: corrupt snapshot line {line}: {source}")]
    Corrupt {
        /// File involved.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Cause.
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    rv: u64,
    #[serde(rename = "type")]
    kind: EventType,
    group: String,
    plural: String,
    namespace: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    rv: u64,
}

/// Running persistence: the writer thread and its channel.
#[derive(Debug)]
pub struct Persistence {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Persistence {
    /// Load `dir` into `store`, then persist every future write there.
    pub fn open(dir: &Path, store: &Arc<Store>) -> Result<Self, PersistError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let (rv, objects) = load(dir)?;
        store.restore(rv, objects);
        write_snapshot(dir, store)?;
        let log_path = dir.join("log.jsonl");
        let log = File::create(&log_path).map_err(io(&log_path))?;
        let (tx, rx) = mpsc::unbounded_channel();
        store.add_sink(tx);
        let (dir, store) = (dir.to_path_buf(), store.clone());
        let thread = std::thread::Builder::new()
            .name("sandbox-persist".into())
            .spawn(move || writer(dir, store, log, rx))
            .map_err(io(&log_path))?;
        Ok(Self {
            thread: Some(thread),
        })
    }

    /// Wait until the writer drained everything (call after the store's sinks were closed).
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Recovered state: the rv counter and every object.
type Loaded = (u64, Vec<(ResKey, ObjKey, Value)>);

fn load(dir: &Path) -> Result<Loaded, PersistError> {
    let mut objects = std::collections::BTreeMap::new();
    let mut rv = 0;
    let snap = dir.join("snapshot.jsonl");
    if snap.exists() {
        let file = File::open(&snap).map_err(io(&snap))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io(&snap))?;
            let corrupt = |source| PersistError::Corrupt {
                path: snap.clone(),
                line: i + 1,
                source,
            };
            if i == 0 {
                rv = serde_json::from_str::<Header>(&line).map_err(corrupt)?.rv;
                continue;
            }
            let r: Record = serde_json::from_str(&line).map_err(corrupt)?;
            objects.insert(
                (
                    ResKey::new(&r.group, &r.plural),
                    ObjKey::new(&r.namespace, &r.name),
                ),
                r.object.unwrap_or(Value::Null),
            );
        }
    }
    let log = dir.join("log.jsonl");
    if log.exists() {
        let file = File::open(&log).map_err(io(&log))?;
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            // A torn final line (crash mid-write) ends the replay.
            let Ok(r) = serde_json::from_str::<Record>(&line) else {
                break;
            };
            if r.rv <= rv && rv != 0 {
                continue;
            }
            rv = rv.max(r.rv);
            let k = (
                ResKey::new(&r.group, &r.plural),
                ObjKey::new(&r.namespace, &r.name),
            );
            match (r.kind, r.object) {
                (EventType::Deleted, _) | (_, None) => objects.remove(&k),
                (_, Some(obj)) => objects.insert(k, obj),
            };
        }
    }
    Ok((
        rv,
        objects.into_iter().map(|((r, k), v)| (r, k, v)).collect(),
    ))
}

fn write_snapshot(dir: &Path, store: &Store) -> Result<u64, PersistError> {
    let tmp = dir.join("snapshot.jsonl.tmp");
    let (rv, objects) = store.snapshot();
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut w = BufWriter::new(file);
    let write = || -> std::io::Result<()> {
        serde_json::to_writer(&mut w, &Header { rv })?;
        w.write_all(b"\n")?;
        for (res, key, obj) in objects {
            let r = Record {
                rv,
                kind: EventType::Added,
                group: res.group.to_string(),
                plural: res.plural.to_string(),
                namespace: key.namespace,
                name: key.name,
                object: Some((*obj).clone()),
            };
            serde_json::to_writer(&mut w, &r)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        w.get_ref().sync_all()
    };
    write().map_err(io(&tmp))?;
    let snap = dir.join("snapshot.jsonl");
    fs::rename(&tmp, &snap).map_err(io(&snap))?;
    Ok(rv)
}

fn record(e: &StoredEvent) -> Record {
    Record {
        rv: e.rv,
        kind: e.kind,
        group: e.res.group.to_string(),
        plural: e.res.plural.to_string(),
        namespace: e.key.namespace.clone(),
        name: e.key.name.clone(),
        object: (e.kind != EventType::Deleted).then(|| (*e.object).clone()),
    }
}

/// Writer thread: append batches, flush per batch, snapshot + truncate every COMPACT_AFTER lines.
fn writer(
    dir: PathBuf,
    store: Arc<Store>,
    log: File,
    mut rx: mpsc::UnboundedReceiver<Arc<StoredEvent>>,
) {
    let log_path = dir.join("log.jsonl");
    let mut out = BufWriter::new(log);
    let (mut lines, mut snapshot_rv) = (0usize, 0u64);
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        for e in batch.iter().filter(|e| e.rv > snapshot_rv) {
            if serde_json::to_writer(&mut out, &record(e)).is_ok() {
                let _ = out.write_all(b"\n");
                lines += 1;
            }
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "sandbox persistence: cannot write the log");
        }
        if lines >= COMPACT_AFTER {
            match write_snapshot(&dir, &store).and_then(|rv| {
                File::create(&log_path)
                    .map(|f| (rv, f))
                    .map_err(io(&log_path))
            }) {
                Ok((rv, f)) => {
                    (snapshot_rv, lines, out) = (rv, 0, BufWriter::new(f));
                }
                Err(e) => tracing::error!(error = %e, "sandbox persistence: snapshot failed"),
            }
        }
    }
    let _ = out.flush();
    let _ = out.get_ref().sync_all();
}
