//! The committed CRD must be what the Rust types generate, and must carry
//! what kube-derive cannot express by itself.

use wfe_k8s::crd::{SPEC_IMMUTABLE_MESSAGE, workflow_execution_crd, workflow_execution_crd_yaml};

#[test]
fn committed_crd_matches_the_rust_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/kubernaut.ai_workflowexecutions.yaml"
    );
    let committed = std::fs::read_to_string(path)
        .expect("deploy/crds/kubernaut.ai_workflowexecutions.yaml exists");
    let generated = workflow_execution_crd_yaml().expect("renders");
    assert!(
        committed == generated,
        "the committed CRD is stale: run `cargo run -p wfe-k8s --bin gen-crds`"
    );
}

#[test]
fn spec_is_immutable_and_target_is_selectable() {
    let crd = workflow_execution_crd();
    let version = &crd.spec.versions[0];
    let fields: Vec<&str> = version
        .selectable_fields
        .iter()
        .flatten()
        .map(|f| f.json_path.as_str())
        .collect();
    assert!(fields.contains(&".spec.targetResource"), "{fields:?}");
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    let spec = &schema.properties.as_ref().expect("properties")["spec"];
    let rules = spec
        .x_kubernetes_validations
        .as_ref()
        .expect("CEL rules on spec");
    assert_eq!(rules[0].rule, "self == oldSelf");
    assert_eq!(rules[0].message.as_deref(), Some(SPEC_IMMUTABLE_MESSAGE));
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["wfe".to_string()][..])
    );
}

#[test]
fn printer_columns_are_the_documented_ones() {
    let crd = workflow_execution_crd();
    let names: Vec<&str> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Phase", "Engine", "Workflow", "Target", "Duration", "Reason", "Age"
        ]
    );
}

/// REASON shows why an execution failed or was skipped (`status.reason`, written with
/// the failure or skip), not the Ready condition's `NotReady`.
#[test]
fn the_reason_column_reads_status_reason() {
    let crd = workflow_execution_crd();
    let version = &crd.spec.versions[0];
    let reason = version
        .additional_printer_columns
        .iter()
        .flatten()
        .find(|c| c.name == "Reason")
        .expect("a Reason column");
    assert_eq!(reason.json_path, ".status.reason");
    let status = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| s.properties.as_ref())
        .and_then(|p| p.get("status"))
        .and_then(|s| s.properties.as_ref())
        .expect("status properties");
    assert_eq!(
        status.get("reason").and_then(|r| r.type_.as_deref()),
        Some("string")
    );
}
