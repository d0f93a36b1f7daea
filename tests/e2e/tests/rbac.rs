//! deploy/'s least-privilege RBAC, enforced: the sandbox checks tokens and RBAC, the
//! single-cluster overlay's service accounts, Roles and bindings are applied, and each
//! component talks to Kubernetes as its own service account. Everything a component
//! does in a whole execution life (admission, locks, liveness, Jobs and PipelineRuns,
//! their watches, cancel, release) must be allowed; a missing binding must surface as
//! a Forbidden execution that names who lacked what.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use wfe_e2e::clients::{PHASE_TIMEOUT, failure, phase_of};
use wfe_e2e::stack::Component;
use wfe_e2e::v1::{self, FailureReason, Phase};
use wfe_e2e::{Req, Stack, StackOptions, eventually};

/// Lines of a component's log where the API server refused it.
fn refusals(stack: &Stack, c: Component) -> Vec<String> {
    stack
        .log(c)
        .lines()
        .filter(|l| l.contains("is forbidden") || l.contains("Unauthorized"))
        .map(str::to_owned)
        .collect()
}

async fn run_to(stack: &Stack, req: Req, phase: Phase) -> v1::WorkflowExecution {
    stack
        .run_to(&req, phase)
        .await
        .expect("execution reaches its phase")
}

/// Waits until no primitive of `kind` is left in the execution namespace.
async fn all_released(stack: &Stack, kind: &str) {
    eventually(PHASE_TIMEOUT, "primitives released", || {
        let (stack, kind) = (stack, kind.to_owned());
        async move {
            let out = stack
                .kubectl(&["get", &kind, "-n", "kubernaut-workflows", "-o", "name"])
                .await?;
            Ok(out.trim().is_empty().then_some(()))
        }
    })
    .await
    .expect("the agents delete released primitives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_rbac_lets_every_component_do_its_work() {
    let opts = StackOptions::default()
        .rbac()
        .api_flag("--primitive-retention", "1s");
    let stack = Stack::start(opts).await.expect("stack under RBAC");

    run_to(
        &stack,
        Req::job("default/Deployment/job-ok"),
        Phase::Completed,
    )
    .await;
    run_to(
        &stack,
        Req::tekton("default/Deployment/tekton-ok"),
        Phase::Completed,
    )
    .await;
    for req in [
        Req::job("default/Deployment/job-cancel"),
        Req::tekton("default/Deployment/tekton-cancel"),
    ] {
        let running = run_to(&stack, req.outcome("hang"), Phase::Running).await;
        let mut c = stack.grpc_client().await.expect("client");
        c.cancel_workflow_execution(v1::CancelWorkflowExecutionRequest {
            name: running.name.clone(),
            namespace: String::new(),
            reason: "checking what the agents may do".to_owned(),
        })
        .await
        .expect("cancel");
        let failed = stack
            .wait_phase(&running.name, Phase::Failed)
            .await
            .expect("Failed");
        assert_eq!(failure(&failed).unwrap().reason(), FailureReason::Cancelled);
    }
    all_released(&stack, "jobs").await;
    all_released(&stack, "pipelineruns").await;

    for c in [
        Component::Api(0),
        Component::JobAgent(0),
        Component::TektonAgent(0),
    ] {
        assert_eq!(
            refusals(&stack, c),
            Vec::<String>::new(),
            "{c:?} was refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_its_role_binding_fails_the_execution_forbidden() {
    let stack = Stack::start(StackOptions::default().rbac())
        .await
        .expect("stack under RBAC");
    stack
        .kubectl(&[
            "delete",
            "rolebinding",
            "job-agent",
            "-n",
            "kubernaut-workflows",
        ])
        .await
        .expect("binding deleted");

    let failed = run_to(&stack, Req::job("default/Deployment/web"), Phase::Failed).await;
    let f = failure(&failed).expect("failure details");
    assert_eq!(f.reason(), FailureReason::Forbidden, "{f:?}");
    assert!(!f.was_execution_failure, "nothing ran: {f:?}");
    assert!(
        f.message.contains(
            "User \"system:serviceaccount:kubernaut-system:job-agent\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"kubernaut-workflows\""
        ),
        "names who lacked what: {}",
        f.message
    );
    assert_eq!(phase_of(&failed), Phase::Failed);
}
