//! Reconcile of one valid profile: validate -> observe -> desired (pure) -> apply (SSA) -> status and events.

use super::status::{self as cond, Report};
use super::{Context, apply::apply_if_changed, display_name};
use crate::components::{self, Observed, app_config, cache, labels::CONFIG_CHECKSUM_ANNOTATION};
use crate::manifest::Finding;
use crate::{Error, Result, validate};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use perf_operator_api::{
    AppConfigStatus, FIELD_MANAGER, PerformanceProfile, PerformanceProfileStatus, PoolsStatus, condition,
};
use serde_json::json;
use std::sync::Arc;
use tracing::Instrument;

/// Finalizer the operator sets when deleting a profile needs work: ClickHouse `prune`, or a canary to hand back.
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
        // The controller's cache can lag this operator's own last write by a moment (seen on a real API server:
        // a canary stepped twice, a finalizer patch refused with 422). Acting on the profile as the server holds
        // it now keeps a round from carrying older records over newer ones.
        let Some(profile) = api.get_opt(&profile.name_any()).await?.map(Arc::new) else {
            return Ok(Action::await_change());
        };
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
    // A canary scales the target to zero while the primary serves: deleting the profile must give the pods back.
    profile.spec.clickhouse.as_ref().is_some_and(|c| c.prune) || profile.spec.canary.is_some()
}

/// The finalizer's clean-up: gives a canary's target back and prunes ClickHouse objects (`prune: true`).
pub async fn cleanup(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    super::canary::cleanup(&profile, &ctx).await?;
    super::clickhouse::cleanup(&profile, &ctx).await?;
    ctx.event(&profile, false, "CleanedUp", "removed what the profile created outside Kubernetes".into()).await;
    Ok(Action::await_change())
}

/// The pipeline for a profile that is not being deleted.
async fn apply(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    let findings = validate::check_spec(&profile, "spec");
    if !findings.is_empty() {
        return refuse(&profile, &ctx, &findings).await;
    }
    let observed = observe(&profile, &ctx).await?;
    let provisions_redis = profile.spec.cache.as_ref().is_some_and(|c| c.redis.provision.is_some());
    // A password is generated only for a Redis that has none yet; an existing one is kept.
    let fresh_password =
        if provisions_redis && observed.redis_password.is_none() { new_password()? } else { String::new() };
    let mut desired = components::desired(&profile, &observed, &fresh_password);
    let Round { mut status, reports, canary_requeue } = run_components(&profile, &ctx, &observed, &mut desired).await;
    let (app_config, published) = publish_contract(&profile, &ctx, &desired).await;
    status.app_config = app_config.or(status.app_config);
    let progressing = reports.iter().any(|r| r.progressing);
    // Written even when publishing failed: what the components did this round (ClickHouse objects created, a
    // canary step) must be recorded before the error sends the profile to backoff.
    write_status(&profile, &ctx, status, Conditions::Reports(&reports)).await?;
    published?;
    let requeue = ctx.scope.requeue_after(progressing);
    Ok(Action::requeue(canary_requeue.map_or(requeue, |c| c.min(requeue))))
}

/// A spec the operator refuses: conditions say why; every record in status stays; nothing is applied.
async fn refuse(profile: &PerformanceProfile, ctx: &Context, findings: &[Finding]) -> Result<Action> {
    let message = findings.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ");
    let status = cond::for_invalid_spec(profile.status.as_ref(), profile.meta().generation);
    write_status(profile, ctx, status, Conditions::Invalid(&message)).await?;
    ctx.metrics.errors.with_label_values(&["profile", "invalid_spec"]).inc();
    // Nothing applied; a spec change triggers the next reconcile.
    Ok(Action::await_change())
}

/// What the components did in one reconcile.
struct Round {
    status: PerformanceProfileStatus,
    reports: Vec<Report>,
    canary_requeue: Option<std::time::Duration>,
}

/// Runs every component on a status that starts from the records of the last one ([`cond::carried`]).
async fn run_components(
    profile: &PerformanceProfile,
    ctx: &Context,
    observed: &Observed,
    desired: &mut components::Desired,
) -> Round {
    let mut status = cond::carried(profile.status.as_ref(), &profile.spec, profile.meta().generation);
    let mut reports = Vec::new();
    reports.push(super::cache::reconcile_cache(profile, ctx, desired, observed, &mut status).await);
    reports.push(match &desired.pools {
        Some(p) => {
            status.pools = Some(PoolsStatus { app_replicas: p.app_replicas, sizes: p.sizes.clone() });
            Report::ok(condition::POOLS_READY, "Published", format!("sized for {} app pod(s)", p.app_replicas))
        }
        None => Report::not_configured(condition::POOLS_READY),
    });
    reports.push(super::clickhouse::reconcile(profile, ctx, &mut status).await);
    let (canary, canary_requeue) = super::canary::reconcile(profile, ctx, &mut status).await;
    reports.push(canary);
    reports.push(super::policies::reconcile(profile, ctx, observed, desired, &mut status).await);
    // Publish what the policies decided, in status as in the contract.
    if let (Some(cache), Some(plan)) = (status.cache.as_mut(), desired.cache.as_ref()) {
        cache.ttl_seconds = plan.ttl_seconds.clone();
    }
    Round { status, reports, canary_requeue }
}

/// Publishes the app contract, then rolls the target when asked. Returns the contract's status once the ConfigMap
/// holds it (None when it could not be written: the previous contract is still the live one) and the outcome.
async fn publish_contract(
    profile: &PerformanceProfile,
    ctx: &Context,
    desired: &components::Desired,
) -> (Option<AppConfigStatus>, Result<()>) {
    let contract = app_config::Contract {
        cache: desired.cache.as_ref(),
        pools: desired.pools.as_ref(),
        rate_limits: desired.rate_limits.as_ref(),
    };
    let data = app_config::data(&contract);
    let checksum = app_config::checksum(&data);
    if let Err(e) = apply_if_changed(&ctx.client, &app_config::config_map(profile, data)).await {
        return (None, Err(e));
    }
    let rolled = match profile.spec.app_config.rollout_on_change {
        true => roll_target_on_change(profile, ctx, &checksum).await,
        false => Ok(()),
    };
    (Some(AppConfigStatus { name: profile.app_config_name(), checksum }), rolled)
}

/// Reads what the pure builders need.
async fn observe(profile: &PerformanceProfile, ctx: &Context) -> Result<Observed> {
    let namespace = profile.namespace().unwrap_or_else(|| "default".into());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    // With a canary the primary serves and the target is scaled to zero: size pools for the primary's pods.
    let mut serving = None;
    if profile.spec.canary.is_some() {
        serving = deployments.get_opt(&perf_canary::objects::primary_name(&profile.spec.target_ref.name)).await?;
    }
    if serving.is_none() {
        serving = deployments.get_opt(&profile.spec.target_ref.name).await?;
    }
    let target_replicas = serving.and_then(|d| d.spec.and_then(|s| s.replicas)).map(|r| r.max(0) as u32);
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
    let external_redis = match profile.spec.cache.as_ref().and_then(|c| c.redis.external.as_ref()) {
        Some(external) => Some(super::cache::read_external(profile, ctx, external).await),
        None => None,
    };
    Ok(Observed { target_replicas, redis_password, external_redis })
}

/// A new Redis password: 32 random bytes, hex.
fn new_password() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::InvalidSpec(format!("no randomness for the Redis password: {e}")))?;
    Ok(hex::encode(bytes))
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
        format!("app contract changed (sha256 {}), rolling {name}", checksum.get(..12).unwrap_or(checksum)),
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
