//! The RemediationRequest as the owner of its executions, as upstream's orchestrator makes
//! it: deleting the request lets Kubernetes' garbage collector delete its executions.
//!
//! Only when the request is really there: the caller gave its uid, it lives in the
//! execution's namespace (owner references cannot cross namespaces), and a GET of
//! `kubernaut.ai/v1alpha1` RemediationRequest by name answers with that uid. An owner
//! reference to an object that does not exist would have the garbage collector delete the
//! execution at once, so any doubt (no such resource in this cluster, not allowed to read
//! it, another uid) means no owner reference; retention still deletes the execution.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use wfe_core::model::RemediationRequestRef;

/// API version of the RemediationRequest.
pub const API_VERSION: &str = "kubernaut.ai/v1alpha1";
/// Kind of the RemediationRequest.
pub const KIND: &str = "RemediationRequest";

fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("kubernaut.ai", "v1alpha1", KIND);
    ApiResource::from_gvk_with_plural(&gvk, "remediationrequests")
}

/// The owner reference for an execution in `namespace` of the request `rr`, when the
/// request exists there with the uid the caller gave.
pub async fn of_request(
    client: &kube::Client,
    rr: &RemediationRequestRef,
    namespace: &str,
) -> Option<OwnerReference> {
    if rr.uid.is_empty() || rr.namespace != namespace {
        return None;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource());
    match api.get_opt(&rr.name).await {
        Ok(Some(found)) if found.uid().as_deref() == Some(rr.uid.as_str()) => {
            Some(reference(&rr.name, &rr.uid))
        }
        Ok(found) => {
            let uid = found.and_then(|f| f.uid());
            tracing::debug!(request = %rr.name, %namespace, given = %rr.uid, found = ?uid, "RemediationRequest not there with that uid; no owner reference");
            None
        }
        Err(e) => {
            tracing::debug!(request = %rr.name, %namespace, error = %e, "RemediationRequest not readable; no owner reference");
            None
        }
    }
}

/// A controller reference that does not block the owner's deletion (that would need
/// rights on the owner's finalizers).
pub fn reference(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}
