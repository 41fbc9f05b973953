//! Reconcile of one valid profile: validate -> observe -> desired (pure) -> apply (SSA) -> status and events.

use super::status::{self as cond, Report};
use super::{Context, apply::apply_if_changed, display_name, requeue_after};
use crate::components::{self, Observed, app_config, cache, labels::CONFIG_CHECKSUM_ANNOTATION};
use crate::{Error, Result, redis_stats, validate};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use perf_operator_api::{
    AppConfigStatus, CacheStatus, FIELD_MANAGER, PerformanceProfile, PerformanceProfileStatus, PoolsStatus, condition,
};
use serde_json::json;
use std::sync::Arc;
use tracing::Instrument;

/// Finalizer the operator sets when a profile asks it to clean up outside Kubernetes (ClickHouse `prune`).
pub const FINALIZER: &str = "perf.operator.dev/cleanup";
/// Field manager of the checksum annotation on the target; distinct so it never releases fields of other applies.
const CHECKSUM_MANAGER: &str = "perf-operator-config";

/// Entry point for a deserialized profile: the finalizer (when needed) around apply and cleanup.
pub async fn reconcile(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    let span = tracing::info_span!("reconcile", profile = %display_name(&profile));
    async move {
        let _timer = ctx.metrics.timer("profile");
        ctx.metrics.reconciles.with_label_values(&["profile"]).inc();
        let namespace = profile.namespace().unwrap_or_else(|| "default".into());
        let api: Api<PerformanceProfile> = Api::namespaced(ctx.client.clone(), &namespace);
        let key = ObjectRef::from_obj(&*profile).erase();
        let action = if needs_finalizer(&profile) || profile.finalizers().iter().any(|f| f == FINALIZER) {
            finalizer(&api, FINALIZER, profile, |event| async {
                match event {
                    FinalizerEvent::Apply(p) => apply(p, ctx.clone()).await,
                    FinalizerEvent::Cleanup(p) => cleanup(p, ctx.clone()).await,
                }
            })
            .await
            .map_err(|e| Error::Finalizer(e.to_string()))?
        } else if profile.meta().deletion_timestamp.is_some() {
            // Owned objects go with the profile through owner references; nothing outside Kubernetes to clean.
            Action::await_change()
        } else {
            apply(profile, ctx.clone()).await?
        };
        ctx.backoff.reset(&key);
        Ok(action)
    }
    .instrument(span)
    .await
}

/// Whether deleting this profile needs work outside Kubernetes.
pub fn needs_finalizer(profile: &PerformanceProfile) -> bool {
    profile.spec.clickhouse.as_ref().is_some_and(|c| c.prune)
}

async fn cleanup(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    ctx.event(&profile, false, "Cleanup", "removing what the profile created outside Kubernetes".into()).await;
    Ok(Action::await_change())
}

/// The pipeline for a profile that is not being deleted.
async fn apply(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    let findings = validate::check_profile(&profile, "spec");
    if !findings.is_empty() {
        let message = findings.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ");
        let status = PerformanceProfileStatus { observed_generation: profile.meta().generation, ..Default::default() };
        write_status(&profile, &ctx, status, Conditions::Invalid(&message)).await?;
        ctx.metrics.errors.with_label_values(&["profile", "invalid_spec"]).inc();
        // Nothing applied; a spec change triggers the next reconcile.
        return Ok(Action::await_change());
    }
    let observed = observe(&profile, &ctx).await?;
    let desired = components::desired(&profile, &observed, &new_password()?);

    let mut reports = Vec::new();
    let mut status = PerformanceProfileStatus { observed_generation: profile.meta().generation, ..Default::default() };
    reports.push(reconcile_cache(&profile, &ctx, &desired, &mut status).await);
    reports.push(match &desired.pools {
        Some(p) => {
            status.pools = Some(PoolsStatus { app_replicas: p.app_replicas, sizes: p.sizes.clone() });
            Report::ok(condition::POOLS_READY, "Published", format!("sized for {} app pod(s)", p.app_replicas))
        }
        None => Report::not_configured(condition::POOLS_READY),
    });
    for t in [condition::CLICKHOUSE_READY, condition::CANARY_READY, condition::POLICIES_READY] {
        reports.push(Report::not_configured(t));
    }

    let contract = app_config::Contract {
        cache: desired.cache.as_ref(),
        pools: desired.pools.as_ref(),
        rate_limits: desired.rate_limits.as_ref(),
    };
    let data = app_config::data(&contract);
    let checksum = app_config::checksum(&data);
    apply_if_changed(&ctx.client, &app_config::config_map(&profile, data)).await?;
    if profile.spec.app_config.rollout_on_change {
        roll_target_on_change(&profile, &ctx, &checksum).await?;
    }
    status.app_config = Some(AppConfigStatus { name: profile.app_config_name(), checksum });

    let progressing = reports.iter().any(|r| r.progressing);
    write_status(&profile, &ctx, status, Conditions::Reports(&reports)).await?;
    Ok(Action::requeue(requeue_after(progressing)))
}

/// Reads what the pure builders need.
async fn observe(profile: &PerformanceProfile, ctx: &Context) -> Result<Observed> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let target = deployments.get_opt(&profile.spec.target_ref.name).await?;
    let target_replicas = target.and_then(|d| d.spec.and_then(|s| s.replicas)).map(|r| r.max(0) as u32);
    let mut redis_password = None;
    if profile.spec.cache.as_ref().is_some_and(|c| c.redis.provision.is_some()) {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        if let Some(secret) = secrets.get_opt(&cache::redis_name(profile)).await? {
            redis_password = secret
                .data
                .and_then(|d| d.get(cache::PASSWORD_KEY).cloned())
                .and_then(|b| String::from_utf8(b.0).ok())
                .filter(|p| !p.is_empty());
        }
    }
    Ok(Observed { target_replicas, redis_password })
}

/// A new Redis password: 32 random bytes, hex.
fn new_password() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::InvalidSpec(format!("no randomness for the Redis password: {e}")))?;
    Ok(hex::encode(bytes))
}

async fn reconcile_cache(
    profile: &PerformanceProfile,
    ctx: &Context,
    desired: &components::Desired,
    status: &mut PerformanceProfileStatus,
) -> Report {
    let Some(plan) = &desired.cache else { return Report::not_configured(condition::CACHE_READY) };
    let _timer = ctx.metrics.timer("cache");
    ctx.metrics.reconciles.with_label_values(&["cache"]).inc();
    let objects = &desired.objects;
    let result: Result<()> = async {
        for o in &objects.secrets {
            apply_if_changed(&ctx.client, o).await?;
        }
        for o in &objects.config_maps {
            apply_if_changed(&ctx.client, o).await?;
        }
        for o in &objects.services {
            apply_if_changed(&ctx.client, o).await?;
        }
        for o in &objects.deployments {
            apply_if_changed(&ctx.client, o).await?;
        }
        Ok(())
    }
    .await;
    status.cache = Some(CacheStatus {
        address: plan.address.clone(),
        password_secret: plan.password_secret.as_ref().map(|(n, _)| n.clone()),
        ttl_seconds: plan.ttl_seconds.clone(),
    });
    if let Err(e) = result {
        ctx.metrics.errors.with_label_values(&["cache", e.category()]).inc();
        return Report::failed(condition::CACHE_READY, "ApplyFailed", e.to_string());
    }
    if objects.deployments.is_empty() {
        return probe_external(profile, ctx, &plan.address).await;
    }
    match redis_available(profile, ctx).await {
        Ok(true) => Report::ok(condition::CACHE_READY, "RedisAvailable", format!("Redis serving at {}", plan.address)),
        Ok(false) => Report::progressing(
            condition::CACHE_READY,
            "WaitingForRedis",
            "Redis Deployment has no available replica yet",
        ),
        Err(e) => Report::failed(condition::CACHE_READY, "ObserveFailed", e.to_string()),
    }
}

/// An external Redis is ready when it answers; its password comes from the referenced Secret.
async fn probe_external(profile: &PerformanceProfile, ctx: &Context, address: &str) -> Report {
    let external = profile.spec.cache.as_ref().and_then(|c| c.redis.external.as_ref());
    let password = match external.and_then(|e| e.password_secret_ref.as_ref()) {
        Some(r) => match read_secret_key(ctx, profile, &r.name, &r.key).await {
            Ok(p) => Some(p),
            Err(e) => return Report::failed(condition::CACHE_READY, "PasswordUnavailable", e.to_string()),
        },
        None => None,
    };
    match redis_stats::fetch(address, password.as_deref(), std::time::Duration::from_secs(3)).await {
        Ok(stats) => Report::ok(
            condition::CACHE_READY,
            "ExternalReachable",
            format!("using {address} (maxclients {})", stats.max_clients),
        ),
        Err(e) => {
            ctx.metrics.errors.with_label_values(&["cache", "redis"]).inc();
            Report::failed(condition::CACHE_READY, "Unreachable", e.to_string())
        }
    }
}

/// One key of a Secret in the profile's namespace, as UTF-8.
pub async fn read_secret_key(ctx: &Context, profile: &PerformanceProfile, name: &str, key: &str) -> Result<String> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::InvalidSpec(format!("Secret {namespace}/{name} not found")))?;
    let value = secret
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| Error::InvalidSpec(format!("Secret {namespace}/{name} has no key {key:?}")))?;
    String::from_utf8(value.0)
        .map_err(|_| Error::InvalidSpec(format!("Secret {namespace}/{name} key {key:?} is not UTF-8")))
}

async fn redis_available(profile: &PerformanceProfile, ctx: &Context) -> Result<bool> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let live = api.get_opt(&cache::redis_name(profile)).await?;
    Ok(live.and_then(|d| d.status).and_then(|s| s.available_replicas).unwrap_or(0) >= 1)
}

/// Sets the contract checksum on the target's pod template, so a contract change rolls the app.
async fn roll_target_on_change(profile: &PerformanceProfile, ctx: &Context, checksum: &str) -> Result<()> {
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
        format!("app contract changed (sha256 {}), rolling {name}", &checksum[..12]),
    )
    .await;
    Ok(())
}

/// Where the conditions come from.
enum Conditions<'a> {
    Reports(&'a [Report]),
    Invalid(&'a str),
}

/// Writes status when it differs from the stored one, and records an event per condition transition.
async fn write_status(
    profile: &PerformanceProfile,
    ctx: &Context,
    mut status: PerformanceProfileStatus,
    conditions: Conditions<'_>,
) -> Result<()> {
    let previous = profile.status.as_ref();
    let now = Time(jiff::Timestamp::now());
    let prev_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = profile.meta().generation;
    status.conditions = match conditions {
        Conditions::Reports(reports) => cond::conditions(prev_conditions, reports, generation, &now),
        Conditions::Invalid(message) => cond::invalid(prev_conditions, message, generation, &now),
    };
    status.phase = Some(cond::phase(&status.conditions));
    if previous == Some(&status) {
        return Ok(());
    }
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api: Api<PerformanceProfile> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": PerformanceProfile::api_version(&()), "kind": PerformanceProfile::kind(&()), "status": status,
    });
    api.patch_status(&profile.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    for c in cond::transitions(previous, &status) {
        let warning = cond::is_warning(&c);
        ctx.event(profile, warning, &format!("{}{}", c.type_, c.status), format!("{}: {}", c.reason, c.message)).await;
    }
    Ok(())
}
