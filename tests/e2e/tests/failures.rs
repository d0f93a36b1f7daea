//! Each failure kind per engine, chosen by the sandbox workload's behaviour
//! (`SANDBOX_OUTCOME`): the reason, exit code and wasExecutionFailure a person
//! reads on the Failed execution, and the `failed` audit event.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use wfe_e2e::clients::{PHASE_TIMEOUT, condition, failure};
use wfe_e2e::v1::{FailureReason, Phase};
use wfe_e2e::{Req, Stack, StackOptions, eventually};

/// What the Failed execution must say.
struct Expect {
    reason: FailureReason,
    /// `None`: not asserted (Tekton fills step exit codes its own way, see below).
    exit_code: Option<Option<i32>>,
    was_execution_failure: bool,
    /// Text the message must contain (what a person needs to fix it).
    message_contains: Option<&'static str>,
}

/// Runs `req` on a fresh stack and checks the failure details.
async fn expect_failure(opts: StackOptions, req: Req, want: Expect) -> Stack {
    let stack = Stack::start(opts).await.expect("stack");
    expect_failure_on(stack, req, want).await
}

/// Runs `req` on `stack` (set up by the caller) and checks the failure details.
async fn expect_failure_on(stack: Stack, req: Req, want: Expect) -> Stack {
    let exec = stack.run(&req).await.expect("ExecuteWorkflow");
    let failed = stack
        .wait_phase(&exec.name, Phase::Failed)
        .await
        .expect("Failed");
    let f = failure(&failed).expect("failure details");
    assert_eq!(f.reason(), want.reason, "reason; details: {f:?}");
    if let Some(code) = want.exit_code {
        assert_eq!(f.exit_code, code, "exit code; details: {f:?}");
    }
    assert_eq!(f.was_execution_failure, want.was_execution_failure, "{f:?}");
    assert!(!f.message.is_empty(), "a message a person can read");
    if let Some(text) = want.message_contains {
        assert!(f.message.contains(text), "message names {text}: {f:?}");
    }
    assert!(f.failed_at.is_some(), "failedAt");
    let ready = condition(&failed, "Ready").expect("Ready condition");
    assert_eq!(ready.status, "False");
    let audit = wfe_e2e::eventually(Duration::from_secs(20), "failed audit event", || {
        let stack = &stack;
        let name = exec.name.clone();
        async move {
            Ok(stack.audit_events()?.into_iter().find(|e| {
                e["event_type"] == "workflowexecution.workflow.failed"
                    && e.to_string().contains(&name)
            }))
        }
    })
    .await
    .expect("audit");
    assert_eq!(audit["event_outcome"], "failure", "{audit}");
    stack
}

fn exec_failure(reason: FailureReason, exit_code: Option<i32>) -> Expect {
    Expect {
        reason,
        exit_code: Some(exit_code),
        was_execution_failure: true,
        message_contains: None,
    }
}

/// The workflow never ran: no exit code.
fn pre_execution(reason: FailureReason) -> Expect {
    Expect {
        reason,
        exit_code: Some(None),
        was_execution_failure: false,
        message_contains: None,
    }
}

/// Failures that surface only after the job-agent's stuck grace need a short one.
fn short_grace() -> StackOptions {
    StackOptions::default().stuck_grace(1)
}

const T: &str = "default/Deployment/web";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_exit_code_is_task_failed() {
    let req = Req::job(T).outcome("fail:3").duration("200ms");
    expect_failure(
        StackOptions::default(),
        req,
        exec_failure(FailureReason::TaskFailed, Some(3)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_oom_is_oom_killed() {
    let req = Req::job(T).outcome("oom").duration("200ms");
    expect_failure(
        StackOptions::default(),
        req,
        exec_failure(FailureReason::OomKilled, Some(137)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_image_pull_error_is_image_pull_back_off() {
    let req = Req::job(T).outcome("image-pull-error");
    expect_failure(
        short_grace(),
        req,
        pre_execution(FailureReason::ImagePullBackOff),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_missing_secret_is_configuration_error() {
    let req = Req::job(T).outcome("missing-secret");
    expect_failure(
        short_grace(),
        req,
        pre_execution(FailureReason::ConfigurationError),
    )
    .await;
}

/// The API server refuses every pod of the Job (ServiceAccount admission); the Job
/// controller says so only in FailedCreate events on the Job. The execution must name
/// the account instead of waiting for the deadline and calling it DeadlineExceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_with_a_missing_service_account_is_configuration_error() {
    let req = Req::job(T)
        .service_account("no-such-runner")
        .timeout(Duration::from_secs(60));
    let want = Expect {
        message_contains: Some("serviceaccount \"no-such-runner\" not found"),
        ..pre_execution(FailureReason::ConfigurationError)
    };
    expect_failure(short_grace(), req, want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_hang_past_timeout_is_deadline_exceeded() {
    let req = Req::job(T).outcome("hang").timeout(Duration::from_secs(3));
    let want = Expect {
        reason: FailureReason::DeadlineExceeded,
        exit_code: Some(None),
        was_execution_failure: true,
        message_contains: None,
    };
    expect_failure(StackOptions::default(), req, want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_exit_code_is_task_failed() {
    let req = Req::tekton(T).outcome("fail:3").duration("200ms");
    expect_failure(
        StackOptions::default(),
        req,
        exec_failure(FailureReason::TaskFailed, Some(3)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_oom_is_oom_killed() {
    let req = Req::tekton(T).outcome("oom").duration("200ms");
    expect_failure(
        StackOptions::default(),
        req,
        exec_failure(FailureReason::OomKilled, Some(137)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_image_pull_error_is_image_pull_back_off() {
    let req = Req::tekton(T).outcome("image-pull-error");
    let want = Expect {
        // Not asserted: the sandbox's TaskRun records exit code 137 for a step that
        // never started and the tekton-agent passes it on (see the suite's report).
        exit_code: None,
        ..pre_execution(FailureReason::ImagePullBackOff)
    };
    expect_failure(StackOptions::default(), req, want).await;
}

/// Tekton keeps a TaskRun whose workspace Secret is missing Pending until the pipeline
/// timeout; the tekton-agent gives up after its stuck grace (2 s here) and cancels the
/// run. The 20 s timeout is far enough that DeadlineExceeded would mean no detection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_missing_secret_is_configuration_error() {
    let req = Req::tekton(T)
        .outcome("missing-secret")
        .timeout(Duration::from_secs(20));
    let want = Expect {
        message_contains: Some("secret \"sandbox-missing\" not found"),
        ..pre_execution(FailureReason::ConfigurationError)
    };
    let opts = StackOptions::default().tekton_stuck_grace(2);
    expect_failure(opts, req, want).await;
}

/// Before the stuck grace ends, the running execution already says what it waits on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_missing_secret_is_named_before_the_grace_ends() {
    let stack = Stack::start(StackOptions::default().tekton_stuck_grace(600))
        .await
        .expect("stack");
    let exec = stack
        .run(
            &Req::tekton(T)
                .outcome("missing-secret")
                .timeout(Duration::from_secs(600)),
        )
        .await
        .expect("execute");
    let message = eventually(PHASE_TIMEOUT, "ExecutionRunning naming the cause", || {
        let stack = &stack;
        let name = exec.name.clone();
        async move {
            let e = stack.get(&name).await?;
            let c = condition(&e, "ExecutionRunning").map(|c| c.message.clone());
            Ok(c.filter(|m| m.contains("CreateContainerConfigError")))
        }
    })
    .await
    .expect("the cause before the grace ends");
    assert_eq!(
        message,
        "Execution running (tekton: CreateContainerConfigError)"
    );
}

/// The job engine, likewise: a pod that cannot pull its image leaves the execution
/// Pending, and its status message names the cause long before the grace fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_image_pull_error_is_named_before_the_grace_ends() {
    let stack = Stack::start(StackOptions::default().stuck_grace(600))
        .await
        .expect("stack");
    let exec = stack
        .run(&Req::job(T).outcome("image-pull-error"))
        .await
        .expect("execute");
    // Well inside the 600 s grace; a busy machine may take a while to show the pull fail.
    let within = Duration::from_secs(120);
    let message = eventually(within, "the status message naming the cause", || {
        let stack = &stack;
        let name = exec.name.clone();
        async move {
            let e = stack.get(&name).await?;
            let st = e.status.clone().unwrap_or_default();
            let pending = st.phase() == Phase::Pending;
            // In the puller's own words: the sandbox's "Error: ErrImagePull", the real
            // kubelet's "Failed to pull image ...".
            let names_it = st.message.starts_with("Waiting to start: ")
                && st.message.to_lowercase().contains("pull");
            Ok((pending && names_it).then_some(st.message))
        }
    })
    .await;
    let last = stack.get(&exec.name).await.expect("get");
    let message = message.unwrap_or_else(|e| panic!("{e}: {:?}", last.status));
    assert!(message.starts_with("Waiting to start: "), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_hang_past_timeout_is_deadline_exceeded() {
    let req = Req::tekton(T)
        .outcome("hang")
        .timeout(Duration::from_secs(3));
    let want = Expect {
        reason: FailureReason::DeadlineExceeded,
        // Tekton stops the hanging step itself and records an exit code (1); a timeout
        // reports none, as for a Job.
        exit_code: Some(None),
        was_execution_failure: true,
        message_contains: None,
    };
    expect_failure(StackOptions::default(), req, want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_bundle_not_found_is_configuration_error() {
    let req = Req::tekton(T).outcome("bundle-not-found");
    expect_failure(
        StackOptions::default(),
        req,
        pre_execution(FailureReason::ConfigurationError),
    )
    .await;
}

/// Applies `manifest` (JSON) with `kubectl apply -f`, as an operator would.
async fn kubectl_apply(stack: &Stack, name: &str, manifest: serde_json::Value) {
    let path = stack.dir().join(format!("{name}.json"));
    std::fs::write(&path, manifest.to_string()).expect("manifest written");
    stack
        .kubectl(&["apply", "-f", path.to_str().expect("utf-8 path")])
        .await
        .expect("kubectl apply");
}

/// A quota of zero `resource` objects in the execution namespace.
async fn forbid_by_quota(stack: &Stack, resource: &str) {
    let quota = serde_json::json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-workflows", "namespace": "kubernaut-workflows"},
        "spec": {"hard": {format!("count/{resource}"): "0"}}
    });
    kubectl_apply(stack, "quota", quota).await;
    // A real kube-apiserver admits against `status.hard`, which the resourcequota
    // controller fills in (with `status.used`) a moment later: until then the quota is
    // ignored. The sandbox admits against `spec.hard` at once.
    if stack.backend() == wfe_e2e::Backend::Real {
        eventually(PHASE_TIMEOUT, "the quota's usage computed", || async {
            let used = stack
                .kubectl(&[
                    "get",
                    "resourcequota",
                    "no-workflows",
                    "-n",
                    "kubernaut-workflows",
                    "-o",
                    "jsonpath={.status.used}",
                ])
                .await?;
            Ok((!used.trim().is_empty()).then_some(()))
        })
        .await
        .expect("kube-controller-manager computes the quota's usage");
    }
}

/// The quota refuses the primitive: nothing ran, so the target is not blocked.
fn quota_exceeded(resource: &'static str) -> Expect {
    Expect {
        message_contains: Some(resource),
        ..pre_execution(FailureReason::ResourceExhausted)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_refused_by_a_quota_is_resource_exhausted() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    forbid_by_quota(&stack, "jobs.batch").await;
    let want = quota_exceeded("exceeded quota: no-workflows, requested: count/jobs.batch=1");
    expect_failure_on(stack, Req::job(T), want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_refused_by_a_quota_is_resource_exhausted() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    forbid_by_quota(&stack, "pipelineruns.tekton.dev").await;
    let want = quota_exceeded("exceeded quota: no-workflows");
    expect_failure_on(stack, Req::tekton(T), want).await;
}

/// The execution namespace is being deleted (an object's finalizer keeps it
/// Terminating): the API server forbids the Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_in_a_terminating_namespace_is_forbidden() {
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let held = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "kubernaut-workflows",
                     "finalizers": ["e2e.kubernaut.ai/hold"]}
    });
    kubectl_apply(&stack, "held", held).await;
    stack
        .kubectl(&["delete", "namespace", "kubernaut-workflows", "--wait=false"])
        .await
        .expect("namespace deleted");
    let phase = stack
        .kubectl(&[
            "get",
            "namespace",
            "kubernaut-workflows",
            "-o",
            "jsonpath={.status.phase}",
        ])
        .await
        .expect("namespace still there");
    assert_eq!(phase, "Terminating");
    let want = Expect {
        message_contains: Some("because it is being terminated"),
        ..pre_execution(FailureReason::Forbidden)
    };
    expect_failure_on(stack, Req::job(T), want).await;
}
