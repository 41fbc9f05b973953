//! What starts a round. A profile reconciles when something it depends on changes (its spec, labels, annotations,
//! finalizers or deletion; an object it owns; its target's spec; the ConfigMap of its policy) or on its own
//! schedule (resync, the canary's cadence), never because of its own status write. Schedules are jittered so that
//! profiles created together do not resync together.

use kube::core::DeserializeGuard;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use perf_operator_api::PerformanceProfile;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// The watched profile, or what is left of one that does not deserialize.
pub type Watched = DeserializeGuard<PerformanceProfile>;

/// Predicate of the profile watch: a hash of what a round depends on in the profile object itself. A status write
/// (and the managedFields and resourceVersion it moves) leaves it unchanged, so it starts no round.
pub fn profile_trigger(profile: &Watched) -> Option<u64> {
    let m = profile.meta();
    let mut hasher = DefaultHasher::new();
    (&m.uid, m.generation, &m.labels, &m.annotations, &m.finalizers, m.deletion_timestamp.is_some()).hash(&mut hasher);
    Some(hasher.finish())
}

/// A profile whose current spec has had a round: what starts its rounds now is a schedule (resync, a canary's
/// poll) or a change of something it owns, not a new or edited spec.
pub fn settled(guard: &Watched) -> bool {
    let Ok(profile) = &guard.0 else { return false };
    let observed = profile.status.as_ref().and_then(|s| s.observed_generation);
    observed.is_some() && observed == profile.metadata.generation
}

/// How many of `concurrency` slots settled profiles may hold: all but a quarter (at least one kept for new and
/// changed profiles), all when there is only one.
pub fn settled_share(concurrency: u16) -> usize {
    let all = usize::from(concurrency.max(1));
    if all == 1 { 1 } else { all - (all / 4).max(1) }
}

/// Predicate of the target watch (metadata only): a Deployment's generation moves with its spec (a new pod
/// template, a replica change), not with its status.
pub fn spec_generation<K: Resource>(object: &K) -> Option<u64> {
    object.meta().generation.map(|g| g as u64)
}

/// `period` moved by up to `fraction` of it either way, drawn anew each time.
pub fn jittered(period: Duration, fraction: f64) -> Duration {
    let mut bytes = [0u8; 4];
    // Without randomness the schedule is only less spread, never wrong.
    let unit = getrandom::fill(&mut bytes).map_or(0.5, |()| f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX));
    spread(period, fraction, unit)
}

/// `period` scaled by `1 + fraction * (2 * unit - 1)`, `unit` in [0, 1].
fn spread(period: Duration, fraction: f64, unit: f64) -> Duration {
    let fraction = fraction.clamp(0.0, 1.0);
    period.mul_f64(1.0 + fraction * (2.0 * unit.clamp(0.0, 1.0) - 1.0))
}

/// Which profiles name an object of one kind in their namespace (their target Deployment, the ConfigMap of a
/// policy), learned at each profile's reconcile, so that an event of that object maps to its profiles in O(1)
/// instead of a scan of every profile. A profile not reconciled yet is not in it: its first round reads the object
/// anyway.
#[derive(Default)]
pub struct Index {
    inner: Mutex<IndexInner>,
}

#[derive(Default)]
struct IndexInner {
    /// (namespace, object) -> profile names.
    profiles: HashMap<(String, String), BTreeSet<String>>,
    /// (namespace, profile) -> object names, to take a profile's old entries out.
    objects: HashMap<(String, String), Vec<String>>,
}

impl Index {
    /// `namespace/profile` names exactly `objects` now; returns the objects it named before and names no more.
    pub fn set(&self, namespace: &str, profile: &str, objects: Vec<String>) -> Vec<String> {
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (namespace.to_string(), profile.to_string());
        let before = inner.objects.remove(&key).unwrap_or_default();
        let dropped = before.iter().filter(|o| !objects.contains(o)).cloned().collect();
        for old in before {
            let object = (namespace.to_string(), old);
            if let Some(names) = inner.profiles.get_mut(&object) {
                names.remove(profile);
                if names.is_empty() {
                    inner.profiles.remove(&object);
                }
            }
        }
        for object in &objects {
            let names = inner.profiles.entry((namespace.to_string(), object.clone())).or_default();
            names.insert(profile.to_string());
        }
        if !objects.is_empty() {
            inner.objects.insert(key, objects);
        }
        dropped
    }

    /// The profile is gone; returns the objects it named.
    pub fn forget(&self, namespace: &str, profile: &str) -> Vec<String> {
        self.set(namespace, profile, Vec::new())
    }

    /// The profiles naming `namespace/object`.
    pub fn profiles(&self, namespace: Option<&str>, object: &str) -> Vec<ObjectRef<Watched>> {
        let Some(namespace) = namespace else { return Vec::new() };
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let names = inner.profiles.get(&(namespace.to_string(), object.to_string()));
        names.into_iter().flatten().map(|name| ObjectRef::new(name).within(namespace)).collect()
    }

    /// Objects some profile names now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The objects of other kinds a profile's round reads and should be woken by.
#[derive(Default)]
pub struct References {
    /// Target Deployments.
    pub targets: Index,
    /// ConfigMaps holding a policy component.
    pub config_maps: Index,
}

impl References {
    /// Records what `profile` names now; returns the profiles naming a target it named before and names no more
    /// (one of them may have waited for it: [`super::claims`]).
    pub fn learn(&self, profile: &PerformanceProfile) -> Vec<ObjectRef<Watched>> {
        let (namespace, name) = (profile.namespace().unwrap_or_default(), profile.name_any());
        let dropped = self.targets.set(&namespace, &name, vec![profile.spec.target_ref.name.clone()]);
        self.config_maps.set(&namespace, &name, super::policy_runtime::config_maps_used(profile));
        self.sharing(&namespace, dropped)
    }

    /// The profile is gone; returns the profiles naming a target it named.
    pub fn forget(&self, namespace: &str, name: &str) -> Vec<ObjectRef<Watched>> {
        self.config_maps.forget(namespace, name);
        let dropped = self.targets.forget(namespace, name);
        self.sharing(namespace, dropped)
    }

    fn sharing(&self, namespace: &str, targets: Vec<String>) -> Vec<ObjectRef<Watched>> {
        targets.iter().flat_map(|t| self.targets.profiles(Some(namespace), t)).collect()
    }
}

/// The resourceVersion of the operator's own last write to each object it owns. The watch event of that write
/// carries the same version and starts no round: the round that wrote it had already decided on it. A change by
/// anyone else (drift) carries another version and does. An entry goes when its event is seen or is replaced by
/// the next write, so there is at most one per owned object.
#[derive(Default)]
pub struct OwnWrites {
    versions: Mutex<HashMap<(String, String, String), String>>,
}

impl OwnWrites {
    fn key<K: Resource<DynamicType = ()>>(object: &K) -> (String, String, String) {
        let m = object.meta();
        (K::kind(&()).into_owned(), m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
    }

    /// `object` as the API server answered the operator's write.
    pub fn record<K: Resource<DynamicType = ()>>(&self, object: &K) {
        let Some(version) = object.meta().resource_version.clone() else { return };
        self.versions.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(Self::key(object), version);
    }

    /// Whether `object` (from a watch event) is the operator's own last write; the entry is then spent.
    pub fn is_own<K: Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let key = Self::key(object);
        let mut versions = self.versions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let own = versions.get(&key).is_some_and(|v| object.meta().resource_version.as_ref() == Some(v));
        if own {
            versions.remove(&key);
        }
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn watched(value: serde_json::Value) -> Watched {
        serde_json::from_value(value).expect("a profile")
    }

    fn base() -> serde_json::Value {
        json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "u1", "generation": 3,
                "resourceVersion": "10", "labels": {"tier": "web"}, "annotations": {"a": "1"}},
            "spec": {"targetRef": {"name": "shop"}}
        })
    }

    #[test]
    fn rounds_of_new_and_changed_profiles_keep_a_quarter_of_the_slots() {
        assert!(!settled(&watched(base())), "never reconciled");
        let mut done = base();
        done["status"] = json!({"observedGeneration": 3});
        assert!(settled(&watched(done.clone())), "its spec has had a round");
        done["metadata"]["generation"] = json!(4);
        assert!(!settled(&watched(done.clone())), "edited since");
        done["status"] = json!({"conditions": []});
        assert!(!settled(&watched(done)), "no round recorded");
        let unreadable = watched(json!({"apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": "x", "namespace": "a", "generation": 1}, "spec": {"targetRef": 7},
            "status": {"observedGeneration": 1}}));
        assert!(!settled(&unreadable), "an unreadable profile is not settled");
        let shares: Vec<usize> = [0u16, 1, 2, 3, 4, 8, 16, 64].iter().map(|&c| settled_share(c)).collect();
        assert_eq!(shares, [1, 1, 1, 2, 3, 6, 12, 48]);
    }

    #[test]
    fn a_status_write_starts_no_round_and_what_matters_does() {
        let before = profile_trigger(&watched(base()));
        let mut status_write = base();
        status_write["metadata"]["resourceVersion"] = json!("11");
        status_write["metadata"]["managedFields"] = json!([{"manager": "perf-operator", "operation": "Apply"}]);
        status_write["status"] = json!({"observedGeneration": 3, "conditions": []});
        assert_eq!(profile_trigger(&watched(status_write)), before, "a status write");
        let changes: [(&str, serde_json::Value); 6] = [
            ("generation", json!(4)),
            ("labels", json!({"tier": "db"})),
            ("annotations", json!({"a": "1", "perf.operator.dev/command": "pause"})),
            ("finalizers", json!(["perf.operator.dev/cleanup"])),
            ("deletionTimestamp", json!("2026-12-06T00:00:00Z")),
            ("uid", json!("u2")),
        ];
        for (field, value) in changes {
            let mut changed = base();
            changed["metadata"][field] = value;
            assert_ne!(profile_trigger(&watched(changed)), before, "a change of {field}");
        }
    }

    #[test]
    fn an_unreadable_profile_still_triggers_on_a_new_generation() {
        let mut bad = base();
        bad["spec"] = json!({"targetRef": 7});
        let first = profile_trigger(&watched(bad.clone()));
        bad["metadata"]["generation"] = json!(4);
        assert!(watched(bad.clone()).0.is_err(), "the fixture must not deserialize");
        assert_ne!(profile_trigger(&watched(bad)), first);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let period = Duration::from_secs(300);
        assert_eq!(spread(period, 0.1, 0.0), Duration::from_secs(270));
        assert_eq!(spread(period, 0.1, 1.0), Duration::from_secs(330));
        assert_eq!(spread(period, 0.1, 0.5), period);
        assert_eq!(spread(period, 5.0, 0.0), Duration::ZERO, "the fraction is capped at the whole period");
        let drawn: Vec<Duration> = (0..200).map(|_| jittered(period, 0.1)).collect();
        assert!(drawn.iter().all(|d| (270..=330).contains(&d.as_secs())), "{drawn:?}");
        assert!(drawn.iter().any(|d| *d != drawn[0]), "no spread at all: {drawn:?}");
    }

    #[test]
    fn only_the_operators_own_write_is_passed_over_and_only_once() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::core::PartialObjectMeta;
        let at = |name: &str, version: &str| {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.into());
            cm.metadata.namespace = Some("team-a".into());
            cm.metadata.resource_version = Some(version.into());
            cm
        };
        // The watch sees owned objects metadata-only: same kind, name and version.
        let event = |name: &str, version: &str| {
            let cm = at(name, version);
            PartialObjectMeta::<ConfigMap> { metadata: cm.metadata, ..Default::default() }
        };
        let own = OwnWrites::default();
        own.record(&at("shop-perf", "41"));
        assert!(!own.is_own(&event("shop-perf", "40")), "an older version is someone else's");
        assert!(!own.is_own(&event("other", "41")), "another object");
        assert!(own.is_own(&event("shop-perf", "41")), "the operator's own write");
        assert!(!own.is_own(&event("shop-perf", "41")), "passed over once only");
        own.record(&at("shop-perf", "42"));
        assert!(!own.is_own(&event("shop-perf", "43")), "a change after the write (drift) starts a round");
    }

    #[test]
    fn the_index_follows_what_each_profile_names() {
        let index = Index::default();
        index.set("team-a", "shop", vec!["web".into()]);
        index.set("team-a", "shop-2", vec!["web".into()]);
        index.set("team-b", "shop", vec!["web".into()]);
        let names =
            |ns: &str, object: &str| index.profiles(Some(ns), object).into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names("team-a", "web"), ["shop", "shop-2"]);
        assert_eq!(names("team-b", "web"), ["shop"], "namespaces kept apart");
        assert!(index.profiles(None, "web").is_empty(), "a cluster-scoped object names no profile");
        // The profile moves to another target: the old one no longer maps to it.
        index.set("team-a", "shop", vec!["api".into()]);
        assert_eq!(names("team-a", "web"), ["shop-2"]);
        assert_eq!(names("team-a", "api"), ["shop"]);
        index.forget("team-a", "shop-2");
        index.forget("team-a", "shop");
        index.forget("team-b", "shop");
        assert!(index.is_empty(), "forgotten profiles leave nothing behind");
    }

    #[test]
    fn a_candidates_config_map_wakes_its_profile_too() {
        let source =
            |name: &str| serde_json::json!({"configMap": {"name": name, "key": "p.wasm", "sha256": "0".repeat(64)}});
        let mut spec = base();
        spec["spec"]["cache"] = serde_json::json!({"redis": {"external": {"address": "redis://r:6379"}},
            "policy": source("active"), "candidate": source("shadow")});
        spec["spec"]["rateLimit"] = serde_json::json!({"routes": [{"route": "/", "requestsPerSecond": 1, "burst": 1}],
            "policy": source("active"), "candidate": source("active")});
        let profile: PerformanceProfile = serde_json::from_value(spec).expect("a profile");
        let references = References::default();
        references.learn(&profile);
        for name in ["active", "shadow"] {
            let woken = references.config_maps.profiles(profile.namespace().as_deref(), name);
            assert_eq!(woken.into_iter().map(|r| r.name).collect::<Vec<_>>(), [profile.name_any()], "{name}");
        }
        assert_eq!(
            super::super::policy_runtime::config_maps_used(&profile),
            ["active", "shadow"],
            "each ConfigMap once"
        );
    }
}
