use super::*;
use wfe_k8s::labels;
use wfe_proto::agent::ExecutionKey;
use wfe_proto::v1::{DeclaredParameterNames, Dependencies, WorkflowReference};

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid")
}

fn assign() -> Assign {
    Assign {
        execution: Some(ExecutionKey {
            name: "we-1".into(),
            namespace: "payment".into(),
            uid: "u-1".into(),
        }),
        attempt: 1,
        fencing_token: 1,
        primitive_name: "wfe-0123456789abcdef-a1".into(),
        target_resource: "payment/deployment/payment-api".into(),
        workflow_ref: Some(WorkflowReference {
            workflow_id: "restart-deployment".into(),
            container_image: "ghcr.io/kubernaut/workflows/restart-deployment:v1.0.0".into(),
            ..Default::default()
        }),
        parameters: [
            ("NAMESPACE", "payment"),
            ("DEPLOYMENT_NAME", "payment-api"),
            ("EXTRA", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        declared_parameter_names: Some(DeclaredParameterNames {
            names: vec!["NAMESPACE".into(), "DEPLOYMENT_NAME".into()],
        }),
        service_account_name: "custom-sa".into(),
        dependencies: Some(Dependencies {
            secrets: vec!["token".into()],
            config_maps: vec!["cfg".into()],
        }),
        deadline: Some(prost_types::Timestamp {
            seconds: 1_700_000_000 + 1_500,
            nanos: 0,
        }),
        ..Default::default()
    }
}

#[test]
fn pipeline_run_matches_reference_4_3() {
    let pr = build_pipeline_run(&assign(), "kubernaut-workflows", now()).expect("builds");
    assert_eq!(pr.metadata.name.as_deref(), Some("wfe-0123456789abcdef-a1"));
    let v = serde_json::to_value(&pr).expect("serializes");
    assert_eq!(v["apiVersion"], "tekton.dev/v1");
    assert_eq!(v["kind"], "PipelineRun");
    let r = &pr.spec.pipeline_ref.as_ref().expect("ref");
    assert_eq!(r.resolver.as_deref(), Some("bundles"));
    let rp: Vec<(&str, &str)> = r
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        rp,
        [
            (
                "bundle",
                "ghcr.io/kubernaut/workflows/restart-deployment:v1.0.0"
            ),
            ("name", "workflow"),
            ("kind", "pipeline")
        ]
    );
    let params: Vec<(&str, &str)> = pr
        .spec
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("DEPLOYMENT_NAME", "payment-api"),
            ("NAMESPACE", "payment"),
            ("TARGET_RESOURCE", "payment/deployment/payment-api")
        ]
    );
    let ws: Vec<&str> = pr.spec.workspaces.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(ws, ["secret-token", "configmap-cfg"]);
    assert_eq!(
        pr.spec.workspaces[0]
            .secret
            .as_ref()
            .map(|s| s.secret_name.as_str()),
        Some("token")
    );
    let trt = pr.spec.task_run_template.as_ref().expect("template");
    assert_eq!(trt.service_account_name.as_deref(), Some("custom-sa"));
    let psc = &trt.pod_template.as_ref().expect("pod template")["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        pr.spec
            .timeouts
            .as_ref()
            .and_then(|t| t.pipeline.as_deref()),
        Some("25m0s")
    );
    let l = pr.metadata.labels.as_ref().expect("labels");
    assert_eq!(
        l.get(labels::TARGET_RESOURCE).map(String::as_str),
        Some("payment__deployment__payment-api")
    );
    assert_eq!(
        l.get(labels::EXECUTION_ENGINE).map(String::as_str),
        Some("tekton")
    );
}

#[test]
fn no_params_gives_exactly_target_resource() {
    let mut a = assign();
    a.parameters.clear();
    a.deadline = None;
    a.service_account_name.clear();
    let pr = build_pipeline_run(&a, "ns", now()).expect("builds");
    assert_eq!(pr.spec.params.len(), 1);
    assert_eq!(pr.spec.params[0].name, "TARGET_RESOURCE");
    assert!(pr.spec.timeouts.is_none());
    assert!(
        pr.spec
            .task_run_template
            .as_ref()
            .and_then(|t| t.service_account_name.as_ref())
            .is_none()
    );
}

#[test]
fn timeout_table() {
    let n = now();
    let cases = [
        (None, None),
        (
            Some(n + jiff::SignedDuration::from_secs(3600)),
            Some("1h0m0s"),
        ),
        (Some(n + jiff::SignedDuration::from_secs(45)), Some("45s")),
        (Some(n - jiff::SignedDuration::from_secs(45)), Some("1s")),
        // A 3 s timeout whose run is created 269 ms after acceptance: 2.731 s, not 2 s.
        (
            Some(n + jiff::SignedDuration::from_millis(2_731)),
            Some("2.731s"),
        ),
        // Rounded up to the millisecond: the run never ends before the deadline.
        (
            Some(n + jiff::SignedDuration::from_micros(2_730_400)),
            Some("2.731s"),
        ),
        (
            Some(n + jiff::SignedDuration::from_millis(61_500)),
            Some("1m1.5s"),
        ),
        (Some(n + jiff::SignedDuration::from_millis(300)), Some("1s")),
    ];
    for (d, want) in cases {
        assert_eq!(pipeline_timeout(d, n).as_deref(), want, "{d:?}");
    }
}
