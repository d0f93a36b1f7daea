use super::*;
use wfe_proto::agent::ExecutionKey;
use wfe_proto::v1::{DeclaredParameterNames, Dependencies, WorkflowReference};

fn assign() -> Assign {
    Assign {
        assignment_id: "as-1".into(),
        execution: Some(ExecutionKey {
            name: "we-1".into(),
            namespace: "payment".into(),
            uid: "u-1".into(),
        }),
        attempt: 1,
        fencing_token: 3,
        primitive_name: "wfe-0123456789abcdef-a1".into(),
        primitive_namespace: "kubernaut-workflows".into(),
        target_resource: "payment/deployment/payment-api".into(),
        workflow_ref: Some(WorkflowReference {
            workflow_id: "restart-deployment".into(),
            container_image: "ghcr.io/k/restart@sha256:abc".into(),
            ..Default::default()
        }),
        parameters: [("NAMESPACE", "payment"), ("SECRET", "x"), ("HOME", "/root")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        declared_parameter_names: Some(DeclaredParameterNames {
            names: vec!["NAMESPACE".into(), "HOME".into()],
        }),
        service_account_name: "wf-runner".into(),
        dependencies: Some(Dependencies {
            secrets: vec!["db-creds".into()],
            config_maps: vec!["settings".into()],
        }),
        ..Default::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("valid")
}

#[test]
fn job_matches_reference_4_2() {
    let job = build_job(&assign(), "kubernaut-workflows", now()).expect("builds");
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("wfe-0123456789abcdef-a1")
    );
    assert_eq!(
        job.metadata.namespace.as_deref(),
        Some("kubernaut-workflows")
    );
    let spec = job.spec.expect("spec");
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
    assert_eq!(spec.active_deadline_seconds, Some(1800));
    let rules = spec.pod_failure_policy.expect("policy").rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].action, "Ignore");
    let exit = rules[1].on_exit_codes.as_ref().expect("exit codes");
    assert_eq!(
        (exit.container_name.as_deref(), exit.values.as_slice()),
        (Some("workflow"), &[137][..])
    );
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("wf-runner"));
    let psc = pod.security_context.expect("pod sc");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(c.name, "workflow");
    assert_eq!(c.image.as_deref(), Some("ghcr.io/k/restart@sha256:abc"));
    assert!(c.command.is_none() && c.args.is_none());
    let sc = c.security_context.as_ref().expect("container sc");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
}

#[test]
fn env_is_target_then_declared_params_then_home_tmpdir() {
    let job = build_job(&assign(), "ns", now()).expect("builds");
    let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
    let env: Vec<(String, String)> = pod.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    let want = [
        ("TARGET_RESOURCE", "payment/deployment/payment-api"),
        ("NAMESPACE", "payment"),
        ("HOME", "/tmp"),
        ("TMPDIR", "/tmp"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    assert_eq!(
        env, want,
        "undeclared SECRET stripped, reserved HOME not overridable"
    );
}

#[test]
fn mounts_volumes_labels() {
    let job = build_job(&assign(), "ns", now()).expect("builds");
    let labels = job.metadata.labels.clone().expect("labels");
    assert_eq!(
        labels.get(labels::EXECUTION_ENGINE).map(String::as_str),
        Some("job")
    );
    assert_eq!(
        labels
            .get(labels::WORKFLOW_EXECUTION_UID)
            .map(String::as_str),
        Some("u-1")
    );
    let ann = job.metadata.annotations.clone().expect("annotations");
    assert_eq!(
        ann.get(labels::TARGET_RESOURCE_ANNOTATION)
            .map(String::as_str),
        Some("payment/deployment/payment-api")
    );
    assert_eq!(
        ann.get(labels::FENCING_TOKEN_ANNOTATION)
            .map(String::as_str),
        Some("3")
    );
    let tmpl = job.spec.expect("spec").template;
    let pod_labels = tmpl.metadata.and_then(|m| m.labels).expect("pod labels");
    assert_eq!(
        pod_labels.get(labels::EXECUTION_ENGINE).map(String::as_str),
        Some("job")
    );
    let pod = tmpl.spec.expect("pod");
    let mounts: Vec<(String, String, Option<bool>)> = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.name, m.mount_path, m.read_only))
        .collect();
    assert_eq!(
        mounts,
        vec![
            (
                "secret-db-creds".into(),
                "/run/kubernaut/secrets/db-creds".into(),
                Some(true)
            ),
            (
                "configmap-settings".into(),
                "/run/kubernaut/configmaps/settings".into(),
                Some(true)
            ),
            ("tmp".into(), "/tmp".into(), None),
        ]
    );
    let vols = pod.volumes.expect("volumes");
    assert_eq!(
        vols[0]
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("db-creds")
    );
    assert_eq!(
        vols[1].config_map.as_ref().map(|c| c.name.as_str()),
        Some("settings")
    );
    assert!(vols[2].empty_dir.is_some());
}

#[test]
fn active_deadline_table() {
    let n = now();
    let cases = [
        (None, 1800),
        (Some(n + jiff::SignedDuration::from_secs(90)), 90),
        (Some(n + jiff::SignedDuration::from_millis(400)), 1),
        (Some(n - jiff::SignedDuration::from_secs(30)), 1),
    ];
    for (deadline, want) in cases {
        assert_eq!(active_deadline_seconds(deadline, n), want, "{deadline:?}");
    }
}

#[test]
fn missing_image_is_an_error_not_a_panic() {
    let mut a = assign();
    a.workflow_ref = None;
    assert_eq!(
        build_job(&a, "ns", now()),
        Err(BuildError::Missing("workflow image"))
    );
    let mut a = assign();
    a.primitive_name.clear();
    assert!(build_job(&a, "ns", now()).is_err());
}
