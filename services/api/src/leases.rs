//! The two kinds of `coordination.k8s.io/v1` Lease the API reads through a reflector:
//! agent liveness ([`crate::dispatch::liveness`]) and target locks ([`crate::lock`]).

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

/// The label telling the kinds apart.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// Keeps `writer`'s store current with the Leases labelled `component`, until `shutdown`.
/// `what` names them in logs.
pub async fn reflect(
    api: Api<Lease>,
    writer: Writer<Lease>,
    component: &str,
    what: &str,
    shutdown: CancellationToken,
) {
    let config = watcher::Config::default().labels(&format!("{COMPONENT_LABEL}={component}"));
    // Only spec, annotations and resourceVersion are read: keep the cached Leases small.
    let leases = watcher(api, config).modify(|l| l.managed_fields_mut().clear());
    let stream = reflector::reflector(writer, leases)
        .default_backoff()
        .touched_objects();
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            next = stream.next() => match next {
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "{what} watch failed; retrying"),
                None => return,
            },
        }
    }
}
