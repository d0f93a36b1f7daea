//! One component process: spawned with its log appended to a file, SIGKILLed on
//! request and on drop.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// A process (`wfe <subcommand>` mostly) that can be killed and started again with the
/// same arguments.
#[derive(Debug)]
pub struct Proc {
    name: String,
    exe: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    /// Describes `exe <args>`; nothing runs until [`Proc::spawn`].
    pub fn new(
        name: &str,
        exe: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> Self {
        Self {
            name: name.to_owned(),
            exe: exe.to_owned(),
            args,
            env,
            log,
            child: None,
        }
    }

    /// Starts the process; output goes to the log file (appended, so a restarted
    /// component's log follows its previous life).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let out = self.open_log()?;
        let err = out.try_clone().context("duplicating the log handle")?;
        let child = Command::new(&self.exe)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    fn open_log(&self) -> anyhow::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))
    }

    /// SIGKILL (no drain, no goodbye), then reap it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            // kill() fails only when the child already exited; wait() reaps either way.
            let _ = c.kill();
            c.wait().with_context(|| format!("reaping {}", self.name))?;
        }
        Ok(())
    }

    /// Fails when the process has exited on its own, with the end of its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Some(status) = c.try_wait().context("polling the child")? {
            bail!("{} exited ({status}):\n{}", self.name, self.log_tail(40));
        }
        Ok(())
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
