//! Validation of the execution config: service account, timeout and deadline,
//! dependencies, resources and declared parameter names.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::SignedDuration;

use super::fields;
use super::tests::{assert_one, fields_of, now, violations};
use crate::model::ExecutionRequest;

type Mutation = fn(&mut ExecutionRequest);

#[test]
fn service_account_table() {
    for sa in ["", "workflow-runner", "kubernaut.runner-sa"] {
        assert!(
            violations(|r| r.execution_config.service_account_name = sa.into()).is_empty(),
            "{sa:?}"
        );
    }
    for sa in ["Runner", "runner_sa", "-sa", "sa-"] {
        let v = violations(|r| r.execution_config.service_account_name = sa.into());
        assert_one(sa, &v, fields::SERVICE_ACCOUNT, "DNS-1123 subdomain");
    }
}

#[test]
fn timeout_table() {
    // (timeout, problem expected in the description or None when valid)
    let cases = [
        (Duration::from_secs(1), None),
        (Duration::from_secs(1800), None),
        (Duration::from_secs(24 * 3600), None),
        (Duration::ZERO, Some("must be positive")),
        (Duration::from_secs(24 * 3600 + 1), Some("at most 24h0m0s")),
    ];
    for (d, want) in cases {
        let v = violations(|r| r.execution_config.timeout = Some(d));
        match want {
            None => assert!(v.is_empty(), "{d:?}: {v:?}"),
            Some(needle) => assert_one(&format!("{d:?}"), &v, fields::TIMEOUT, needle),
        }
    }
}

#[test]
fn deadline_table() {
    let cases = [
        (SignedDuration::from_secs(1), None),
        (SignedDuration::from_hours(24), None),
        (SignedDuration::ZERO, Some("must be in the future")),
        (
            SignedDuration::from_secs(-60),
            Some("must be in the future"),
        ),
        (
            SignedDuration::from_hours(24) + SignedDuration::from_secs(1),
            Some("at most 24h0m0s from now"),
        ),
    ];
    for (offset, want) in cases {
        let v = violations(|r| r.execution_config.times_out_at = Some(now() + offset));
        match want {
            None => assert!(v.is_empty(), "{offset:?}: {v:?}"),
            Some(needle) => assert_one(&format!("{offset:?}"), &v, fields::TIMES_OUT_AT, needle),
        }
    }
}

#[test]
fn timeout_and_deadline_are_mutually_exclusive() {
    let v = violations(|r| {
        r.execution_config.timeout = Some(Duration::from_secs(60));
        r.execution_config.times_out_at = Some(now() + SignedDuration::from_secs(60));
    });
    assert_one("both", &v, fields::TIMES_OUT_AT, "mutually exclusive");
}

#[test]
fn dependency_names() {
    let cases: &[(&str, Mutation, &str, &str)] = &[
        (
            "bad secret",
            |r| r.execution_config.dependencies.secrets = vec!["ok".into(), "Bad_Secret".into()],
            "spec.execution_config.dependencies.secrets[1]",
            "DNS-1123",
        ),
        (
            "empty secret",
            |r| r.execution_config.dependencies.secrets = vec![String::new()],
            "spec.execution_config.dependencies.secrets[0]",
            "required",
        ),
        (
            "bad config map",
            |r| r.execution_config.dependencies.config_maps = vec!["cm.".into()],
            "spec.execution_config.dependencies.config_maps[0]",
            "DNS-1123",
        ),
        (
            "too many",
            |r| {
                r.execution_config.dependencies.config_maps =
                    (0..65).map(|i| format!("cm-{i}")).collect()
            },
            fields::CONFIG_MAPS,
            "at most 64",
        ),
    ];
    for (name, mutate, field, needle) in cases {
        assert_one(name, &violations(mutate), field, needle);
    }
    let ok = violations(|r| {
        r.execution_config.dependencies.secrets = vec!["tls-cert".into()];
        r.execution_config.dependencies.config_maps = vec!["pipeline.config".into()];
    });
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn resource_requirements() {
    let ok = violations(|r| {
        let res = &mut r.execution_config.resources;
        res.requests.insert("cpu".into(), "100m".into());
        res.requests.insert("memory".into(), "128Mi".into());
        res.limits.insert("nvidia.com/gpu".into(), "1".into());
    });
    assert!(ok.is_empty(), "{ok:?}");
    let v = violations(|r| {
        r.execution_config
            .resources
            .requests
            .insert("cpu".into(), "lots".into());
        r.execution_config
            .resources
            .limits
            .insert("Bad Name".into(), "1".into());
    });
    assert_eq!(
        fields_of(&v),
        [
            "spec.execution_config.resources.requests[cpu]",
            "spec.execution_config.resources.limits[Bad Name]"
        ]
    );
    assert!(v[0].description.contains("not a valid quantity"));
    assert!(v[1].description.contains("not a valid resource name"));
}

#[test]
fn declared_parameter_names() {
    let declared =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| (*s).to_owned()).collect() };
    let ok = declared(&["NAMESPACE", "DEPLOYMENT_NAME"]);
    assert!(violations(|r| r.execution_config.declared_parameter_names = Some(ok)).is_empty());
    assert!(
        violations(|r| r.execution_config.declared_parameter_names = Some(BTreeSet::new()))
            .is_empty()
    );
    let bad = declared(&["NAMESPACE", "bad-name", "HOME"]);
    let v = violations(|r| r.execution_config.declared_parameter_names = Some(bad));
    assert_eq!(
        fields_of(&v),
        [
            "spec.execution_config.declared_parameter_names.names[HOME]",
            "spec.execution_config.declared_parameter_names.names[bad-name]"
        ]
    );
    let many: BTreeSet<String> = (0..257).map(|i| format!("P{i}")).collect();
    let v = violations(|r| r.execution_config.declared_parameter_names = Some(many));
    assert_one("257", &v, fields::DECLARED, "at most 256");
}
