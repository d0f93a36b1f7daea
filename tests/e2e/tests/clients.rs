//! Real clients nobody here wrote: grpcurl through v1alpha reflection, a Python
//! grpcio client generated from proto/, and kubectl's printer columns.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use wfe_e2e::request::IMAGE;
use wfe_e2e::v1::Phase;
use wfe_e2e::{Req, Stack, StackOptions};

const SERVICE: &str = "kubernaut.workflowexecution.v1.WorkflowExecutionService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_the_service() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let list = stack.grpcurl(&[], &["list"]).await.expect("grpcurl list");
    assert!(list.ok && list.stdout.contains(SERVICE), "{list:?}");
    let desc = stack
        .grpcurl(&[], &["describe", SERVICE])
        .await
        .expect("describe");
    assert!(desc.ok, "{desc:?}");
    for rpc in [
        "rpc ExecuteWorkflow",
        "rpc WatchWorkflowExecutions",
        "rpc ClearBlock",
    ] {
        assert!(desc.stdout.contains(rpc), "{rpc} missing:\n{}", desc.stdout);
    }
    let body = serde_json::json!({
        "idempotency_key": "grpcurl-1",
        "spec": {
            "remediation_request_ref": {"name": "rr-grpcurl", "namespace": "kubernaut-system"},
            "workflow_ref": {"workflow_id": "restart-deployment", "workflow_name": "restart-deployment",
                "action_type": "RestartDeployment", "version": "1.0.0", "container_image": IMAGE},
            "execution_engine": "job",
            "target_resource": "default/Deployment/grpcurl",
            "parameters": {"SANDBOX_DURATION": "500ms"}
        }
    })
    .to_string();
    let method = format!("{SERVICE}/ExecuteWorkflow");
    let call = stack
        .grpcurl(&["-d", &body], &[&method])
        .await
        .expect("call");
    assert!(call.ok, "{call:?}");
    let res: serde_json::Value = serde_json::from_str(&call.stdout).expect("grpcurl JSON");
    assert_eq!(res["disposition"], "DISPOSITION_CREATED", "{res}");
    let name = res["execution"]["name"].as_str().expect("name");
    stack
        .wait_phase(name, Phase::Completed)
        .await
        .expect("Completed");

    // An invalid request: grpcurl shows InvalidArgument naming the field.
    let bad = stack
        .grpcurl(&["-d", r#"{"spec": {}}"#], &[&method])
        .await
        .expect("bad call");
    assert!(!bad.ok, "{bad:?}");
    assert!(bad.stderr.contains("InvalidArgument"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_executes_and_follows_watch() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let run = stack.python_client(&[]).await.expect("python");
    assert!(
        run.ok,
        "python client failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines[0]["disposition"], "DISPOSITION_CREATED", "{lines:?}");
    let phases: Vec<&str> = lines.iter().filter_map(|l| l["phase"].as_str()).collect();
    assert!(
        phases.contains(&"PHASE_RUNNING"),
        "followed Running: {phases:?}"
    );
    assert_eq!(
        lines.last().expect("final")["final"],
        "PHASE_COMPLETED",
        "{lines:?}"
    );
    let name = lines[0]["accepted"].as_str().expect("name");
    let e = stack.get(name).await.expect("get");
    assert_eq!(wfe_e2e::clients::phase_of(&e), Phase::Completed);
}

/// The cells of `name`'s row in kubectl's table, by column name (kubectl aligns each
/// column at its header's offset; empty cells are empty strings).
fn table_row(out: &str, name: &str) -> std::collections::HashMap<String, String> {
    let mut lines = out.lines();
    let header = lines.next().expect("header");
    let starts: Vec<(usize, &str)> = header
        .match_indices(|c: char| !c.is_whitespace())
        .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
        .map(|(i, _)| (i, header[i..].split_whitespace().next().unwrap_or_default()))
        .collect();
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{out}"));
    let cell = |from: usize, to: usize| row.get(from..to.min(row.len())).unwrap_or("").trim();
    starts
        .iter()
        .enumerate()
        .map(|(k, (at, col))| {
            let end = starts.get(k + 1).map_or(row.len(), |(next, _)| *next);
            ((*col).to_owned(), cell(*at, end).to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_wfe_shows_the_printer_columns() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let exec = stack
        .run(&Req::job("default/Deployment/web").duration("200ms"))
        .await
        .expect("execute");
    stack
        .wait_phase(&exec.name, Phase::Completed)
        .await
        .expect("Completed");
    let out = stack
        .kubectl(&["get", "wfe"])
        .await
        .expect("kubectl get wfe");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "ENGINE", "WORKFLOW", "TARGET", "DURATION", "REASON", "AGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(
        row[..5],
        [
            exec.name.as_str(),
            "Completed",
            "job",
            "restart-deployment",
            "default/Deployment/web"
        ],
        "{out}"
    );
    assert_eq!(table_row(&out, &exec.name)["REASON"], "", "{out}");
}

/// REASON says why an execution failed or was skipped, without `describe` or gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_wfe_shows_why_an_execution_failed_or_was_skipped() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let failed = stack
        .run_to(
            &Req::job("default/Deployment/fails").outcome("fail:3"),
            Phase::Failed,
        )
        .await
        .expect("Failed");
    let holder = stack
        .run_to(
            &Req::job("default/Deployment/held").outcome("hang"),
            Phase::Running,
        )
        .await
        .expect("Running");
    let busy = stack
        .run(&Req::job("default/Deployment/held").remediation("rr-busy"))
        .await
        .expect("execute");
    assert_eq!(wfe_e2e::clients::phase_of(&busy), Phase::Skipped);
    let out = stack
        .kubectl(&["get", "wfe"])
        .await
        .expect("kubectl get wfe");
    for (name, phase, reason) in [
        (&failed.name, "Failed", "TaskFailed"),
        (&busy.name, "Skipped", "ResourceBusy"),
        (&holder.name, "Running", ""),
    ] {
        let row = table_row(&out, name);
        assert_eq!(
            (row["PHASE"].as_str(), row["REASON"].as_str()),
            (phase, reason),
            "{out}"
        );
    }
}
