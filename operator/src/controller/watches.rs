//! The watches of one controller (one namespace, or all of them): profiles through a predicate and the shard's
//! label selector, owned objects and targets metadata-only, the target's HPA, so that what the operator holds in
//! memory and maps per event does not grow with objects that no profile names. What rounds read comes from
//! [`super::caches`]; the triggers are these watches of the controller's own.

use super::Context;
use super::caches::{Cacheable, api};
use super::triggers::{self, Watched};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config, Controller};
use kube::runtime::reflector;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Predicate, WatchStreamExt, predicates, reflector::Store, watcher};
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;

pub use super::caches::MANAGED_BY;

/// The controller of `namespace` (every namespace when None): its triggers, its limits.
pub fn controller(ctx: &Arc<Context>, client: &Client, namespace: Option<&str>) -> Controller<Watched> {
    let gone = ctx.clone();
    let (store, profiles) = profiles(client, namespace, ctx.scope.selector.as_deref(), move |p| gone.forget(p));
    // Profiles that waited for a target its holder let go ([`super::claims`]).
    let woken = ctx.claims.register(namespace, store.clone());
    let pace = ctx.scope.pace;
    let owned = watcher::Config::default().labels(MANAGED_BY).any_semantic();
    let targets = ctx.clone();
    let scalers = ctx.clone();
    let config_maps = ctx.clone();
    let policies = ctx.clone();
    // Counted once listed (its events then cover every change), for as long as the watch lives.
    let mut counted = None;
    // Generation, labels and annotations: a new pod template or size, not the status a rollout moves.
    let target_changed = predicates::generation.combine(predicates::labels).combine(predicates::annotations);
    Controller::for_stream(profiles, store)
        // No bound here: the bound is [`Context::slots`], over every namespace's controller, where new and changed
        // profiles keep a share ([`triggers::settled_share`]). A bound here would let waiting rounds of settled
        // profiles take every place before a new profile's round could even ask for a slot.
        .with_config(Config::default().debounce(pace.debounce))
        .reconcile_on(woken)
        .owns_stream(owned_changes::<Deployment>(ctx, client, namespace, owned.clone()))
        .owns_stream(owned_changes::<StatefulSet>(ctx, client, namespace, owned.clone()))
        .owns_stream(owned_changes::<Service>(ctx, client, namespace, owned.clone()))
        .owns_stream(owned_changes::<ConfigMap>(ctx, client, namespace, owned.clone()))
        .owns_stream(owned_changes::<Secret>(ctx, client, namespace, owned))
        // The target's HPA: its maxReplicas sizes the pools.
        .watches_stream(
            watcher(api::<HorizontalPodAutoscaler>(client, namespace), watcher::Config::default().any_semantic())
                .default_backoff()
                .applied_objects()
                .predicate_filter(predicates::generation, Default::default()),
            move |h| {
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

/// The profiles of `namespace` matching `selector`, cached without their managedFields, and the stream of those
/// worth a round ([`triggers::profile_trigger`]); `deleted` hears of each profile that leaves the watch (deleted,
/// or relabelled out of this shard), which no round does.
fn profiles(
    client: &Client,
    namespace: Option<&str>,
    selector: Option<&str>,
    deleted: impl Fn(&Watched) + Send + 'static,
) -> (Store<Watched>, impl futures::Stream<Item = Result<Watched, watcher::Error>> + Send + 'static) {
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = selector {
        config = config.labels(selector);
    }
    let (store, writer) = reflector::store();
    let stream = watcher(api::<Watched>(client, namespace), config)
        .default_backoff()
        .modify(|p| p.meta_mut().managed_fields = None)
        .reflect(writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(p) = event {
                deleted(p);
            }
        })
        .applied_objects()
        .predicate_filter(triggers::profile_trigger, Default::default());
    (store, stream)
}

/// Changes of owned objects of kind `K`, metadata only, less the operator's own writes ([`triggers::OwnWrites`]).
fn owned_changes<K: Cacheable>(
    ctx: &Arc<Context>,
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static {
    let ctx = ctx.clone();
    watcher(api::<PartialObjectMeta<K>>(client, namespace), config)
        .default_backoff()
        .touched_objects()
        .try_filter(move |o| std::future::ready(!ctx.own_writes.is_own(o)))
}
