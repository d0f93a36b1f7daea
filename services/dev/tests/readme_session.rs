//! The README's "A first session" works exactly as written: this test starts
//! `wfe dev` the way the README does, then runs every shell block of that
//! section in order (except the long-running watch), waiting between blocks
//! only for what a person would wait for.
//!
//! It uses the stack's fixed ports (6443, 8443, 9090-9092), as the README does;
//! stop a running `wfe dev` before running it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shell blocks of the README's session, minus the two that run forever.
fn session_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let start = readme
        .find("## A first session")
        .expect("the README has a first session");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|b| !b.contains("cargo run") && !b.contains("WatchWorkflowExecutions"))
        .map(str::to_owned)
        .collect()
}

/// Polls (with a deadline) until `kubectl get wfe` lists every phase in `phases`.
fn wait_for_phases(phases: &[&str]) -> String {
    let checks: Vec<String> = phases.iter().map(|p| format!("grep -q ' {p} '")).collect();
    format!(
        "for i in $(seq 150); do out=$(kubectl get wfe); if {}; then break; fi; sleep 0.2; done\n",
        checks
            .iter()
            .map(|c| format!("echo \"$out\" | {c}"))
            .collect::<Vec<_>>()
            .join(" && ")
    )
}

struct Stack(Child);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

fn start_stack(dir: &Path) -> Stack {
    // WFE_E2E_BACKEND=real (tests/run's second pass) runs the same session on a
    // real control plane.
    let backend = std::env::var("WFE_E2E_BACKEND").unwrap_or_else(|_| "sandbox".into());
    let child = Command::new(env!("CARGO_BIN_EXE_wfe"))
        .args(["dev", "--fresh", "--backend", &backend])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wfe dev starts");
    let stack = Stack(child);
    // The stack is up when workflow-api is ready and both agents are connected.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let metrics = Command::new("curl")
            .args(["-sf", "127.0.0.1:9090/metrics"])
            .output();
        let agents = metrics
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .matches("workflowexecution_api_connected_agents{")
                    .count()
            })
            .unwrap_or(0);
        if agents >= 2 {
            return stack;
        }
        assert!(
            Instant::now() < deadline,
            "wfe dev --backend {backend} did not come up with two agents in 240 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_readme_session_works_as_written() {
    let blocks = session_blocks();
    assert!(
        blocks.len() >= 6,
        "expected the session's shell blocks, found {}",
        blocks.len()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let _stack = start_stack(dir.path());

    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        script.push_str(block);
        // What a reader waits for before the next step: the first two executions ending.
        if i == 1 {
            script.push_str(&wait_for_phases(&["Completed", "Failed"]));
        }
    }
    script.push_str(&wait_for_phases(&["Completed", "Failed", "Skipped"]));
    script.push_str("echo '--- final'; kubectl get wfe\n");

    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the session failed:\n{stdout}\n{stderr}"
    );

    let final_table = stdout.rsplit("--- final").next().unwrap_or_default();
    let count = |phase: &str| {
        final_table
            .lines()
            .filter(|l| l.contains(&format!(" {phase} ")))
            .count()
    };
    assert_eq!(count("Completed"), 1, "{final_table}");
    assert_eq!(
        count("Failed"),
        2,
        "the failed and the cancelled one:\n{final_table}"
    );
    assert_eq!(
        count("Skipped"),
        2,
        "recently remediated and busy:\n{final_table}"
    );
    assert!(stdout.contains("DISPOSITION_SKIPPED"), "{stdout}");
    assert!(
        stdout.contains("BLOCK_REASON_PREVIOUS_EXECUTION_FAILED"),
        "Preflight explains the block"
    );
    assert!(
        stdout.contains("\"clearedBy\": \"operator@dev.local\""),
        "ClearBlock records who"
    );
    assert!(
        stdout.contains("FAILURE_REASON_TASK_FAILED"),
        "the failure is classified"
    );
    assert!(
        stdout.contains("workflowexecution.workflow."),
        "the audit log has events"
    );
    assert!(
        stdout.contains("workflowexecution_api_executions_total{"),
        "metrics are served"
    );

    let audit = std::fs::read_to_string(dir.path().join("target/wfe-dev/audit-events.jsonl"))
        .expect("audit log");
    assert!(
        audit.contains("workflowexecution.workflow.cancelled"),
        "the cancel is audited"
    );
    assert!(
        audit.contains("workflowexecution.block.cleared"),
        "the clearance is audited"
    );
}
