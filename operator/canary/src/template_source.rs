//! Reading the templates a canary spec names from the API server: one GET each, a missing one left out for
//! [`crate::templates::resolve`] to name. Shared by the operator's analysis and `canary analyze NAME`.

use crate::templates::{Templates, references};
use crate::{Error, Result};
use kube::Client;
use kube::api::Api;
use perf_operator_api::{AnalysisTemplate, CanarySpec, ClusterAnalysisTemplate, TemplateKind};

/// The templates `spec` names: namespaced ones from `namespace`, cluster ones unless `cluster_refused` says why
/// none may be named (then kept in [`Templates::cluster_refused`], and none is read).
pub async fn read(
    client: &Client,
    namespace: &str,
    spec: &CanarySpec,
    cluster_refused: Option<String>,
) -> Result<Templates> {
    let mut templates = Templates { cluster_refused, ..Templates::default() };
    for r in references(spec) {
        let what = format!("get {} {}", r.kind, r.name);
        match r.kind {
            TemplateKind::AnalysisTemplate => {
                let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), namespace);
                if let Some(t) = api.get_opt(&r.name).await.map_err(Error::kube(what))? {
                    templates.namespaced.insert(r.name, t.spec.template);
                }
            }
            TemplateKind::ClusterAnalysisTemplate if templates.cluster_refused.is_some() => {}
            TemplateKind::ClusterAnalysisTemplate => {
                let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
                if let Some(t) = api.get_opt(&r.name).await.map_err(Error::kube(what))? {
                    templates.cluster.insert(r.name, t.spec.template);
                }
            }
        }
    }
    Ok(templates)
}
