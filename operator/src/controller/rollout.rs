//! Rolling the app when its contract changes (`appConfig.rolloutOnChange`).

use super::Context;
use crate::Result;
use crate::components::labels::CONFIG_CHECKSUM_ANNOTATION;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use perf_operator_api::PerformanceProfile;
use serde_json::json;

/// Field manager of the checksum annotation on the target; distinct so it never releases fields of other applies.
const CHECKSUM_MANAGER: &str = "perf-operator-config";

/// Sets the contract checksum on the target's pod template, so a contract change rolls the app.
pub async fn roll_target_on_change(profile: &PerformanceProfile, ctx: &Context, checksum: &str) -> Result<()> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = &profile.spec.target_ref.name;
    let Some(target) = api.get_opt(name).await? else { return Ok(()) };
    let current = target
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(CONFIG_CHECKSUM_ANNOTATION).cloned());
    if current.as_deref() == Some(checksum) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
        "spec": { "template": { "metadata": { "annotations": { CONFIG_CHECKSUM_ANNOTATION: checksum } } } },
    });
    api.patch(name, &PatchParams::apply(CHECKSUM_MANAGER).force(), &Patch::Apply(&patch)).await?;
    ctx.event(
        profile,
        false,
        "RolloutTriggered",
        format!("app contract changed (sha256 {}), rolling {name}", checksum.get(..12).unwrap_or(checksum)),
    )
    .await;
    Ok(())
}
