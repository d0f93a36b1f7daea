use super::*;
use serde_json::json;

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "required": ["targetResource"], "properties": {
            "targetResource": {"type": "string", "minLength": 1, "pattern": "^[a-z]+/[a-z-]+$",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "targetResource is immutable"}]},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "opt": {"type": "string", "nullable": true}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}})
}

fn fields(causes: &[Cause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn valid_object_passes() {
    let obj = json!({"spec": {"targetResource": "ns/deploy-x", "replicas": 2, "tags": ["a"]}});
    assert!(validate(&schema(), &obj, None, "").is_empty());
}

#[test]
fn required_type_enum_and_bounds_name_the_field() {
    let obj = json!({"spec": {"mode": "c", "replicas": 9, "tags": ["a", "b", "c"]}});
    let causes = validate(&schema(), &obj, None, "");
    assert_eq!(
        fields(&causes),
        vec![
            "spec.targetResource",
            "spec.mode",
            "spec.replicas",
            "spec.tags"
        ]
    );
    let obj = json!({"spec": {"targetResource": 5}});
    assert_eq!(
        fields(&validate(&schema(), &obj, None, "")),
        vec!["spec.targetResource"]
    );
    let obj = json!({"spec": {"targetResource": "NOPE"}});
    assert!(
        validate(&schema(), &obj, None, "")[0]
            .message
            .contains("should match")
    );
}

#[test]
fn self_equals_old_self_is_enforced_on_update_only() {
    let old = json!({"spec": {"targetResource": "ns/a"}});
    let new = json!({"spec": {"targetResource": "ns/b"}});
    assert!(validate(&schema(), &new, None, "").is_empty());
    let causes = validate(&schema(), &new, Some(&old), "");
    assert_eq!(fields(&causes), vec!["spec.targetResource"]);
    assert!(causes[0].message.contains("immutable"));
}

#[test]
fn prune_drops_unknown_but_keeps_preserved_and_metadata() {
    let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "anything": 1},
        "spec": {"targetResource": "ns/a", "bogus": 1, "params": {"free": {"form": true}}, "opt": null, "mode": null},
        "extra": true});
    prune(&schema(), &mut obj, true);
    apply_defaults(&schema(), &mut obj);
    assert_eq!(
        obj,
        json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "anything": 1},
        "spec": {"targetResource": "ns/a", "params": {"free": {"form": true}}, "opt": null, "mode": "a"}})
    );
}
