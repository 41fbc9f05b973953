//! The reconcile of one profile: [`observe`](super::observe) -> [`decide`](crate::decide) (pure) ->
//! [`apply`](super::apply) -> [`report`](super::report), inside the finalizer when deleting needs work.

use super::report::{self, Conditions};
use super::{Context, apply, cleanup, display_name, observe};
use crate::conditions::Hold;
use crate::{Error, Result, validate};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use perf_operator_api::PerformanceProfile;
use std::sync::Arc;
use tracing::Instrument;

/// Finalizer the operator sets when deleting a profile needs work: ClickHouse `prune`, or a canary to hand back.
pub const FINALIZER: &str = "perf.operator.dev/cleanup";

/// Entry point for a deserialized profile: the finalizer (when needed) around converge and cleanup.
pub async fn reconcile(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    let span = tracing::info_span!("reconcile", profile = %display_name(&profile));
    async move {
        let _timer = ctx.metrics.timer("profile");
        ctx.metrics.reconciles.with_label_values(&["profile"]).inc();
        // Inside kube-runtime's span, which names what started the round (`object.reason`).
        tracing::debug!("round started");
        let namespace = profile.namespace().unwrap_or_else(|| "default".into());
        let api: Api<PerformanceProfile> = Api::namespaced(ctx.client.clone(), &namespace);
        let key = ObjectRef::from_obj(&*profile).erase();
        // The controller's cache can lag this operator's own last write by a moment (seen on a real API server:
        // a canary stepped twice, a finalizer patch refused with 422). Acting on the profile as the server holds
        // it now keeps a round from carrying older records over newer ones.
        let Some(profile) = api.get_opt(&profile.name_any()).await?.map(Arc::new) else {
            ctx.metrics.profiles.remove(&profile);
            let waiting = ctx.references.forget(&namespace, &profile.name_any());
            ctx.claims.wake(&namespace, waiting);
            ctx.backoff.reset(&key);
            return Ok(Action::await_change());
        };
        // A target this profile no longer names may be waited for by another profile.
        let let_go = ctx.references.learn(&profile);
        ctx.claims.wake(&namespace, let_go);
        let action = if needs_finalizer(&profile) || profile.finalizers().iter().any(|f| f == FINALIZER) {
            finalizer(&api, FINALIZER, profile, |event| async {
                match event {
                    FinalizerEvent::Apply(p) => Box::pin(converge(p, ctx.clone())).await,
                    FinalizerEvent::Cleanup(p) => Box::pin(cleanup::cleanup(p, ctx.clone())).await,
                }
            })
            .await
            .map_err(|e| Error::Finalizer(Box::new(e)))?
        } else if profile.meta().deletion_timestamp.is_some() {
            // Owned objects go with the profile through owner references; nothing outside Kubernetes to clean.
            Action::await_change()
        } else {
            Box::pin(converge(profile, ctx.clone())).await?
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
    // A Redis kept with `deleteWithProfile: false` must be let go before the garbage collector sees the profile go.
    profile.spec.clickhouse.as_ref().is_some_and(|c| c.prune)
        || profile.spec.canary.is_some()
        || super::orphan::keeps_redis(profile)
}

/// The pipeline for a profile that is not being deleted.
async fn converge(profile: Arc<PerformanceProfile>, ctx: Arc<Context>) -> Result<Action> {
    let mut findings = validate::check_spec(&profile, "spec");
    // Before anything is sent: servers and databases the administrator does not allow this namespace.
    let rules = crate::tenancy::Rules { egress: &ctx.scope.egress, databases: &ctx.scope.clickhouse_databases };
    findings.extend(crate::tenancy::check(&profile, rules, "spec"));
    if !findings.is_empty() {
        let message = findings.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ");
        ctx.metrics.errors.with_label_values(&["profile", "invalid_spec"]).inc();
        // Nothing applied; a spec change triggers the next reconcile.
        return hold(&profile, &ctx, Hold::Invalid(&message)).await;
    }
    // Another profile holds the target: its going (or retargeting) wakes this one ([`super::claims`]).
    if let Some(holder) = ctx.claims.holder_of(&ctx.client, &profile).await? {
        return hold(&profile, &ctx, Hold::TargetHeld(&holder.message(&profile))).await;
    }
    if profile.spec.suspend {
        return hold(&profile, &ctx, Hold::Suspended).await;
    }
    let observed = Box::pin(observe::observe(&profile, &ctx)).await;
    let now = jiff::Timestamp::now();
    let decision = if observed.cache_policy.is_some() || observed.rate_limit_policy.is_some() {
        // A decision with policies runs WASM: off the async workers, a bounded number at a time.
        let decided = Arc::clone(&profile);
        ctx.policies.evaluator.run(move || Ok(crate::decide::decide(&decided, &observed, now))).await?
    } else {
        crate::decide::decide(&profile, &observed, now)
    };
    let outcomes = Box::pin(apply::apply(&profile, &ctx, &decision)).await;
    let action = Box::pin(report::report(&profile, &ctx, decision, outcomes)).await?;
    // A canary section removed: its copies are retired once the target serves again.
    if profile.spec.canary.is_none()
        && let Some(after) = super::retire::canary(&profile, &ctx).await?
    {
        return Ok(Action::requeue(after));
    }
    Ok(action)
}

/// A round that applies nothing: status says why, and only a change of the profile starts the next one.
async fn hold(profile: &PerformanceProfile, ctx: &Context, hold: Hold<'_>) -> Result<Action> {
    report::write(profile, ctx, report::for_held(profile, hold), Conditions::Held(hold)).await?;
    Ok(Action::await_change())
}
