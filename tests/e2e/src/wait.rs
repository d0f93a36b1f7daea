//! Polling with a deadline: the only way the suite waits.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;

/// How often conditions are re-checked.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, failing after `timeout` with `what` and
/// the last observation `check` chose to report through `Err`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("(no observation)");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last error: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}
