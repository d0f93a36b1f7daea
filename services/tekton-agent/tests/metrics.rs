//! The tekton-agent's `/metrics` passes `promtool check metrics` (Debian package
//! `prometheus`; tests/tools.sh installs it), and OpenMetrics is served to who asks for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wfe_tekton_agent::{TektonExecutor, TektonExecutorConfig};

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

/// The agent with nothing behind its API URL or Kubernetes API: its admin port serves
/// the runtime's metrics all the same (failed session attempts counted).
async fn agent(stop: CancellationToken) -> String {
    let nowhere: http::Uri = "http://127.0.0.1:1".parse().unwrap();
    let client = kube::Client::try_from(kube::Config::new(nowhere)).unwrap();
    let exec = TektonExecutor::new(
        client,
        TektonExecutorConfig {
            namespace: "kubernaut-workflows".into(),
            cluster_id: String::new(),
        },
    );
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", admin.local_addr().unwrap());
    let cfg = wfe_agent::AgentConfig {
        dial: wfe_agent::session::Dial {
            url: "http://127.0.0.1:1".into(),
            token_file: None,
            tls_ca: None,
        },
        agent_id: "metrics-test".into(),
        cluster_id: String::new(),
        capacity: 2,
        version: "test".into(),
        drain_timeout: Duration::from_secs(1),
        backoff: wfe_agent::backoff::Backoff::default(),
    };
    tokio::spawn(wfe_agent::run_with(cfg, Arc::new(exec), admin, stop));
    url
}

async fn scrape(url: &str, accept: Option<&str>) -> (String, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let mut req = reqwest::Client::new().get(url);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        if let Ok(resp) = req.send().await {
            let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
            return (ct, resp.text().await.unwrap());
        }
        assert!(tokio::time::Instant::now() < deadline, "no /metrics");
    }
}

#[tokio::test]
async fn metrics_pass_promtool_and_openmetrics_is_negotiated() {
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let url = agent(stop).await;
    let (ct, text) = scrape(&url, None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(text.contains("wfe_agent_sessions_total"), "{text}");
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{said}\n---\n{text}");
    let (ct, text) = scrape(&url, Some("application/openmetrics-text; version=1.0.0")).await;
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}
