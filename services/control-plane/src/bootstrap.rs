//! What a fresh cluster needs before the product runs: CRDs (established) and
//! namespaces.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::Value;

const FIELD_MANAGER: &str = "wfe-control-plane";

/// Tekton's CRDs from `dir` (each YAML file, multi-document allowed), made usable
/// without Tekton's webhook: see [`without_conversion_webhook`].
pub fn tekton_crds(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .with_context(|| format!("parsing {}", file.display()))?;
            if value["kind"] == "CustomResourceDefinition" {
                crds.push(without_conversion_webhook(value));
            }
        }
    }
    if crds.is_empty() {
        bail!("no CustomResourceDefinition in {}", dir.display());
    }
    Ok(crds)
}

/// Tekton's CRDs serve v1beta1 and v1 and convert between them through the
/// `tekton-pipelines-webhook` Service, which does not run here. Only the storage
/// version is kept, without the conversion stanza, so every request is served
/// from stored objects as they are, never through a webhook nothing answers.
pub fn without_conversion_webhook(mut crd: Value) -> Value {
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("conversion");
        if let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) {
            versions.retain(|v| v["storage"] == Value::Bool(true));
        }
    }
    crd
}

/// Applies `crds` (server-side, so a restart re-applies them unchanged) and waits
/// until each is Established.
pub async fn install_crds(client: &kube::Client, crds: &[Value]) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd["metadata"]["name"]
            .as_str()
            .context("a CRD without metadata.name")?;
        api.patch(name, &params, &Patch::Apply(crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
    }
    for crd in crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        wait_established(&api, name).await?;
    }
    Ok(())
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let crd = api.get(name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("CRD {name} was not Established after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates each namespace that does not exist yet (labels included: the
/// PodSecurity level of deploy/'s namespaces is enforced by a real API server).
pub async fn ensure_namespaces(
    client: &kube::Client,
    namespaces: &[Namespace],
) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        match api.create(&PostParams::default(), ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("creating namespace {name}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_storage_version_stays_and_no_webhook() {
        let crd = json!({
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "pipelineruns.tekton.dev"},
            "spec": {
                "conversion": {"strategy": "Webhook", "webhook": {}},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true}
                ]
            }
        });
        let out = without_conversion_webhook(crd);
        assert!(out["spec"].get("conversion").is_none());
        assert_eq!(
            out["spec"]["versions"],
            json!([{"name": "v1", "served": true, "storage": true}])
        );
    }
}
