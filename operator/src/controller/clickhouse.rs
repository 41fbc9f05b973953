//! ClickHouse component, operator side: credentials from the Secret, one round of `perf_clickhouse`, the condition.

use super::Context;
use super::secrets::read_secret_key;
use super::status::Report;
use perf_clickhouse::Credentials;
use perf_operator_api::{ClickHouseSpec, PerformanceProfile, PerformanceProfileStatus, condition};

/// Credentials of the profile's ClickHouse, if it names a Secret.
async fn credentials(
    ctx: &Context,
    profile: &PerformanceProfile,
    spec: &ClickHouseSpec,
) -> crate::Result<Option<Credentials>> {
    let Some(r) = &spec.credentials_secret_ref else { return Ok(None) };
    let user = read_secret_key(ctx, profile, &r.name, &r.user_key).await?;
    let password = read_secret_key(ctx, profile, &r.name, &r.password_key).await?;
    Ok(Some(Credentials { user, password }))
}

/// Observes, diffs and applies every declared table; records what it created in `status.clickhouse.managed`.
pub async fn reconcile(profile: &PerformanceProfile, ctx: &Context, status: &mut PerformanceProfileStatus) -> Report {
    let Some(spec) = &profile.spec.clickhouse else { return Report::not_configured(condition::CLICKHOUSE_READY) };
    let _timer = ctx.metrics.timer("clickhouse");
    ctx.metrics.reconciles.with_label_values(&["clickhouse"]).inc();
    let previous = profile.status.as_ref().and_then(|s| s.clickhouse.as_ref());
    // Until a round succeeds, keep the records of what the operator created: losing them would forbid a prune.
    status.clickhouse = previous.cloned();
    let creds = match credentials(ctx, profile, spec).await {
        Ok(c) => c,
        Err(e) => {
            ctx.metrics.errors.with_label_values(&["clickhouse", "credentials"]).inc();
            return Report::failed(condition::CLICKHOUSE_READY, "CredentialsUnavailable", e.to_string());
        }
    };
    match perf_clickhouse::reconcile(spec, creds, previous).await {
        Ok(round) => {
            let outcome = perf_clickhouse::outcome(&round);
            status.clickhouse = Some(round);
            if outcome.ready {
                Report::ok(condition::CLICKHOUSE_READY, outcome.reason, outcome.message)
            } else if outcome.reason == "Failed" {
                ctx.metrics.errors.with_label_values(&["clickhouse", "table"]).inc();
                Report::failed(condition::CLICKHOUSE_READY, outcome.reason, outcome.message)
            } else {
                Report::progressing(condition::CLICKHOUSE_READY, outcome.reason, outcome.message)
            }
        }
        Err(e) => {
            ctx.metrics.errors.with_label_values(&["clickhouse", e.category()]).inc();
            Report::failed(condition::CLICKHOUSE_READY, "Failed", e.to_string())
        }
    }
}

/// Finalizer step: drops what the operator created when the profile says `prune: true`; an error keeps the
/// finalizer, so the clean-up is retried with backoff.
pub async fn cleanup(profile: &PerformanceProfile, ctx: &Context) -> crate::Result<()> {
    let Some(spec) = &profile.spec.clickhouse else { return Ok(()) };
    let creds = credentials(ctx, profile, spec).await?;
    let previous = profile.status.as_ref().and_then(|s| s.clickhouse.as_ref());
    perf_clickhouse::cleanup(spec, creds, previous)
        .await
        .map_err(|e| crate::Error::Component { component: "clickhouse", message: e.to_string() })?;
    Ok(())
}
