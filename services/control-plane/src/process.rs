//! The control plane's processes: `kubecp <command> <flags>`, output to a log
//! file, gone when their supervisor is (on drop, and through kubecp's own
//! parent watch when the supervisor is SIGKILLed), and remembered in a pid file
//! so a restarted supervisor first ends what a killed one left behind.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A running control-plane process.
#[derive(Debug)]
pub struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `kubecp <command> <args>` with `env`, logging to `<log_dir>/<command>.log`
    /// (appended), and records its pid in `<log_dir>/pids`.
    pub fn spawn(
        kubecp: &Path,
        name: &'static str,
        args: &[String],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(kubecp)
            .arg(name)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("KUBECP_EXIT_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {name}", kubecp.display()))?;
        if let Some(pid) = child.id() {
            let pids = log_dir.join("pids");
            let mut known = std::fs::read_to_string(&pids).unwrap_or_default();
            known.push_str(&format!("{pid}\n"));
            std::fs::write(&pids, known).context("recording the pid")?;
        }
        Ok(Self { name, child, log })
    }

    /// Fails, with the end of its log, when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.log_tail(30));
        }
        Ok(())
    }

    /// Resolves when the process exits, with a description.
    pub async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => format!("{} exited ({status})", self.name),
            Err(error) => format!("{} could not be waited for: {error}", self.name),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            signal(pid, "TERM").await;
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

async fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .await;
}

/// Ends the kubecp processes an earlier supervisor of `log_dir` left running (it was
/// SIGKILLed: they would still hold the data directory and the ports, and answer for a
/// moment as if the cluster were up), and waits until they are gone. Blocking: it runs
/// before anything else, at start, and from a test harness's kill.
pub fn reap_leftovers(log_dir: &Path) -> anyhow::Result<()> {
    let pids = log_dir.join("pids");
    let known = std::fs::read_to_string(&pids).unwrap_or_default();
    let ours: Vec<u32> = known
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid| is_kubecp(*pid))
        .collect();
    for pid in &ours {
        tracing::info!(pid, "ending a control-plane process left by an earlier run");
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ours.iter().any(|pid| is_kubecp(*pid)) {
        if std::time::Instant::now() > deadline {
            bail!("control-plane processes {ours:?} did not exit after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&pids);
    Ok(())
}

/// Whether `pid` is a live kubecp process (a recycled pid is someone else's).
fn is_kubecp(pid: u32) -> bool {
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "));
    alive
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("kubecp"))
}
