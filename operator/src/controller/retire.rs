//! A canary section removed from a live profile (in Git, say): the target gets its pods back, then the copies go.
//! While a canary is configured the target sits at zero replicas and `<target>-primary` serves; without this, the
//! target stayed at zero and a later deletion of the profile took the primary (and the service) with it.
//!
//! Order, one step per round (the Deployments' watch events start the rounds): the target is scaled to the
//! primary's full size; once its pods are all ready the role Services (`<target>-primary`, `<target>-canary`, which
//! an HTTPRoute may still name) select the target's pods; then the primary's HPA copy, the canary and the primary
//! are deleted. Nothing is deleted while the target cannot serve.

use super::Context;
use super::apply::{controlled_by, delete};
use crate::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use perf_canary::objects;
use perf_operator_api::{FIELD_MANAGER, PerformanceProfile};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How often a hand-back in progress is looked at again besides the Deployments' events.
const POLL: Duration = Duration::from_secs(5);

/// One step of retiring the canary copies of a profile with no canary section; `Some(after)` while it goes on.
pub async fn canary(profile: &PerformanceProfile, ctx: &Context) -> Result<Option<Duration>> {
    let Some(uid) = profile.uid() else { return Ok(None) };
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let target = &profile.spec.target_ref.name;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let controlled = |d: Option<Arc<Deployment>>| d.filter(|d| controlled_by(d.meta(), &uid));
    let primary = controlled(ctx.caches.get_or_read(&deployments, &namespace, &objects::primary_name(target)).await?);
    let canary = controlled(ctx.caches.get_or_read(&deployments, &namespace, &objects::canary_name(target)).await?);
    let Some(primary) = primary else {
        // No primary serving: a canary left alone (a run cut short) serves nobody the target does not.
        if canary.is_some() {
            delete::<Deployment>(&ctx.client, &namespace, &objects::canary_name(target)).await?;
        }
        return Ok(None);
    };
    let Some(live) = deployments.get_opt(target).await? else {
        // Nothing to hand the pods to: the primary keeps serving until the target is back.
        return Ok(Some(POLL * 12));
    };
    let full = objects::full_replicas(&primary);
    if objects::replicas(&live) < full {
        let body = objects::target_replicas(target, full);
        deployments.patch(target, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
        let note = format!(
            "spec.canary removed: {target} gets its {full} pod(s) back; {} and {} go once they are ready",
            objects::primary_name(target),
            objects::canary_name(target)
        );
        ctx.event(profile, false, "CanaryRetiring", note).await;
        return Ok(Some(POLL));
    }
    if !objects::rollout_complete(&live) {
        return Ok(Some(POLL));
    }
    point_services_at_target(ctx, &namespace, &live, &uid).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &namespace);
    if hpas.get_opt(&objects::primary_name(target)).await?.is_some_and(|h| controlled_by(h.meta(), &uid)) {
        delete::<HorizontalPodAutoscaler>(&ctx.client, &namespace, &objects::primary_name(target)).await?;
    }
    if canary.is_some() {
        delete::<Deployment>(&ctx.client, &namespace, &objects::canary_name(target)).await?;
    }
    delete::<Deployment>(&ctx.client, &namespace, &objects::primary_name(target)).await?;
    let note = format!("spec.canary removed: {target} serves with {full} pod(s); the primary and canary are gone");
    ctx.event(profile, false, "CanaryRetired", note).await;
    Ok(None)
}

/// The role Services of the target, when this profile controls them, select the target's own pods (its selector,
/// without the role): a route still naming them keeps reaching pods.
async fn point_services_at_target(ctx: &Context, namespace: &str, target: &Deployment, uid: &str) -> Result<()> {
    let selector = target.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    if selector.is_empty() {
        return Ok(());
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let name = target.name_any();
    for service in [objects::primary_name(&name), objects::canary_name(&name)] {
        let Some(live) = ctx.caches.get_or_read(&services, namespace, &service).await? else { continue };
        let current = live.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        if !controlled_by(live.meta(), uid) || current == selector {
            continue;
        }
        // The operator applied the ports too: an apply without them would release (and so remove) them.
        let ports = live.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": service},
            "spec": {"selector": selector, "ports": ports}});
        services.patch(&service, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    }
    Ok(())
}
