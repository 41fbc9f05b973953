//! The triggers of one controller (one namespace, or all of them): the changes of the [`super::caches`] (profiles
//! through a predicate, owned objects less the operator's own writes, the target's HPA) and two metadata-only
//! watches (targets, policy ConfigMaps), so that what the operator holds in memory and maps per event does not grow
//! with objects that no profile names.

use super::Context;
use super::caches::{Cacheable, Shard, api};
use super::triggers::{self, Watched};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Predicate, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use std::sync::Arc;

pub use super::caches::MANAGED_BY;

/// The controller of `shard`'s namespace: its triggers, its limits. Every profile already cached gets a round once
/// the profiles have listed (a standby taking over, or a start); after that, changes start rounds.
pub fn controller(ctx: &Arc<Context>, client: &Client, shard: &Shard) -> Controller<Watched> {
    let namespace = shard.namespace.as_deref();
    let pace = ctx.scope.pace;
    let (lagged, all) = futures::channel::mpsc::unbounded::<()>();
    let profiles = shard
        .profiles
        .changes(move |missed| {
            tracing::warn!(missed, "profile changes missed; every profile gets a round");
            let _ = lagged.unbounded_send(());
        })
        .predicate_filter(triggers::profile_trigger, Default::default());
    let listed = shard.profiles.store.clone();
    let start = futures::stream::once(async move {
        // Dropped only with the process's writers.
        let _ = listed.wait_until_ready().await;
    });
    let targets = ctx.clone();
    let scalers = ctx.clone();
    let config_maps = ctx.clone();
    let policies = ctx.clone();
    // Counted once listed (its events then cover every change), for as long as the watch lives.
    let mut counted = None;
    // Generation, labels and annotations: a new pod template or size, not the status a rollout moves.
    let target_changed = predicates::generation.combine(predicates::labels).combine(predicates::annotations);
    Controller::for_stream(profiles, shard.profiles.store.clone())
        .with_config(Config::default().concurrency(pace.concurrency).debounce(pace.debounce))
        .reconcile_all_on(start.chain(all))
        .owns_stream(owned_changes::<Deployment>(ctx, shard))
        .owns_stream(owned_changes::<StatefulSet>(ctx, shard))
        .owns_stream(owned_changes::<Service>(ctx, shard))
        .owns_stream(owned_changes::<ConfigMap>(ctx, shard))
        .owns_stream(owned_changes::<Secret>(ctx, shard))
        // The target's HPA: its maxReplicas sizes the pools.
        .watches_stream(
            shard.hpas.changes(|_| {}).predicate_filter(predicates::generation, Default::default()),
            move |h: HorizontalPodAutoscaler| {
                let target = h.spec.as_ref().map(|s| s.scale_target_ref.name.clone()).unwrap_or_default();
                scalers.references.targets.profiles(h.namespace().as_deref(), &target)
            },
        )
        // The target itself: a new pod template starts a canary run, a replica change resizes pools.
        .watches_stream(
            watcher(api::<PartialObjectMeta<Deployment>>(client, namespace), watcher::Config::default().any_semantic())
                .default_backoff()
                .applied_objects()
                .predicate_filter(target_changed, Default::default()),
            move |d| targets.references.targets.profiles(d.namespace().as_deref(), &d.name_any()),
        )
        // Policy components in ConfigMaps: an edit in place is checked against the profile's pin without a restart.
        .watches_stream(
            watcher(api::<PartialObjectMeta<ConfigMap>>(client, namespace), watcher::Config::default().any_semantic())
                .default_backoff()
                .inspect_ok(move |event| {
                    if matches!(event, watcher::Event::InitDone) && counted.is_none() {
                        counted = Some(policies.policies.config_map_watch());
                    }
                })
                .touched_objects(),
            move |cm| config_map_changed(&config_maps, &cm),
        )
}

/// The profiles a ConfigMap's change concerns; the version is kept for the policy loader, which re-reads a
/// component's bytes only when it moved.
fn config_map_changed(ctx: &Context, cm: &PartialObjectMeta<ConfigMap>) -> Vec<ObjectRef<Watched>> {
    let profiles = ctx.references.config_maps.profiles(cm.namespace().as_deref(), &cm.name_any());
    if !profiles.is_empty() {
        ctx.policies.saw_config_map(&cm.namespace().unwrap_or_default(), &cm.name_any(), cm.resource_version());
    }
    profiles
}

/// Changes of owned objects of kind `K`, less the operator's own writes ([`triggers::OwnWrites`]).
fn owned_changes<K: Cacheable>(
    ctx: &Arc<Context>,
    shard: &Shard,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let ctx = ctx.clone();
    K::cached(shard)
        .changes(|missed| tracing::debug!(missed, "owned object changes missed; the resync catches them"))
        .try_filter(move |o| std::future::ready(!ctx.own_writes.is_own(o)))
        .boxed()
}
