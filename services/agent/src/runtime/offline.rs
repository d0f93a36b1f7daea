//! Between sessions: keep absorbing observations and finished tasks, so the next Hello
//! carries the latest state.

use super::*;

impl Agent {
    /// Waits `delay` before the next connection attempt (or until shutdown).
    pub(super) async fn wait_offline(&mut self, delay: Duration, shutdown: &CancellationToken) {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = shutdown.cancelled() => return,
                Some(r) = self.reports.recv() => { let _ = self.intake(r); }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(done) = done {
                        let _ = self.on_done(done, None).await;
                    }
                }
            }
        }
    }

    /// Draining with no session: let in-flight work finish, bounded by the drain timeout.
    pub(super) async fn finish_offline(&mut self) {
        let deadline = self.drain_deadline.unwrap_or_else(Instant::now);
        while !self.tasks.is_empty() {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                Some(done) = self.tasks.join_next() => {
                    if let Ok(done) = done {
                        let _ = self.on_done(done, None).await;
                    }
                }
            }
        }
    }
}
