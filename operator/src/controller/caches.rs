//! The controller's caches: the objects the operator owns (selected by its label, kept only when a profile controls
//! them) and the HPAs of the watched namespaces, each kept by a reflector without managedFields. They start with the
//! process, before leadership, so a standby's caches are warm when it takes over; rounds read owned objects and HPAs
//! from them instead of the API server. The controller's triggers are watches of its own ([`super::watches`]).
//!
//! A read the cache cannot answer (not listed yet, a namespace no cache covers) goes to the API server. A cached
//! object may lag the server by a moment: reads that must not act on an old version (the Redis password Secret, the
//! profile itself, the canary's workloads) stay direct.

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// The label on every object the operator owns; owned objects are watched through it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=perf-operator";

/// One kind's store.
#[derive(Clone)]
pub struct Cached<K: Resource<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
}

impl<K> Cached<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    /// Starts the reflector of `api` on a task of its own, holding only the objects `keep` accepts (one it no longer
    /// accepts leaves as if deleted).
    fn start(api: Api<K>, config: watcher::Config, keep: fn(&K) -> bool) -> Self {
        let (store, writer) = reflector::store();
        let kind = K::kind(&()).into_owned();
        let reflect = watcher(api, config.any_semantic())
            .default_backoff()
            .try_filter_map(move |event| std::future::ready(Ok(kept(event, keep))))
            .modify(|o| o.meta_mut().managed_fields = None)
            .reflect(writer)
            .for_each(move |event| {
                if let Err(e) = event {
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                }
                std::future::ready(())
            });
        tokio::spawn(reflect);
        Self { store }
    }

    /// Whether the first list has arrived.
    pub fn ready(&self) -> bool {
        matches!(self.store.wait_until_ready().now_or_never(), Some(Ok(())))
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Option<Arc<K>>> {
        self.ready().then(|| self.store.get(&ObjectRef::new(name).within(namespace)))
    }
}

/// `event` with only what `keep` accepts: an object it refuses is dropped from a list, and a change to it reads as
/// its deletion (so a cached one is let go).
fn kept<K>(event: watcher::Event<K>, keep: fn(&K) -> bool) -> Option<watcher::Event<K>> {
    match event {
        watcher::Event::Apply(o) if !keep(&o) => Some(watcher::Event::Delete(o)),
        watcher::Event::InitApply(o) if !keep(&o) => None,
        other => Some(other),
    }
}

/// Whether a PerformanceProfile controls `object`: the label that selects owned objects is one any tenant can set,
/// so only what a profile owns is kept in memory.
fn profile_owned<K: Resource>(object: &K) -> bool {
    let kind = <perf_operator_api::PerformanceProfile as Resource>::kind(&());
    let group = <perf_operator_api::PerformanceProfile as Resource>::group(&());
    object.owner_references().iter().any(|o| {
        o.controller == Some(true) && o.kind == kind && o.api_version.split('/').next() == Some(group.as_ref())
    })
}

fn any<K>(_: &K) -> bool {
    true
}

/// The caches of one controller: one namespace, or all of them.
#[derive(Clone)]
pub struct Shard {
    pub namespace: Option<String>,
    pub deployments: Cached<Deployment>,
    pub stateful_sets: Cached<StatefulSet>,
    pub services: Cached<Service>,
    pub config_maps: Cached<ConfigMap>,
    pub secrets: Cached<Secret>,
    pub hpas: Cached<HorizontalPodAutoscaler>,
}

impl Shard {
    /// Starts the caches of `namespace` (every namespace when None).
    fn start(client: &Client, namespace: Option<&str>) -> Self {
        let owned = || watcher::Config::default().labels(MANAGED_BY);
        Self {
            namespace: namespace.map(str::to_string),
            deployments: Cached::start(api(client, namespace), owned(), profile_owned),
            stateful_sets: Cached::start(api(client, namespace), owned(), profile_owned),
            services: Cached::start(api(client, namespace), owned(), profile_owned),
            config_maps: Cached::start(api(client, namespace), owned(), profile_owned),
            secrets: Cached::start(api(client, namespace), owned(), profile_owned),
            hpas: Cached::start(api(client, namespace), watcher::Config::default(), any),
        }
    }

    fn covers(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
}

/// A kind the caches keep.
pub trait Cacheable:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    fn cached(shard: &Shard) -> &Cached<Self>;
}

macro_rules! cacheable {
    ($($kind:ty => $field:ident),*) => {
        $(impl Cacheable for $kind {
            fn cached(shard: &Shard) -> &Cached<Self> {
                &shard.$field
            }
        })*
    };
}

cacheable!(Deployment => deployments, StatefulSet => stateful_sets, Service => services, ConfigMap => config_maps,
    Secret => secrets);

/// Every watched namespace's caches. Empty (every read goes to the API server) until [`Caches::start`].
#[derive(Clone, Default)]
pub struct Caches {
    pub shards: Vec<Shard>,
}

impl Caches {
    /// Starts a cache of each kind for each namespace of `namespaces` (every namespace when empty).
    pub fn start(client: &Client, namespaces: &[String]) -> Self {
        let namespaces: Vec<Option<&str>> = match namespaces {
            [] => vec![None],
            listed => listed.iter().map(|n| Some(n.as_str())).collect(),
        };
        let shards = namespaces.into_iter().map(|ns| Shard::start(client, ns)).collect();
        Self { shards }
    }

    fn shard(&self, namespace: &str) -> Option<&Shard> {
        self.shards.iter().find(|s| s.covers(namespace))
    }

    /// Returns once every cache has listed.
    pub async fn listed(&self) {
        for shard in &self.shards {
            // An error means the writer is gone with its task: nothing more will list.
            let _ = futures::join!(
                shard.deployments.store.wait_until_ready(),
                shard.stateful_sets.store.wait_until_ready(),
                shard.services.store.wait_until_ready(),
                shard.config_maps.store.wait_until_ready(),
                shard.secrets.store.wait_until_ready(),
                shard.hpas.store.wait_until_ready(),
            );
        }
    }

    /// The owned object `namespace/name` of `api`'s kind (None when there is none), from the cache once it has
    /// listed, else from the API server. Only what the operator labels and a profile controls is cached: read only
    /// such objects this way (another one reads as absent).
    pub async fn get_or_read<K: Cacheable>(
        &self,
        api: &Api<K>,
        namespace: &str,
        name: &str,
    ) -> kube::Result<Option<Arc<K>>> {
        if let Some(found) = self.shard(namespace).and_then(|s| K::cached(s).get(namespace, name)) {
            return Ok(found);
        }
        Ok(api.get_opt(name).await?.map(Arc::new))
    }

    /// The HPA aimed at Deployment `target` in `namespace` (None when there is none), when the cache has listed.
    pub fn target_hpa(&self, namespace: &str, target: &str) -> Option<Option<HorizontalPodAutoscaler>> {
        let hpas = &self.shard(namespace)?.hpas;
        let aimed = |h: &HorizontalPodAutoscaler| {
            h.namespace().as_deref() == Some(namespace) && perf_canary::objects::aims_at(h, target)
        };
        hpas.ready().then(|| hpas.store.find(aimed).map(Arc::unwrap_or_clone))
    }
}

/// The API of kind `K` in `namespace`, or in every namespace.
pub(super) fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn secret(owner: Option<(&str, &str, bool)>) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("shop-redis".into());
        s.metadata.owner_references = owner.map(|(api_version, kind, controller)| {
            vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "shop".into(),
                uid: "u".into(),
                controller: Some(controller),
                block_owner_deletion: None,
            }]
        });
        s
    }

    #[test]
    fn only_what_a_profile_controls_is_kept_whatever_its_labels() {
        assert!(profile_owned(&secret(Some(("perf.operator.dev/v1alpha1", "PerformanceProfile", true)))));
        for refused in [
            None,
            Some(("perf.operator.dev/v1alpha1", "PerformanceProfile", false)),
            Some(("example.com/v1", "PerformanceProfile", true)),
            Some(("apps/v1", "Deployment", true)),
        ] {
            assert!(!profile_owned(&secret(refused)), "{refused:?}");
        }
    }

    #[test]
    fn an_object_no_profile_controls_is_dropped_from_a_list_and_let_go_when_it_changes() {
        let foreign = || secret(None);
        let owned = || secret(Some(("perf.operator.dev/v1alpha1", "PerformanceProfile", true)));
        assert!(kept(watcher::Event::InitApply(foreign()), profile_owned).is_none());
        assert!(matches!(kept(watcher::Event::InitApply(owned()), profile_owned), Some(watcher::Event::InitApply(_))));
        assert!(matches!(kept(watcher::Event::Apply(foreign()), profile_owned), Some(watcher::Event::Delete(_))));
        assert!(matches!(kept(watcher::Event::Apply(owned()), profile_owned), Some(watcher::Event::Apply(_))));
        assert!(matches!(kept(watcher::Event::Delete(foreign()), profile_owned), Some(watcher::Event::Delete(_))));
        assert!(matches!(kept::<Secret>(watcher::Event::InitDone, profile_owned), Some(watcher::Event::InitDone)));
    }
}
