//! One Pod watch shared by the Job controller and the kubelet.
//!
//! Each used to run its own watch of every Pod, so the server rendered, and the client
//! decoded into a typed `Pod`, every Pod change twice. One reflector now keeps the cache
//! and the owner index, and hands each change to both controllers as their triggers:
//! the Job controller sees every touched Pod (deletes included, a gone Pod may need a
//! replacement), the kubelet the applied ones (as `Controller::new` would give it).

use std::sync::Arc;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pod_index::OwnerIndex;

/// Pending triggers per controller before the watch waits for it to catch up.
const TRIGGER_BUFFER: usize = 1024;

/// The shared cache and each controller's trigger stream.
pub(crate) struct PodFeed {
    /// Every Pod, as the watch last saw it.
    pub(crate) store: Store<Pod>,
    /// Pods by controller owner UID, over `store`.
    pub(crate) by_owner: OwnerIndex,
    /// Created, changed and deleted Pods (the Job controller's owned-object trigger).
    pub(crate) touched: mpsc::Receiver<Arc<Pod>>,
    /// Created and changed Pods (the kubelet's trigger).
    pub(crate) applied: mpsc::Receiver<Arc<Pod>>,
}

/// Starts the watch; it runs until `token` is cancelled.
pub(crate) fn start(client: &Client, token: &CancellationToken) -> (PodFeed, JoinHandle<()>) {
    let (store, writer) = reflector::store();
    let by_owner = OwnerIndex::default();
    let (touched_tx, touched) = mpsc::channel(TRIGGER_BUFFER);
    let (applied_tx, applied) = mpsc::channel(TRIGGER_BUFFER);
    let events = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .boxed();
    let fanout = Fanout {
        store: store.clone(),
        by_owner: by_owner.clone(),
        touched: touched_tx,
        applied: applied_tx,
    };
    let task = tokio::spawn(fanout.run(events, token.clone()));
    let feed = PodFeed {
        store,
        by_owner,
        touched,
        applied,
    };
    (feed, task)
}

type Events = futures::stream::BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>;

struct Fanout {
    store: Store<Pod>,
    by_owner: OwnerIndex,
    touched: mpsc::Sender<Arc<Pod>>,
    applied: mpsc::Sender<Arc<Pod>>,
}

impl Fanout {
    async fn run(mut self, mut events: Events, token: CancellationToken) {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                item = events.next() => match item {
                    Some(Ok(event)) => self.forward(event).await,
                    Some(Err(error)) => tracing::debug!(%error, "pod watch error (retrying)"),
                    None => return,
                },
            }
        }
    }

    /// Index the change (the store already holds it), then trigger the controllers. A
    /// controller that stopped drops its receiver; the other keeps being fed.
    async fn forward(&mut self, event: watcher::Event<Pod>) {
        self.by_owner.observe(&event, &self.store);
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let pod = Arc::new(pod);
                let _ = self.touched.send(pod.clone()).await;
                let _ = self.applied.send(pod).await;
            }
            watcher::Event::Delete(pod) => {
                let _ = self.touched.send(Arc::new(pod)).await;
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }
}
