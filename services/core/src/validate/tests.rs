use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::model::{RemediationRequestRef, WorkflowRef};

pub(super) const DIGEST: &str =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub(super) fn now() -> Timestamp {
    "2026-03-01T12:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(super) fn valid() -> ExecutionRequest {
    ExecutionRequest {
        remediation_request_ref: RemediationRequestRef {
            name: "rr-payment-1".into(),
            namespace: "kubernaut-system".into(),
            uid: "7f1c2a9e-0000-4000-8000-000000000001".into(),
        },
        workflow_ref: WorkflowRef {
            workflow_id: "restart-deployment".into(),
            workflow_name: "restart-deployment".into(),
            action_type: "RestartDeployment".into(),
            version: "1.0.0".into(),
            container_image: format!("ghcr.io/kubernaut/workflows/restart:v1.0.0@{DIGEST}"),
        },
        engine: "job".into(),
        target: "payment/Deployment/payment-api".into(),
        cluster_id: String::new(),
        parameters: [("NAMESPACE", "payment"), ("DEPLOYMENT_NAME", "payment-api")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        execution_config: Default::default(),
        confidence: 0.92,
        rationale: "memory pressure".into(),
        idempotency_key: "rr-payment-1/attempt-1".into(),
        namespace: "kubernaut-system".into(),
    }
}

/// Fields of the violations `mutate` causes on an otherwise valid request.
pub(super) fn violations(mutate: impl FnOnce(&mut ExecutionRequest)) -> Vec<FieldViolation> {
    let mut req = valid();
    mutate(&mut req);
    validate_request(&req, now()).err().unwrap_or_default()
}

pub(super) fn fields_of(v: &[FieldViolation]) -> Vec<&str> {
    v.iter().map(|f| f.field.as_str()).collect()
}

/// Asserts exactly one violation on `field` whose description contains `needle`.
pub(super) fn assert_one(name: &str, v: &[FieldViolation], field: &str, needle: &str) {
    assert_eq!(fields_of(v), [field], "{name}: {v:?}");
    assert!(
        v[0].description.contains(needle),
        "{name}: {:?} should contain {needle:?}",
        v[0].description
    );
}

type Mutation = fn(&mut ExecutionRequest);

#[test]
fn valid_request_passes_and_is_parsed() {
    let got = validate_request(&valid(), now()).unwrap_or_else(|v| panic!("{v:?}"));
    assert_eq!(got.engine, Engine::Job);
    assert_eq!(got.target.to_string(), "payment/Deployment/payment-api");
    let mut tekton = valid();
    tekton.engine.clear();
    assert_eq!(
        validate_request(&tekton, now()).map(|r| r.engine),
        Ok(Engine::Tekton)
    );
}

#[test]
fn required_fields() {
    let cases: &[(&str, Mutation)] = &[
        (fields::WORKFLOW_ID, |r| r.workflow_ref.workflow_id.clear()),
        (fields::WORKFLOW_NAME, |r| {
            r.workflow_ref.workflow_name.clear()
        }),
        (fields::ACTION_TYPE, |r| r.workflow_ref.action_type.clear()),
        (fields::VERSION, |r| r.workflow_ref.version.clear()),
        (fields::CONTAINER_IMAGE, |r| {
            r.workflow_ref.container_image.clear()
        }),
        (fields::RR_NAME, |r| r.remediation_request_ref.name.clear()),
        (fields::RR_NAMESPACE, |r| {
            r.remediation_request_ref.namespace.clear()
        }),
        (fields::NAMESPACE, |r| r.namespace.clear()),
        (fields::TARGET, |r| r.target.clear()),
    ];
    for (field, mutate) in cases {
        let v = violations(mutate);
        assert_eq!(fields_of(&v), [*field], "{v:?}");
        assert!(
            v[0].description.contains("required"),
            "{field}: {}",
            v[0].description
        );
    }
}

#[test]
fn target_format_table() {
    let ok = [
        "default/deployment/nginx",
        "prod/statefulset/postgres",
        "kube-system/daemonset/fluentd",
        "ns-1/deployment/app",
        "node/worker-node-1",
        "persistentvolume/pv-data-01",
        "clusterrole/admin",
        "namespace/production",
        "ns/ClusterRole/system:aggregate-to-edit",
    ];
    for t in ok {
        assert!(violations(|r| r.target = t.into()).is_empty(), "{t}");
    }
    let bad = [
        ("default", "got 1 parts"),
        ("default/deployment/app/extra", "got 4 parts"),
        ("a//b", "has empty part at position 1"),
        ("/Deployment/x", "has empty part at position 0"),
        ("ns/Deployment/my app", "whitespace"),
    ];
    for (t, needle) in bad {
        assert_one(
            t,
            &violations(|r| r.target = t.into()),
            fields::TARGET,
            needle,
        );
    }
    assert_one(
        "long",
        &violations(|r| r.target = format!("ns/Kind/{}", "a".repeat(1020))),
        fields::TARGET,
        "at most 1024",
    );
}

#[test]
fn container_image_table() {
    let bad = [
        ("ghcr.io/kubernaut/restart:v1", "pinned by digest"),
        ("ghcr.io/kubernaut/restart@sha256:abc", "64 lowercase hex"),
        ("GHCR.io/Kubernaut/restart@x", "64 lowercase hex"),
    ];
    for (img, needle) in bad {
        let v = violations(|r| r.workflow_ref.container_image = img.into());
        assert_one(img, &v, fields::CONTAINER_IMAGE, needle);
    }
    let v = violations(|r| {
        r.workflow_ref.container_image = format!("ghcr.io/Kubernaut/restart@{DIGEST}")
    });
    assert_one("uppercase path", &v, fields::CONTAINER_IMAGE, "Kubernaut");
    // A Tekton bundle is the same kind of reference.
    assert!(
        violations(|r| r.workflow_ref.container_image = format!("quay.io/org/bundle@{DIGEST}"))
            .is_empty()
    );
}

#[test]
fn engine_table() {
    for e in ["", "job", "tekton"] {
        assert!(violations(|r| r.engine = e.into()).is_empty(), "{e:?}");
    }
    for e in ["ansible", "Job", "TEKTON"] {
        assert_one(
            e,
            &violations(|r| r.engine = e.into()),
            fields::ENGINE,
            "unsupported execution engine",
        );
    }
}

#[test]
fn kubernetes_name_rules() {
    let cases: &[(&str, Mutation, &str)] = &[
        (
            "namespace upper",
            |r| r.namespace = "Kubernaut".into(),
            fields::NAMESPACE,
        ),
        (
            "namespace dotted",
            |r| r.namespace = "a.b".into(),
            fields::NAMESPACE,
        ),
        (
            "namespace too long",
            |r| r.namespace = "a".repeat(64),
            fields::NAMESPACE,
        ),
        (
            "rr namespace",
            |r| r.remediation_request_ref.namespace = "ns_1".into(),
            fields::RR_NAMESPACE,
        ),
        (
            "rr name",
            |r| r.remediation_request_ref.name = "RR!".into(),
            fields::RR_NAME,
        ),
        (
            "cluster id",
            |r| r.cluster_id = "Prod East".into(),
            fields::CLUSTER_ID,
        ),
        (
            "cluster id dotted",
            |r| r.cluster_id = "prod.east".into(),
            fields::CLUSTER_ID,
        ),
        (
            "workflow id label",
            |r| r.workflow_ref.workflow_id = "wf/1".into(),
            fields::WORKFLOW_ID,
        ),
    ];
    for (name, mutate, field) in cases {
        let v = violations(mutate);
        assert_eq!(fields_of(&v), [*field], "{name}: {v:?}");
    }
    assert!(violations(|r| r.cluster_id = "prod-east".into()).is_empty());
    assert!(violations(|r| r.remediation_request_ref.name = "rr.payment-1".into()).is_empty());
}

#[test]
fn parameter_rules() {
    let set = |k: &str, val: &str| {
        let (k, val) = (k.to_owned(), val.to_owned());
        violations(move |r| {
            r.parameters.insert(k, val);
        })
    };
    let bad_names = ["lower", "Mixed_Case", "_X", "9X", "A-B", "A.B", "A B", ""];
    for k in bad_names {
        assert_one(
            k,
            &set(k, "v"),
            &format!("spec.parameters[{k}]"),
            "UPPER_SNAKE_CASE",
        );
    }
    for k in ["TARGET_RESOURCE", "HOME", "TMPDIR"] {
        assert_one(
            k,
            &set(k, "v"),
            &format!("spec.parameters[{k}]"),
            "reserved",
        );
    }
    assert_one(
        "long name",
        &set(&"A".repeat(129), "v"),
        &format!("spec.parameters[{}]", "A".repeat(129)),
        "at most 128",
    );
    assert!(set("REPLICAS_2", "").is_empty(), "empty value is fine");
    assert!(
        set("BIG", &"x".repeat(4096)).is_empty(),
        "4 KiB is the limit"
    );
    assert_one(
        "too big",
        &set("BIG", &"x".repeat(4097)),
        "spec.parameters[BIG]",
        "at most 4096 bytes",
    );
    assert_one("nul", &set("NUL", "a\0b"), "spec.parameters[NUL]", "NUL");
}

#[test]
fn parameter_count_limit() {
    let many = |n: usize| -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("P{i}"), "v".to_owned())).collect()
    };
    assert!(violations(|r| r.parameters = many(64)).is_empty());
    assert_one(
        "65",
        &violations(|r| r.parameters = many(65)),
        fields::PARAMETERS,
        "at most 64 parameters",
    );
}

#[test]
fn request_size_limit() {
    // 63 values of 4 KiB stay under 256 KiB; adding a big rationale pushes it over.
    let big: BTreeMap<String, String> = (0..63)
        .map(|i| (format!("P{i}"), "x".repeat(4096)))
        .collect();
    assert!(violations(|r| r.parameters = big.clone()).is_empty());
    let v = violations(|r| {
        r.parameters = big;
        r.rationale = "y".repeat(16 * 1024);
    });
    assert_one("total", &v, fields::REQUEST, "at most 262144");
}

#[test]
fn audit_field_rules() {
    let cases: &[(&str, Mutation, &str, &str)] = &[
        (
            "negative confidence",
            |r| r.confidence = -0.01,
            fields::CONFIDENCE,
            "between 0 and 1",
        ),
        (
            "confidence above 1",
            |r| r.confidence = 1.5,
            fields::CONFIDENCE,
            "between 0 and 1",
        ),
        (
            "NaN confidence",
            |r| r.confidence = f64::NAN,
            fields::CONFIDENCE,
            "between 0 and 1",
        ),
        (
            "rationale",
            |r| r.rationale = "r".repeat(16 * 1024 + 1),
            fields::RATIONALE,
            "at most 16384",
        ),
        (
            "key length",
            |r| r.idempotency_key = "k".repeat(254),
            fields::IDEMPOTENCY_KEY,
            "at most 253",
        ),
        (
            "key spaces",
            |r| r.idempotency_key = "a b".into(),
            fields::IDEMPOTENCY_KEY,
            "printable",
        ),
        (
            "key control",
            |r| r.idempotency_key = "a\nb".into(),
            fields::IDEMPOTENCY_KEY,
            "printable",
        ),
        (
            "key unicode",
            |r| r.idempotency_key = "clé".into(),
            fields::IDEMPOTENCY_KEY,
            "printable",
        ),
        (
            "version control char",
            |r| r.workflow_ref.version = "1\u{7}".into(),
            fields::VERSION,
            "control",
        ),
        (
            "action type long",
            |r| r.workflow_ref.action_type = "A".repeat(254),
            fields::ACTION_TYPE,
            "at most 253",
        ),
    ];
    for (name, mutate, field, needle) in cases {
        assert_one(name, &violations(mutate), field, needle);
    }
    for c in [0.0, 1.0, 0.5] {
        assert!(violations(|r| r.confidence = c).is_empty(), "{c}");
    }
    assert!(
        violations(|r| r.idempotency_key.clear()).is_empty(),
        "the key is optional"
    );
    assert!(violations(|r| r.idempotency_key = "k".repeat(253)).is_empty());
}

#[test]
fn collects_every_violation() {
    let v = violations(|r| {
        r.workflow_ref.container_image.clear();
        r.target = "bad".into();
        r.engine = "ansible".into();
        r.namespace = "Bad".into();
        r.parameters.insert("lower".into(), "v".into());
        r.confidence = 2.0;
    });
    assert_eq!(
        fields_of(&v),
        [
            fields::CONTAINER_IMAGE,
            fields::ENGINE,
            fields::TARGET,
            fields::NAMESPACE,
            "spec.parameters[lower]",
            fields::CONFIDENCE,
        ]
    );
}
