//! Tekton's PipelineRun and TaskRun CRDs (`services/sandbox/crds/`), so the local
//! stack and tests can install them; leaving them out exercises "Tekton missing".

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client};

const PIPELINERUNS: &str = include_str!("../../crds/pipelineruns.tekton.dev.yaml");
const TASKRUNS: &str = include_str!("../../crds/taskruns.tekton.dev.yaml");

/// The Tekton CRDs (`pipelineruns.tekton.dev`, `taskruns.tekton.dev`). The YAML is
/// part of the crate and checked by a test, so a parse failure cannot happen at run
/// time; should it anyway, the broken CRD is left out and logged.
pub fn tekton_crds() -> Vec<CustomResourceDefinition> {
    [PIPELINERUNS, TASKRUNS]
        .iter()
        .filter_map(|yaml| match serde_yaml::from_str(yaml) {
            Ok(crd) => Some(crd),
            Err(error) => {
                tracing::error!(%error, "embedded Tekton CRD does not parse");
                None
            }
        })
        .collect()
}

/// Creates the Tekton CRDs; ones that already exist are left as they are.
pub async fn install_tekton_crds(client: Client) -> kube::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in tekton_crds() {
        match api.create(&PostParams::default(), &crd).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            other => drop(other?),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_parse_with_status_and_columns() {
        let crds = tekton_crds();
        let names: Vec<_> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            vec!["pipelineruns.tekton.dev", "taskruns.tekton.dev"]
        );
        for crd in &crds {
            let v = &crd.spec.versions[0];
            assert_eq!((v.name.as_str(), v.served, v.storage), ("v1", true, true));
            assert!(
                v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
            let columns: Vec<_> = v
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(
                columns,
                vec!["Succeeded", "Reason", "StartTime", "CompletionTime"]
            );
        }
    }
}
