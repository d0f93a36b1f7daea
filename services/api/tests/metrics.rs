//! `/metrics` after a happy path passes `promtool check metrics` (Debian package
//! `prometheus`; tests/tools.sh installs it), and OpenMetrics is served to who asks for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::agent;
use common::*;
use wfe_proto::agent::PrimitivePhase;
use wfe_proto::v1;

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (apt-get install prometheus; tests/tools.sh ensure_promtool)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_after_a_happy_path() {
    let env = Env::new().await;
    let api = env.start(env.config()).await;
    let c = client(&api, CALLER_TOKEN).await;
    let mut ag = agent::connect(&api, "job-local", agent::hello("job-1", "", "job", vec![]))
        .await
        .unwrap();
    let exec = c
        .clone()
        .execute_workflow(execute_req("default/Deployment/prom", "wf-1", ""))
        .await
        .unwrap()
        .into_inner()
        .execution
        .unwrap();
    let a = ag.next_assign().await;
    ag.ack(&a.assignment_id).await;
    ag.report(agent::report(&a, PrimitivePhase::Succeeded))
        .await;
    wait_phase(&c, &exec.name, v1::Phase::Completed).await;
    // A second request on the same target is skipped: the skips family has a sample too.
    c.clone()
        .execute_workflow(execute_req("default/Deployment/prom", "wf-1", ""))
        .await
        .unwrap();

    let res = reqwest::get(format!("http://{}/metrics", api.admin_addr))
        .await
        .unwrap();
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = res.text().await.unwrap();
    assert!(
        text.contains("workflowexecution_api_skips_total{"),
        "{text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{said}\n---\n{text}");

    let om = reqwest::Client::new()
        .get(format!("http://{}/metrics", api.admin_addr))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    let ct = om.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));
    api.shutdown().await;
}
