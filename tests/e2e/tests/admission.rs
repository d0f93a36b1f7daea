//! Safety rules through the real stack: skip (ResourceBusy), cooldown
//! (RecentlyRemediated), backoff after a pre-execution failure, ExhaustedRetries after
//! consecutive ones, block after an execution failure, and ClearBlock.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::clients::{PHASE_TIMEOUT, phase_of};
use wfe_e2e::stack::OPERATOR_IDENTITY;
use wfe_e2e::v1::{self, BlockReason, Disposition, Phase};
use wfe_e2e::{Req, Stack, StackOptions, eventually};

const T: &str = "default/Deployment/web";

fn skip(res: &v1::ExecuteWorkflowResponse) -> &v1::SkipDetails {
    res.skip_details.as_ref().expect("skip details")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_execution_on_a_busy_target_is_skipped_resource_busy() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let first = stack
        .execute(&Req::job(T).duration("5s"))
        .await
        .expect("first");
    let holder = first.execution.expect("execution").name;
    let second = stack
        .execute(&Req::job(T).remediation("rr-other"))
        .await
        .expect("second");
    assert_eq!(second.disposition, Disposition::Skipped as i32);
    assert_eq!(skip(&second).reason(), BlockReason::ResourceBusy);
    let conflict = skip(&second)
        .conflicting_execution
        .as_ref()
        .expect("holder");
    assert_eq!(
        conflict.name, holder,
        "names the execution holding the target"
    );
    let skipped = second.execution.expect("skipped execution persisted");
    assert_eq!(phase_of(&skipped), Phase::Skipped);
    stack
        .wait_phase(&holder, Phase::Completed)
        .await
        .expect("holder completes");
    let audit = stack.audit_events().expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e["event_type"] == "workflowexecution.workflow.skipped"
                && e.to_string().contains(&skipped.name)),
        "a skipped audit event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_execution_failure_backs_off_then_admits() {
    let stack = Stack::start(StackOptions::default().stuck_grace(1))
        .await
        .expect("stack");
    let failing = stack
        .run(&Req::job(T).outcome("image-pull-error"))
        .await
        .expect("first");
    stack
        .wait_phase(&failing.name, Phase::Failed)
        .await
        .expect("Failed");

    let skipped = stack.execute(&Req::job(T)).await.expect("during backoff");
    assert_eq!(skipped.disposition, Disposition::Skipped as i32);
    assert_eq!(skip(&skipped).reason(), BlockReason::ExponentialBackoff);
    assert!(
        skip(&skipped).next_allowed_execution.is_some(),
        "says when the backoff ends"
    );
    // --backoff-base 1s: an execution is admitted again once it has passed.
    let admitted = eventually(Duration::from_secs(15), "admission after backoff", || {
        let stack = &stack;
        async move {
            let r = stack.execute(&Req::job(T)).await?;
            Ok((r.disposition == Disposition::Created as i32).then_some(r))
        }
    })
    .await
    .expect("admitted");
    let name = admitted.execution.expect("execution").name;
    stack
        .wait_phase(&name, Phase::Completed)
        .await
        .expect("Completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_failure_blocks_until_clear_block() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let failing = stack
        .run(&Req::job(T).outcome("fail:2").duration("100ms"))
        .await
        .expect("first");
    stack
        .wait_phase(&failing.name, Phase::Failed)
        .await
        .expect("Failed");

    let blocked = stack.execute(&Req::job(T)).await.expect("blocked");
    assert_eq!(blocked.disposition, Disposition::Skipped as i32);
    assert_eq!(
        skip(&blocked).reason(),
        BlockReason::PreviousExecutionFailed
    );
    assert!(
        skip(&blocked).next_allowed_execution.is_none(),
        "only a person lifts it"
    );

    let mut c = stack.grpc_client().await.expect("client");
    let mut clear = v1::ClearBlockRequest {
        target_resource: T.to_owned(),
        reason: "looks fine".to_owned(),
        ..Default::default()
    };
    let err = c
        .clear_block(clear.clone())
        .await
        .expect_err("short reason");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    clear.reason =
        "the deployment was inspected by hand and rolled back to the last good revision".into();
    let cleared = c.clear_block(clear).await.expect("ClearBlock").into_inner();
    let exec = cleared.execution.expect("cleared execution");
    assert_eq!(exec.name, failing.name);
    let bc = exec
        .status
        .and_then(|s| s.block_clearance)
        .expect("block clearance");
    assert_eq!(bc.cleared_by, OPERATOR_IDENTITY, "the authenticated caller");

    let again = stack.execute(&Req::job(T)).await.expect("after clear");
    assert_eq!(again.disposition, Disposition::Created as i32, "{again:?}");
    let name = again.execution.expect("execution").name;
    stack
        .wait_phase(&name, Phase::Completed)
        .await
        .expect("Completed");
    let cleared_event = eventually(PHASE_TIMEOUT, "block.cleared audit event", || {
        let stack = &stack;
        async move {
            Ok(stack
                .audit_events()?
                .into_iter()
                .find(|e| e["event_type"] == "workflowexecution.block.cleared"))
        }
    })
    .await
    .expect("audit");
    assert!(
        cleared_event.to_string().contains(OPERATOR_IDENTITY),
        "{cleared_event}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_workflow_is_skipped_in_its_cooldown_another_runs() {
    let opts = StackOptions::default().api_flag("--cooldown", "1h");
    let stack = Stack::start(opts).await.expect("stack");
    let done = stack
        .run(&Req::job(T).duration("100ms"))
        .await
        .expect("first");
    let done = stack
        .wait_phase(&done.name, Phase::Completed)
        .await
        .expect("Completed");

    let again = stack
        .execute(&Req::job(T).remediation("rr-again"))
        .await
        .expect("again");
    assert_eq!(again.disposition, Disposition::Skipped as i32);
    assert_eq!(skip(&again).reason(), BlockReason::RecentlyRemediated);
    let completed = done
        .status
        .and_then(|s| s.completion_time)
        .expect("completionTime");
    let next = skip(&again)
        .next_allowed_execution
        .expect("says when the cooldown ends");
    assert_eq!(
        next.seconds - completed.seconds,
        3600,
        "one cooldown after the completion"
    );

    // The cooldown is per workflow: another one on the same target runs.
    let other = stack
        .execute(
            &Req::job(T)
                .workflow("scale-deployment")
                .remediation("rr-other"),
        )
        .await
        .expect("other workflow");
    assert_eq!(other.disposition, Disposition::Created as i32, "{other:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_pre_execution_failures_exhaust_retries() {
    let opts = StackOptions::default()
        .stuck_grace(1)
        .api_flag("--max-consecutive-failures", "2");
    let stack = Stack::start(opts).await.expect("stack");
    let failing = || Req::job(T).outcome("image-pull-error");
    let first = stack.run(&failing()).await.expect("first");
    stack
        .wait_phase(&first.name, Phase::Failed)
        .await
        .expect("first Failed");
    // Admitted again once the 1 s backoff passed; it fails the same way.
    let second = eventually(Duration::from_secs(15), "admission after backoff", || {
        let stack = &stack;
        async move {
            let r = stack.execute(&failing()).await?;
            Ok((r.disposition == Disposition::Created as i32).then_some(r))
        }
    })
    .await
    .expect("second admitted")
    .execution
    .expect("execution");
    stack
        .wait_phase(&second.name, Phase::Failed)
        .await
        .expect("second Failed");

    // Two in a row: a block (for --exhausted-retries-block, 1 h), not a backoff: it
    // still holds after the 2 s a second backoff would have lasted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let blocked = stack.execute(&Req::job(T)).await.expect("third");
    assert_eq!(blocked.disposition, Disposition::Skipped as i32);
    assert_eq!(
        skip(&blocked).reason(),
        BlockReason::ExhaustedRetries,
        "{blocked:?}"
    );
    assert!(
        skip(&blocked).next_allowed_execution.is_some(),
        "the block ends by itself"
    );
}
