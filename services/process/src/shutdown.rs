//! The one shutdown signal: SIGTERM (what Kubernetes sends) or Ctrl-C (a terminal).

use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGTERM or Ctrl-C. Where SIGTERM cannot be watched (not unix,
/// or the handler cannot be installed) Ctrl-C alone.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Cancels `token` on the first signal: the drain begins.
pub async fn cancel_on_signal(token: CancellationToken) {
    signal().await;
    tracing::info!("shutdown signal received; draining");
    token.cancel();
}

/// A token cancelled on the first signal (the drain); a second signal exits at once
/// with 130, for an operator whose drain takes too long.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        cancel_on_signal(t).await;
        signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}
