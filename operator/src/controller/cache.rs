//! Cache component, cluster side: apply the Redis objects, then judge readiness (the Deployment's available
//! replicas for a provisioned Redis, a live answer for an external one, read once per reconcile in `observe`).

use super::Context;
use super::apply::apply_if_changed;
use super::secrets::read_secret_key;
use super::status::Report;
use crate::Result;
use crate::components::{self, ExternalRedisFailure, Observed, cache};
use crate::redis_stats::{self, RedisStats};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use perf_operator_api::{CacheStatus, PerformanceProfile, PerformanceProfileStatus, RedisExternal, condition};

pub async fn reconcile_cache(
    profile: &PerformanceProfile,
    ctx: &Context,
    desired: &components::Desired,
    observed: &Observed,
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
    if let Some(answer) = &observed.external_redis {
        return external_ready(ctx, answer, &plan.address);
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

/// Reads an external Redis (`INFO`); its password comes from the referenced Secret.
pub async fn read_external(
    profile: &PerformanceProfile,
    ctx: &Context,
    external: &RedisExternal,
) -> std::result::Result<RedisStats, ExternalRedisFailure> {
    let password = match &external.password_secret_ref {
        Some(r) => Some(
            read_secret_key(ctx, profile, &r.name, &r.key)
                .await
                .map_err(|e| ExternalRedisFailure { reason: "PasswordUnavailable", message: e.to_string() })?,
        ),
        None => None,
    };
    redis_stats::fetch(&external.address, password.as_deref(), std::time::Duration::from_secs(3))
        .await
        .map_err(|e| ExternalRedisFailure { reason: "Unreachable", message: e.to_string() })
}

/// An external Redis is ready when it answered.
fn external_ready(
    ctx: &Context,
    answer: &std::result::Result<RedisStats, ExternalRedisFailure>,
    address: &str,
) -> Report {
    match answer {
        Ok(stats) => Report::ok(
            condition::CACHE_READY,
            "ExternalReachable",
            format!("using {address} (maxclients {})", stats.max_clients),
        ),
        Err(failure) => {
            ctx.metrics.errors.with_label_values(&["cache", "redis"]).inc();
            Report::failed(condition::CACHE_READY, failure.reason, failure.message.clone())
        }
    }
}

async fn redis_available(profile: &PerformanceProfile, ctx: &Context) -> Result<bool> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let live = api.get_opt(&cache::redis_name(profile)).await?;
    Ok(live.and_then(|d| d.status).and_then(|s| s.available_replicas).unwrap_or(0) >= 1)
}
