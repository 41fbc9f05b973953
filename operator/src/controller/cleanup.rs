//! The finalizer's clean-up: gives a canary's target back its pods, prunes ClickHouse objects (`prune: true`) and
//! lets a provisioned Redis go when it is to outlive the profile (`deleteWithProfile: false`).
//! An error keeps the finalizer, so the clean-up is retried with backoff.

use super::Context;
use super::observe::clickhouse_credentials;
use crate::{Error, Result};
use kube::runtime::controller::Action;
use perf_operator_api::PerformanceProfile;
use std::sync::Arc;

pub async fn cleanup(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    // Also after `spec.canary` was removed: the primary may still serve while the target sits at zero replicas, and
    // the garbage collector is about to take the primary.
    if profile.spec.canary.is_some() || profile.status.as_ref().is_some_and(|s| s.canary.is_some()) {
        perf_canary::finalize(ctx.client.clone(), &profile).await.map_err(|e| Error::Canary(Box::new(e)))?;
    }
    if let Some(spec) = &profile.spec.clickhouse {
        let credentials = clickhouse_credentials(&super::round::Round::new(&profile, &ctx), spec).await?;
        let previous = profile.status.as_ref().and_then(|s| s.clickhouse.as_ref());
        perf_clickhouse::cleanup(&ctx.clickhouse, spec, credentials, previous)
            .await
            .map_err(|e| Error::ClickHouse(Box::new(e)))?;
    }
    if super::orphan::keeps_redis(&profile) {
        let released = super::orphan::release_redis(&profile, &ctx).await?;
        let note = format!(
            "deleteWithProfile: false: {released} Redis object(s) named {} kept, no longer owned by the profile",
            crate::components::cache::redis_name(&profile)
        );
        ctx.event(&profile, false, "RedisKept", note).await;
    }
    ctx.event(&profile, false, "CleanedUp", "removed what the profile created outside Kubernetes".into()).await;
    ctx.metrics.profiles.remove(&profile);
    Ok(Action::await_change())
}
