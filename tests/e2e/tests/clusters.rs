//! A hub and a remote cluster, wired as deploy/overlays/hub and remote-cluster run them:
//! workflow-api and its executions in the hub; in "east", a sandbox of its own and a
//! job-agent and a tekton-agent with `--cluster-id east`. An execution naming cluster
//! east runs there (its Job or PipelineRun is in east's API, not the hub's), and the
//! same target name in two clusters is two targets.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use wfe_e2e::clients::phase_of;
use wfe_e2e::stack::agent_id;
use wfe_e2e::v1::{self, Phase};
use wfe_e2e::{Req, Stack, StackOptions};

/// `kubectl get <kind> <name> -n <ns> -o name` against the cluster of `kubeconfig`.
async fn exists(kubeconfig: &Path, kind: &str, r: &v1::PrimitiveReference) -> bool {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "get",
            kind,
            &r.name,
            "-n",
            &r.namespace,
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    !out.stdout.is_empty()
}

fn primitive(e: &v1::WorkflowExecution) -> v1::PrimitiveReference {
    e.status
        .as_ref()
        .and_then(|s| s.execution_ref.clone())
        .expect("executionRef")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_run_in_the_cluster_they_name() {
    let mut stack = Stack::start(StackOptions::default()).await.expect("hub");
    let east = stack.add_remote_cluster("east").await.expect("east");
    let hub = stack.kubeconfig();
    let web = "default/Deployment/web";

    // The hub's own web is held by a workflow that hangs ...
    let local = stack
        .run_to(&Req::job(web).outcome("hang"), Phase::Running)
        .await
        .expect("Running");
    assert!(exists(&hub, "job", &primitive(&local)).await);

    // ... while east's web, and a PipelineRun in east, run to the end, in east.
    for (req, kind) in [
        (Req::job(web).cluster("east").duration("200ms"), "job"),
        (
            Req::tekton("default/Deployment/api").cluster("east"),
            "pipelinerun",
        ),
    ] {
        let done = stack
            .run_to(&req, Phase::Completed)
            .await
            .expect("Completed");
        let agent = &done
            .status
            .as_ref()
            .unwrap()
            .assignment
            .as_ref()
            .unwrap()
            .agent_id;
        let east_ids: Vec<String> = east.agents.iter().map(|a| agent_id(*a)).collect();
        assert!(
            east_ids.contains(agent),
            "{kind} run by {agent}, not by east's {east_ids:?}"
        );
        let r = primitive(&done);
        assert!(
            exists(&east.kubeconfig, kind, &r).await,
            "{kind} {} in east",
            r.name
        );
        assert!(
            !exists(&hub, kind, &r).await,
            "{kind} {} not in the hub",
            r.name
        );
    }

    // ListWorkflowExecutions tells the clusters apart: unset is every cluster.
    let mut c = stack.grpc_client().await.expect("client");
    for (cluster, want) in [(Some("east"), 2), (Some(""), 1), (None, 3)] {
        let listed = c
            .list_workflow_executions(v1::ListWorkflowExecutionsRequest {
                cluster_id: cluster.map(str::to_owned),
                ..Default::default()
            })
            .await
            .expect("List")
            .into_inner()
            .executions;
        assert_eq!(listed.len(), want, "cluster {cluster:?}: {listed:#?}");
    }

    // A second execution on east's web is free to start once the first is done (no
    // cooldown across workflows), while the hub's web is still held.
    let busy = stack
        .execute(&Req::job(web).workflow("another"))
        .await
        .expect("ExecuteWorkflow");
    assert_eq!(
        busy.disposition,
        v1::Disposition::Skipped as i32,
        "the hub's web is held"
    );
    assert_eq!(
        phase_of(&stack.get(&local.name).await.unwrap()),
        Phase::Running
    );
}
