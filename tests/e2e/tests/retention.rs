//! Execution retention through the real processes (`--execution-retention` shortened to
//! seconds): a terminal execution is deleted once its audit is recorded and its primitive
//! released, its idempotency key then starts a new execution, an execution that still
//! blocks its target stays until the block is cleared, and a RemediationRequest that is
//! there owns its executions, so deleting it deletes them (Kubernetes' garbage collector).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::clients::PHASE_TIMEOUT;
use wfe_e2e::v1::{self, Disposition, Phase};
use wfe_e2e::{Req, Stack, StackOptions};

const GONE_TIMEOUT: Duration = Duration::from_secs(60);

fn short_retention() -> StackOptions {
    StackOptions::default()
        .api_flag("--execution-retention", "2s")
        .api_flag("--primitive-retention", "1s")
        .api_flag("--cooldown", "1s")
        .api_flag("--lock-grace", "1s")
}

/// Waits until `kubectl get wfe <name>` finds nothing.
async fn wait_deleted(stack: &Stack, name: &str) {
    wfe_e2e::eventually(GONE_TIMEOUT, "execution deleted", || {
        let (stack, name) = (stack, name.to_owned());
        async move {
            let out = stack
                .kubectl(&[
                    "get",
                    "wfe",
                    &name,
                    "-n",
                    "kubernaut-system",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ])
                .await?;
            Ok(out.trim().is_empty().then_some(()))
        }
    })
    .await
    .expect("the execution is deleted at the end of its retention");
}

async fn exists(stack: &Stack, name: &str) -> bool {
    let out = stack
        .kubectl(&[
            "get",
            "wfe",
            name,
            "-n",
            "kubernaut-system",
            "--ignore-not-found",
            "-o",
            "name",
        ])
        .await
        .expect("kubectl get wfe");
    !out.trim().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_execution_goes_after_its_retention_and_its_key_then_starts_anew() {
    let stack = Stack::start(short_retention()).await.expect("stack");
    let req = Req::job("default/Deployment/ret-done").key("retention-key-1");
    let first = stack
        .run_to(&req, Phase::Completed)
        .await
        .expect("Completed");
    wait_deleted(&stack, &first.name).await;

    let audit = stack.audit_events().expect("audit");
    let completed = audit.iter().any(|e| {
        e["event_type"]
            .as_str()
            .is_some_and(|t| t.ends_with("completed"))
            && e.to_string().contains(&first.name)
    });
    assert!(
        completed,
        "the audit trail keeps the deleted execution: {audit:?}"
    );
    let metrics = stack.metrics(0).await.expect("metrics");
    assert!(
        metrics.contains("workflowexecution_api_executions_deleted_total 1"),
        "{metrics}"
    );

    // Its key was remembered only as long as the execution was kept.
    let again = stack.execute(&req).await.expect("same key again");
    assert_eq!(again.disposition, Disposition::Created as i32, "{again:?}");
    let second = again.execution.expect("execution");
    assert_ne!(
        second.uid, first.uid,
        "a new execution, not the deleted one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_that_blocks_its_target_stays_until_the_block_is_cleared() {
    const T: &str = "default/Deployment/ret-blocked";
    let stack = Stack::start(short_retention()).await.expect("stack");
    let failed = stack
        .run_to(
            &Req::job(T).outcome("fail:2").duration("100ms"),
            Phase::Failed,
        )
        .await
        .expect("Failed");
    // A witness on another target: once it is deleted, retention passes have looked at
    // the failed one too, past its retention.
    let witness = stack
        .run_to(
            &Req::job("default/Deployment/ret-witness"),
            Phase::Completed,
        )
        .await
        .expect("witness Completed");
    wait_deleted(&stack, &witness.name).await;
    assert!(
        exists(&stack, &failed.name).await,
        "deleted while it blocks its target"
    );
    let blocked = stack.execute(&Req::job(T)).await.expect("blocked");
    assert_eq!(
        blocked.disposition,
        Disposition::Skipped as i32,
        "the block still holds"
    );

    let mut c = stack.grpc_client().await.expect("client");
    c.clear_block(v1::ClearBlockRequest {
        target_resource: T.to_owned(),
        reason: "the deployment was inspected by hand and rolled back to the last good revision"
            .into(),
        ..Default::default()
    })
    .await
    .expect("ClearBlock");
    wait_deleted(&stack, &failed.name).await;
    let after = stack
        .execute(&Req::job(T))
        .await
        .expect("after the deletion");
    assert_eq!(after.disposition, Disposition::Created as i32, "{after:?}");
}

const RR_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "remediationrequests.kubernaut.ai"},
  "spec": {"group": "kubernaut.ai", "scope": "Namespaced",
    "names": {"plural": "remediationrequests", "singular": "remediationrequest", "kind": "RemediationRequest", "listKind": "RemediationRequestList"},
    "versions": [{"name": "v1alpha1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remediation_request_that_is_there_owns_its_executions() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let dir = tempfile::tempdir().expect("tempdir");
    let crd = dir.path().join("crd.json");
    std::fs::write(&crd, RR_CRD).unwrap();
    stack
        .kubectl(&["apply", "-f", crd.to_str().unwrap()])
        .await
        .expect("CRD");
    let rr = dir.path().join("rr.json");
    std::fs::write(
        &rr,
        r#"{"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
            "metadata": {"name": "rr-owner", "namespace": "kubernaut-system"}}"#,
    )
    .unwrap();
    let uid = wfe_e2e::eventually(PHASE_TIMEOUT, "RemediationRequest created", || {
        let (stack, rr) = (&stack, rr.clone());
        async move {
            // The CRD may take a moment to be served.
            let Ok(out) = stack
                .kubectl_json(&["apply", "-f", rr.to_str().unwrap(), "-o", "json"])
                .await
            else {
                return Ok(None);
            };
            Ok(out["metadata"]["uid"].as_str().map(str::to_owned))
        }
    })
    .await
    .expect("RemediationRequest");

    let owned = stack
        .run_to(
            &Req::job("default/Deployment/owned")
                .remediation("rr-owner")
                .remediation_uid(&uid),
            Phase::Completed,
        )
        .await
        .expect("owned execution");
    let wrong_uid = stack
        .run_to(
            &Req::job("default/Deployment/not-owned")
                .remediation("rr-owner")
                .remediation_uid("0a1b2c3d-0000-4000-8000-000000000000"),
            Phase::Completed,
        )
        .await
        .expect("execution naming another uid");
    let refs = |name: String| {
        let stack = &stack;
        async move {
            let wfe = stack
                .kubectl_json(&["get", "wfe", &name, "-n", "kubernaut-system", "-o", "json"])
                .await
                .expect("kubectl get wfe");
            wfe["metadata"]["ownerReferences"].clone()
        }
    };
    let owners = refs(owned.name.clone()).await;
    assert_eq!(owners[0]["kind"], "RemediationRequest", "{owners}");
    assert_eq!(owners[0]["uid"], uid.as_str(), "{owners}");
    assert!(
        refs(wrong_uid.name.clone()).await.is_null(),
        "an owner that is not there must not be named"
    );

    stack
        .kubectl(&[
            "delete",
            "remediationrequest",
            "rr-owner",
            "-n",
            "kubernaut-system",
        ])
        .await
        .expect("delete the RemediationRequest");
    wait_deleted(&stack, &owned.name).await;
    assert!(
        exists(&stack, &wrong_uid.name).await,
        "only its own executions go with it"
    );
}
