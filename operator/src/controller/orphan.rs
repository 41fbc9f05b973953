//! `cache.redis.provision.deleteWithProfile: false`: the provisioned Redis outlives its profile (a migration to
//! another profile or to a Redis of one's own). Its objects are owned by the profile while it lives, like every
//! object the operator makes; the finalizer takes the profile's owner reference off them before the profile goes,
//! so the garbage collector leaves them, and marks them with the profile they came from.

use super::Context;
use crate::Result;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use perf_operator_api::PerformanceProfile;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Annotation on an orphaned Redis object: `namespace/name` of the profile it came from.
pub const ORPHANED_FROM: &str = "perf.operator.dev/orphaned-from";

/// Whether deleting `profile` keeps its provisioned Redis.
pub fn keeps_redis(profile: &PerformanceProfile) -> bool {
    let provision = profile.spec.cache.as_ref().and_then(|c| c.redis.provision.as_ref());
    provision.is_some_and(|p| !p.delete_with_profile)
}

/// Takes the profile's owner reference off its Redis objects; returns how many it let go.
pub async fn release_redis(profile: &PerformanceProfile, ctx: &Context) -> Result<usize> {
    let Some(uid) = profile.uid() else { return Ok(0) };
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let name = crate::components::cache::redis_name(profile);
    let from = format!("{namespace}/{}", profile.name_any());
    let released = [
        release::<Deployment>(ctx, &namespace, &name, &uid, &from).await?,
        release::<StatefulSet>(ctx, &namespace, &name, &uid, &from).await?,
        release::<Service>(ctx, &namespace, &name, &uid, &from).await?,
        release::<Secret>(ctx, &namespace, &name, &uid, &from).await?,
        release::<ConfigMap>(ctx, &namespace, &crate::components::cache::config_map_name(&name), &uid, &from).await?,
    ];
    Ok(released.into_iter().filter(|r| *r).count())
}

/// Removes `uid` from `name`'s owner references when the profile controls it; whether it did.
async fn release<K>(ctx: &Context, namespace: &str, name: &str, uid: &str, from: &str) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(live) = api.get_opt(name).await? else { return Ok(false) };
    if !super::apply::controlled_by(live.meta(), uid) {
        return Ok(false);
    }
    let owners = live.meta().owner_references.clone().unwrap_or_default();
    let kept: Vec<_> = owners.into_iter().filter(|o| o.uid != uid).collect();
    // A merge patch replaces the list whole: only the profile's entry goes; the resourceVersion makes it a
    // compare-and-swap, so an owner added meanwhile is not lost (a conflict retries the clean-up).
    let patch = json!({"metadata": {"ownerReferences": kept, "annotations": {ORPHANED_FROM: from},
        "resourceVersion": live.meta().resource_version}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(true)
}
