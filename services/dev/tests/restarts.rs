//! `wfe dev` keeps the stack up: a component whose process dies is started again
//! (saying so on stderr) instead of taking the whole stack down.
//!
//! Runs `wfe dev` on free loopback ports in a temp dir, SIGKILLs the job-agent it
//! started, and waits for a new job-agent process serving its admin port again.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    /// The next stderr line matching `pred`, within `timeout`.
    fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no such line within {timeout:?}; wfe dev said:\n{}",
                    self.tail()
                ),
            }
        }
    }

    fn tail(&self) -> String {
        let from = self.seen.len().saturating_sub(60);
        self.seen[from..].join("\n")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

/// Three consecutive free ports (the admin port and the agents' next two).
fn free_ports(n: u16) -> u16 {
    loop {
        let base = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if base > u16::MAX - n {
            continue;
        }
        let all: Vec<_> = (0..n)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if all.iter().all(Result::is_ok) {
            return base;
        }
    }
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `wfe dev` and the job-agent's admin address (the API's admin port + 1).
fn start(dir: &std::path::Path) -> (Dev, SocketAddr) {
    let (sandbox, grpc, admin) = (free_ports(1), free_ports(1), free_ports(3));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wfe"))
        .args(["dev", "--fresh", "--state-dir", "state"])
        .args(["--sandbox-addr", &addr(sandbox)])
        .args(["--grpc-addr", &addr(grpc)])
        .args(["--admin-addr", &addr(admin)])
        .args(["--restart-backoff", "200ms"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wfe dev starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let dev = Dev {
        child,
        lines,
        seen: Vec::new(),
    };
    (dev, SocketAddr::from(([127, 0, 0, 1], admin + 1)))
}

/// `[wfe dev] started job-agent (pid N)` → N.
fn pid_of(line: &str) -> u32 {
    line.rsplit("(pid ")
        .next()
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

fn started(name: &str) -> impl Fn(&str) -> bool {
    let prefix = format!("[wfe dev] started {name} (pid ");
    move |l: &str| l.starts_with(&prefix)
}

fn wait_serving(addr: SocketAddr, dev: &mut Dev) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} not served again; wfe dev said:\n{}",
            dev.tail()
        );
        assert!(
            dev.child.try_wait().expect("wfe dev state").is_none(),
            "wfe dev exited:\n{}",
            dev.tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_component_is_restarted_and_the_stack_stays_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, agent_admin) = start(dir.path());
    let first = pid_of(&dev.wait_line(Duration::from_secs(180), started("job-agent")));
    wait_serving(agent_admin, &mut dev);

    let killed = Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "job-agent {first} was running");

    let said = dev.wait_line(Duration::from_secs(30), |l| {
        l.starts_with("[wfe dev] job-agent exited")
    });
    assert!(said.contains("restarting in 200ms"), "{said}");
    let second = pid_of(&dev.wait_line(Duration::from_secs(30), started("job-agent")));
    assert_ne!(first, second, "a new process");
    wait_serving(agent_admin, &mut dev);
    let alive = Command::new("kill")
        .args(["-0", &second.to_string()])
        .status()
        .expect("kill -0 runs");
    assert!(alive.success(), "the restarted job-agent serves and runs");
    assert!(
        dev.child.try_wait().expect("wfe dev state").is_none(),
        "wfe dev kept running:\n{}",
        dev.tail()
    );
}
