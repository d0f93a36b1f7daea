//! The components of `wfe dev` as child processes: started with their output prefixed,
//! restarted with a backoff when one dies, stopped newest first.
//!
//! ```text
//!  spawn ──► running ──exit──► "[wfe dev] <name> exited (…); restarting in <delay>"
//!               ▲                          │ sleep(delay), unless Ctrl-C/SIGTERM
//!               └────── respawn (same args) ◄┘
//! ```
//!
//! A component that dies again soon after a restart waits twice as long each time (up to
//! the maximum); one that ran for at least the maximum starts again from the base delay.
//! Each component is its own process group, so a terminal's Ctrl-C reaches only `wfe dev`,
//! which then stops the components itself instead of seeing them die and restarting them.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// When `wfe dev` restarts a component that died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// The delay before the first restart.
    pub base: Duration,
    /// The longest delay; a component that ran this long counts as healthy again.
    pub max: Duration,
}

impl RestartPolicy {
    /// After an exit: the component's new count of quick consecutive restarts and the
    /// delay before this restart (`base × 2^(n−1)`, at most `max`). A run of at least
    /// `max` resets the count.
    pub fn after_exit(&self, restarts: u32, uptime: Duration) -> (u32, Duration) {
        let n = if uptime >= self.max { 1 } else { restarts + 1 };
        let factor = 2u32.saturating_pow(n - 1);
        (n, self.base.saturating_mul(factor).min(self.max))
    }
}

/// A running component and how to start it again.
pub struct Component {
    /// Its name in `wfe dev`'s output.
    pub name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Child,
    started: Instant,
    restarts: u32,
}

impl Component {
    /// Starts `wfe <args>` with its output prefixed by `name`.
    pub fn spawn(name: &'static str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let child = start(name, &args, &env)?;
        Ok(Self {
            name,
            args,
            env,
            child,
            started: Instant::now(),
            restarts: 0,
        })
    }

    /// The exit status, once it exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait().context("checking a component")
    }

    fn respawn(&mut self) -> anyhow::Result<()> {
        self.child = start(self.name, &self.args, &self.env)?;
        self.started = Instant::now();
        Ok(())
    }

    /// SIGTERM, then a kill after `grace`.
    async fn stop(&mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn start(name: &'static str, args: &[String], env: &[(String, String)]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the wfe executable")?;
    let mut child = Command::new(exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(prefix_lines(name, out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(prefix_lines(name, err));
    }
    let pid = child.id().map_or_else(|| "?".to_owned(), |p| p.to_string());
    eprintln!("[wfe dev] started {name} (pid {pid})");
    Ok(child)
}

async fn prefix_lines(name: &'static str, stream: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{name:>12}] {line}");
    }
}

/// Keeps the components running until Ctrl-C or SIGTERM: one that exits is started again
/// after the policy's delay, saying so on stderr.
pub async fn supervise(components: &mut [Component], policy: RestartPolicy) -> anyhow::Result<()> {
    let shutdown = crate::dev::wait_for_shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (i, status) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            exit = first_exit(components) => exit?,
        };
        let c = &mut components[i];
        let uptime = c.started.elapsed();
        let (restarts, delay) = policy.after_exit(c.restarts, uptime);
        c.restarts = restarts;
        eprintln!(
            "[wfe dev] {} exited ({status}) after {:?}; restarting in {delay:?} (restart {restarts} in a row)",
            c.name,
            round_ms(uptime),
        );
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        c.respawn()?;
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The index and exit status of the first component found exited.
async fn first_exit(components: &mut [Component]) -> anyhow::Result<(usize, String)> {
    loop {
        for (i, c) in components.iter_mut().enumerate() {
            if let Some(status) = c.exited()? {
                return Ok((i, status.to_string()));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM to every component, newest first, then a kill after a grace period.
pub async fn stop_all(components: &mut [Component]) {
    for c in components.iter_mut().rev() {
        c.stop(Duration::from_secs(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_until_the_maximum_and_reset_after_a_healthy_run() {
        let p = RestartPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        let quick = Duration::from_secs(2);
        let cases = [
            // (restarts so far, uptime) → (restarts, delay)
            ((0, quick), (1, 1)),
            ((1, quick), (2, 2)),
            ((2, quick), (3, 4)),
            ((5, quick), (6, 30)),
            ((40, quick), (41, 30)),
            ((6, Duration::from_secs(30)), (1, 1)),
            ((6, Duration::from_secs(3600)), (1, 1)),
        ];
        for ((n, uptime), (want_n, want_secs)) in cases {
            assert_eq!(
                p.after_exit(n, uptime),
                (want_n, Duration::from_secs(want_secs)),
                "{n} restarts, up {uptime:?}"
            );
        }
    }
}
