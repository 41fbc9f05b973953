//! Apply: server-side apply of a decision's objects (skipped when the live object already holds every desired
//! field), its ClickHouse statements and its canary step; returns what each part did.

use super::Context;
use super::caches::Cacheable;
use crate::components::{OwnedObjects, Retired};
use crate::decide::Decision;
use crate::{Error, Result};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use perf_operator_api::FIELD_MANAGER;
use perf_operator_api::{ClickHouseStatus, PerformanceProfile};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

pub use perf_operator_api::ssa::is_subset;

/// Applies `desired` unless the live object (as the cache holds it) already matches, recording the version written
/// in the context's own writes (its watch event then starts no round). Returns whether a write was sent. A cache a
/// moment behind costs at most one idempotent write; a change by someone else after it is an event that starts a
/// round.
pub async fn apply_if_changed<K: Cacheable + Serialize>(ctx: &Context, desired: &K) -> Result<bool> {
    let namespace = desired.namespace().unwrap_or_else(|| "default".into());
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = desired.name_any();
    let want = serde_json::to_value(desired)?;
    if let Some(live) = ctx.caches.get_or_read(&api, &namespace, &name).await? {
        if !same_controller(desired.meta(), live.meta()) {
            return Err(Error::NotOwned { kind: K::kind(&()).into_owned(), name });
        }
        if is_subset(&want, &serde_json::to_value(&*live)?) {
            return Ok(false);
        }
    }
    // force: we are the only manager of these fields; another manager's conflicting change is drift to undo.
    let written = api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&want)).await?;
    ctx.own_writes.record(&written);
    Ok(true)
}

/// Whether the object of `meta` is controlled by the owner of `uid` (a profile), not merely owned.
pub(super) fn controlled_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Whether `live` is controlled by the owner `desired` names as its controller: an object someone else made
/// under that name (by hand, or with a generated name that happens to match) is never adopted.
fn same_controller(desired: &kube::api::ObjectMeta, live: &kube::api::ObjectMeta) -> bool {
    let controller = |m: &kube::api::ObjectMeta| {
        m.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.clone())
    };
    controller(desired).is_some_and(|uid| controller(live).as_deref() == Some(uid.as_str()))
}

/// What applying a decision did, per part.
pub struct Outcomes {
    /// The provisioned Redis's objects.
    pub objects: Result<()>,
    /// The contract ConfigMap, then the target's roll when `rolloutOnChange` asks for one.
    pub contract: Result<(), ContractFailure>,
    /// ClickHouse's status after its statements, when a round was decided.
    pub clickhouse: Option<ClickHouseStatus>,
    /// The canary step's writes, when a step was decided.
    pub canary: Option<std::result::Result<(), perf_canary::Error>>,
    /// The provisioned Redis's live settings, when a cache policy decided them: how many were set.
    pub redis_live: Option<std::result::Result<usize, crate::redis_stats::RedisError>>,
    /// The SLO's PrometheusRule.
    pub slo_rule: super::slo_rule::RuleOutcome,
    /// The rate limits' gateway object, when enforcement was decided.
    pub enforcement: Option<super::enforce::Applied>,
}

/// Where publishing the contract failed: before the ConfigMap holds it, or when rolling the target after.
pub enum ContractFailure {
    NotPublished(Error),
    NotRolled(Error),
}

/// Applies a decision. Independent parts run concurrently, so a slow ClickHouse statement never holds back a
/// canary's rollback; the Redis objects go before the contract that points the app at them.
pub async fn apply(profile: &PerformanceProfile, ctx: &Context, decision: &Decision) -> Outcomes {
    let objects_then_contract = async {
        let objects = apply_objects(ctx, &decision.objects).await;
        let contract = match apply_if_changed(ctx, &decision.contract).await {
            Err(e) => Err(ContractFailure::NotPublished(e)),
            Ok(_) if profile.spec.app_config.rollout_on_change => {
                super::rollout::roll_target_on_change(profile, ctx, &decision.checksum)
                    .await
                    .map_err(ContractFailure::NotRolled)
            }
            Ok(_) => Ok(()),
        };
        (objects, contract)
    };
    let clickhouse = async {
        match &decision.clickhouse {
            Some(round) => Some(
                perf_clickhouse::apply(&ctx.clickhouse, &round.spec, round.credentials.clone(), round.plan.clone())
                    .await,
            ),
            None => None,
        }
    };
    let canary = async {
        match &decision.canary {
            Some(step) => Some(perf_canary::apply(&ctx.client, profile, step).await),
            None => None,
        }
    };
    let redis_live = async {
        let live = decision.redis_live.as_ref()?;
        let address = crate::components::cache::operator_address(profile, &ctx.scope.cluster_domain);
        Some(hold_redis(&ctx.scope.egress, &address, live).await)
    };
    let slo_rule = super::slo_rule::apply(&ctx.client, &ctx.rules_unserved, profile, &decision.slo_rule, &ctx.scope);
    let enforcement = async {
        match &decision.enforcement {
            Some(round) => Some(super::enforce::apply(ctx, profile, round).await),
            None => None,
        }
    };
    let ((objects, contract), clickhouse, canary, redis_live, slo_rule, enforcement) = tokio::join!(
        Box::pin(objects_then_contract),
        Box::pin(clickhouse),
        Box::pin(canary),
        Box::pin(redis_live),
        Box::pin(slo_rule),
        Box::pin(enforcement)
    );
    Outcomes { objects, contract, clickhouse, canary, redis_live, slo_rule, enforcement }
}

/// The provisioned Redis's passwords (`ACL SETUSER`), then its settings (`CONFIG SET`) with the current password:
/// how many settings changed.
async fn hold_redis(
    egress: &perf_egress::Egress,
    address: &str,
    live: &crate::decide::RedisLive,
) -> std::result::Result<usize, crate::redis_stats::RedisError> {
    let timeout = std::time::Duration::from_secs(3);
    let candidates: Vec<&str> = live.candidates.iter().map(String::as_str).collect();
    let accepted: Vec<&str> = live.accepted.iter().map(String::as_str).collect();
    let exporter = live.exporter.as_deref();
    crate::redis_stats::hold_passwords(egress, address, &candidates, &accepted, exporter, timeout).await?;
    let Some(settings) = &live.settings else { return Ok(0) };
    crate::redis_stats::configure(egress, address, accepted.first().copied(), &settings.settings, timeout).await
}

async fn apply_objects(ctx: &Context, objects: &OwnedObjects) -> Result<()> {
    for o in &objects.secrets {
        apply_if_changed(ctx, o).await?;
    }
    for o in &objects.config_maps {
        apply_if_changed(ctx, o).await?;
    }
    for o in &objects.services {
        apply_if_changed(ctx, o).await?;
    }
    for o in &objects.deployments {
        apply_if_changed(ctx, o).await?;
    }
    for o in &objects.stateful_sets {
        apply_if_changed(ctx, o).await?;
    }
    retire(&ctx.client, objects).await
}

/// Deletes the workloads the profile no longer wants (decide keeps only those observed), in the namespace of the
/// objects it applies. The claim of a StatefulSet stays (retention `Retain`).
async fn retire(client: &Client, objects: &OwnedObjects) -> Result<()> {
    let Some(namespace) = objects.secrets.first().and_then(|s| s.namespace()) else { return Ok(()) };
    for retired in &objects.retired {
        match retired {
            Retired::Deployment(name) => {
                delete::<k8s_openapi::api::apps::v1::Deployment>(client, &namespace, name).await?
            }
            Retired::StatefulSet(name) => {
                delete::<k8s_openapi::api::apps::v1::StatefulSet>(client, &namespace, name).await?
            }
        }
    }
    Ok(())
}

/// Deletes `name`; already gone is done.
pub(super) async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match Api::<K>::namespaced(client.clone(), namespace).delete(name, &kube::api::DeleteParams::default()).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(owners: &[(&str, bool)]) -> kube::api::ObjectMeta {
        let refs = owners
            .iter()
            .map(|(uid, controller)| OwnerReference {
                api_version: "perf.operator.dev/v1alpha1".into(),
                kind: "PerformanceProfile".into(),
                name: "web".into(),
                uid: uid.to_string(),
                controller: Some(*controller),
                block_owner_deletion: Some(true),
            })
            .collect();
        kube::api::ObjectMeta { owner_references: Some(refs), ..Default::default() }
    }

    #[test]
    fn only_an_object_this_profile_controls_is_written_over() {
        let desired = meta(&[("uid-web", true)]);
        assert!(same_controller(&desired, &meta(&[("uid-web", true)])));
        for (live, why) in [
            (kube::api::ObjectMeta::default(), "made by hand, no owner"),
            (meta(&[("uid-web", false)]), "owned but not controlled"),
            (meta(&[("uid-old", true)]), "a deleted profile's of the same name, not yet collected"),
            (meta(&[("uid-other", true), ("uid-web", false)]), "another controller"),
        ] {
            assert!(!same_controller(&desired, &live), "{why}");
        }
        assert!(!same_controller(&kube::api::ObjectMeta::default(), &meta(&[("uid-web", true)])), "no owner desired");
    }
}
