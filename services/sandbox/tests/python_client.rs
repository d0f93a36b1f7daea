//! The Python `kubernetes` client (pip package `kubernetes`) against the sandbox: list, watch
//! resumed from the list's resourceVersion, 409 on a stale update. Requires python3 with the
//! package installed; fails (does not skip) otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_lists_watches_from_resource_version_and_sees_conflicts() {
    let sb = common::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/watch_resume.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let url = sb.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(url)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 is installed");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("OK"),
        "python client test failed (pip install kubernetes?)\nstdout: {stdout}\nstderr: {stderr}"
    );
    sb.shutdown().await;
}
