//! WatchWorkflowExecutions: the index's change feed as a server stream.
//!
//! Without a resume token: every matching execution as ADDED, then SYNCED, then changes.
//! With a token from this server instance that the change ring still covers: the missed
//! changes, then live ones. Otherwise RESET, then the full state and SYNCED again. Heartbeats
//! carry the latest token so an idle client can resume close to where it was.

use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use wfe_core::Engine;
use wfe_k8s::WorkflowExecution;
use wfe_proto::v1::{self, WatchEventType};

use super::WatchStream;
use crate::convert::{execution_to_proto, ts};
use crate::ctx::SharedCtx;
use crate::error::{Error, Result};
use crate::store::{Change, ChangeKind};

/// What a watcher wants to see.
#[derive(Debug, Clone)]
struct Filter {
    namespace: String,
    target: String,
    /// None: every cluster.
    cluster: Option<String>,
    engine: String,
    rr: String,
}

impl Filter {
    fn matches(&self, o: &WorkflowExecution) -> bool {
        o.metadata.namespace.as_deref() == Some(self.namespace.as_str())
            && (self.target.is_empty() || o.spec.target_resource == self.target)
            && self
                .cluster
                .as_ref()
                .is_none_or(|c| o.spec.cluster_id == *c)
            && (self.engine.is_empty() || o.spec.execution_engine == self.engine)
            && (self.rr.is_empty() || o.spec.remediation_request_ref.name == self.rr)
    }
}

fn token(epoch: &str, seq: u64) -> String {
    format!("{epoch}.{seq}")
}

fn event(
    kind: WatchEventType,
    obj: Option<&WorkflowExecution>,
    tok: String,
) -> v1::WatchWorkflowExecutionsResponse {
    v1::WatchWorkflowExecutionsResponse {
        r#type: kind as i32,
        execution: obj.map(execution_to_proto),
        resume_token: tok,
        sent_at: Some(ts(Timestamp::now())),
    }
}

/// Starts a watch stream.
pub fn watch(
    ctx: SharedCtx,
    r: v1::WatchWorkflowExecutionsRequest,
    shutdown: CancellationToken,
) -> Result<WatchStream> {
    let namespace = ctx.namespace_of(&r.namespace)?;
    if !r.execution_engine.is_empty() && Engine::parse(&r.execution_engine).is_err() {
        return Err(Error::field(
            "execution_engine",
            "must be \"job\" or \"tekton\"",
        ));
    }
    let filter = Filter {
        namespace,
        target: r.target_resource,
        cluster: r.cluster_id,
        engine: r.execution_engine,
        rr: r.remediation_request_name,
    };
    let resume = parse_resume(ctx.index.epoch(), &r.resume_token)?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(pump(ctx, filter, resume, tx, shutdown.clone()));
    Ok(Box::pin(
        ReceiverStream::new(rx).take_until(shutdown.cancelled_owned()),
    ))
}

/// `Some(seq)` for a token of this instance, `Some(u64::MAX)` (forces RESET) for another's.
fn parse_resume(epoch: &str, tok: &str) -> Result<Option<u64>> {
    if tok.is_empty() {
        return Ok(None);
    }
    let (e, seq) = tok
        .split_once('.')
        .ok_or_else(|| Error::field("resume_token", "invalid resume token"))?;
    let seq: u64 = seq
        .parse()
        .map_err(|_| Error::field("resume_token", "invalid resume token"))?;
    Ok(Some(if e == epoch { seq } else { u64::MAX }))
}

type Tx = mpsc::Sender<Result<v1::WatchWorkflowExecutionsResponse, Status>>;

async fn send(tx: &Tx, ev: v1::WatchWorkflowExecutionsResponse) -> bool {
    tx.send(Ok(ev)).await.is_ok()
}

/// Sends the full state (ADDED…, SYNCED) and returns the receiver and the last sequence.
async fn snapshot(
    ctx: &SharedCtx,
    f: &Filter,
    tx: &Tx,
) -> Option<(broadcast::Receiver<Change>, u64)> {
    let (rx, seq, objs) = ctx.index.subscribe();
    let epoch = ctx.index.epoch();
    let mut objs: Vec<Arc<WorkflowExecution>> = objs.into_iter().filter(|o| f.matches(o)).collect();
    objs.sort_by_key(|o| o.metadata.creation_timestamp.as_ref().map(|t| t.0));
    for o in objs {
        if !send(
            tx,
            event(WatchEventType::Added, Some(&o), token(epoch, seq)),
        )
        .await
        {
            return None;
        }
    }
    send(tx, event(WatchEventType::Synced, None, token(epoch, seq)))
        .await
        .then_some((rx, seq))
}

async fn start(
    ctx: &SharedCtx,
    f: &Filter,
    resume: Option<u64>,
    tx: &Tx,
) -> Option<(broadcast::Receiver<Change>, u64)> {
    let Some(seq) = resume else {
        return snapshot(ctx, f, tx).await;
    };
    match ctx.index.resume(seq) {
        Ok((rx, last, missed)) => {
            for c in missed {
                if !forward(ctx, f, tx, &c).await {
                    return None;
                }
            }
            Some((rx, last))
        }
        Err(_) => {
            let epoch = ctx.index.epoch();
            if !send(
                tx,
                event(WatchEventType::Reset, None, token(epoch, ctx.index.seq())),
            )
            .await
            {
                return None;
            }
            snapshot(ctx, f, tx).await
        }
    }
}

async fn forward(ctx: &SharedCtx, f: &Filter, tx: &Tx, c: &Change) -> bool {
    if !f.matches(&c.obj) {
        return true;
    }
    let kind = match c.kind {
        ChangeKind::Added => WatchEventType::Added,
        ChangeKind::Modified => WatchEventType::Modified,
        ChangeKind::Deleted => WatchEventType::Deleted,
    };
    send(
        tx,
        event(kind, Some(&c.obj), token(ctx.index.epoch(), c.seq)),
    )
    .await
}

async fn pump(ctx: SharedCtx, f: Filter, resume: Option<u64>, tx: Tx, shutdown: CancellationToken) {
    let Some((mut rx, mut last)) = start(&ctx, &f, resume, &tx).await else {
        return;
    };
    let mut beat = tokio::time::interval(ctx.config.watch_heartbeat);
    beat.reset();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = beat.tick() => {
                if !send(&tx, event(WatchEventType::Heartbeat, None, token(ctx.index.epoch(), last))).await {
                    return;
                }
            }
            c = rx.recv() => match c {
                Ok(c) if c.seq <= last => {}
                Ok(c) => {
                    last = c.seq;
                    if !forward(&ctx, &f, &tx, &c).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // This stream fell too far behind: start over from the full state.
                    let Some((r, l)) = start(&ctx, &f, Some(u64::MAX), &tx).await else { return };
                    (rx, last) = (r, l);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens() {
        assert_eq!(parse_resume("e1", "").unwrap(), None);
        assert_eq!(parse_resume("e1", "e1.7").unwrap(), Some(7));
        assert_eq!(parse_resume("e1", "e0.7").unwrap(), Some(u64::MAX));
        assert!(parse_resume("e1", "junk").is_err());
    }
}
