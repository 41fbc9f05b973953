//! One profile per target. Two profiles acting on one Deployment would fight over it (two canaries scaling it, two
//! contracts for one app), so one profile holds a target and any other naming it gets a condition naming the holder
//! and applies nothing. The holder is the profile already acting on the target (whose status is not `TargetHeld`),
//! else the oldest (creation time, then name): the same answer from every replica and every round, and a profile
//! created or retargeted later never takes a target from one whose canary runs on it. When the holder goes
//! (deleted, or relabelled out of the shard) or names another target, the profiles left waiting on its old target
//! are woken at once rather than at their next resync.

use super::triggers::Watched;
use futures::FutureExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use perf_operator_api::PerformanceProfile;
use std::sync::Mutex;

/// The profile holding a target another profile names too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
}

impl Holder {
    /// The condition message of a profile that waits for `self`.
    pub fn message(&self, profile: &PerformanceProfile) -> String {
        format!(
            "deployment {} is already the target of profile {}: this profile applies nothing until {} is deleted \
             or names another target",
            profile.spec.target_ref.name, self.name, self.name
        )
    }
}

/// Which of `profiles` (every profile of `me`'s namespace, `me` among them or not) holds `me`'s target, when it
/// is not `me`. Pure: the decision every round makes.
pub fn holder<'a>(
    me: &PerformanceProfile,
    profiles: impl IntoIterator<Item = &'a PerformanceProfile>,
) -> Option<Holder> {
    let target = &me.spec.target_ref;
    // Acting first, then the oldest. A profile without a creation time (only in tests and `plan`) sorts first, as
    // the API server never hands one out.
    let rank = |p: &PerformanceProfile| (!acting(p), p.creation_timestamp().map(|t| t.0), p.name_any());
    let mine = rank(me);
    profiles
        .into_iter()
        .filter(|p| p.namespace() == me.namespace() && p.name_any() != me.name_any())
        .filter(|p| p.spec.target_ref.kind == target.kind && p.spec.target_ref.name == target.name)
        .filter(|p| rank(p) < mine)
        .min_by_key(|p| rank(p))
        .map(|p| Holder { name: p.name_any() })
}

/// Whether the operator acts on the profile's target for it: its last round acted on this very target (not on one
/// it named before a retargeting) and was not held for another profile since.
fn acting(profile: &PerformanceProfile) -> bool {
    let Some(status) = &profile.status else { return false };
    let held =
        status.conditions.iter().any(|c| c.type_ == perf_operator_api::condition::READY && c.reason == TARGET_HELD);
    status.target.as_deref() == Some(profile.spec.target_ref.name.as_str()) && !held
}

/// The reason of a profile waiting for another's target.
pub const TARGET_HELD: &str = "TargetHeld";

/// The profile stores of the controllers, and the way to wake their profiles.
#[derive(Default)]
pub struct Claims {
    shards: Mutex<Vec<Shard>>,
}

struct Shard {
    namespace: Option<String>,
    store: Store<Watched>,
    wake: UnboundedSender<ObjectRef<Watched>>,
}

impl Claims {
    /// A controller of `namespace` (every namespace when None) keeps its profiles in `store`; the returned stream
    /// carries the profiles to reconcile because a holder went.
    pub fn register(&self, namespace: Option<&str>, store: Store<Watched>) -> UnboundedReceiver<ObjectRef<Watched>> {
        let (wake, woken) = unbounded();
        let shard = Shard { namespace: namespace.map(str::to_string), store, wake };
        self.shards.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(shard);
        woken
    }

    /// The holder of `profile`'s target when another profile holds it, from the controller's store once it has
    /// listed, else from the API server (tests, or a namespace no controller covers).
    pub async fn holder_of(&self, client: &kube::Client, profile: &PerformanceProfile) -> kube::Result<Option<Holder>> {
        let namespace = profile.namespace().unwrap_or_default();
        if let Some(store) = self.store(&namespace) {
            let profiles: Vec<_> = store.state();
            return Ok(holder(profile, profiles.iter().filter_map(|g| g.0.as_ref().ok())));
        }
        let listed =
            Api::<PerformanceProfile>::namespaced(client.clone(), &namespace).list(&ListParams::default()).await?;
        Ok(holder(profile, &listed.items))
    }

    /// Wakes the profiles of `namespace` in `waiting` (those naming a target a holder just let go).
    pub fn wake(&self, namespace: &str, waiting: Vec<ObjectRef<Watched>>) {
        if waiting.is_empty() {
            return;
        }
        let shards = self.shards.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(shard) = shards.iter().find(|s| s.namespace.as_deref().is_none_or(|n| n == namespace)) else { return };
        for profile in waiting {
            // A closed channel is a controller that stopped: nothing left to wake.
            let _ = shard.wake.unbounded_send(profile);
        }
    }

    fn store(&self, namespace: &str) -> Option<Store<Watched>> {
        let shards = self.shards.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let shard = shards.iter().find(|s| s.namespace.as_deref().is_none_or(|n| n == namespace))?;
        // Before its first list the store is empty: it would name no holder and let a newer profile act.
        let ready = matches!(shard.store.wait_until_ready().now_or_never(), Some(Ok(())));
        ready.then(|| shard.store.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn profile(name: &str, target: &str, created: Option<&str>) -> PerformanceProfile {
        let mut p = PerformanceProfile::new(
            name,
            serde_json::from_value(serde_json::json!({"targetRef": {"name": target}})).unwrap(),
        );
        p.metadata.namespace = Some("shop".into());
        p.metadata.creation_timestamp = created.map(|t| Time(t.parse().unwrap()));
        p
    }

    #[test]
    fn the_oldest_profile_on_a_target_holds_it() {
        let a = profile("a", "web", Some("2026-01-01T00:00:00Z"));
        let b = profile("b", "web", Some("2026-01-02T00:00:00Z"));
        let c = profile("c", "web", Some("2026-01-03T00:00:00Z"));
        let other = profile("z", "api", Some("2025-01-01T00:00:00Z"));
        let all = [a.clone(), b.clone(), c.clone(), other.clone()];
        assert_eq!(holder(&a, &all), None, "the oldest holds");
        assert_eq!(holder(&b, &all), Some(Holder { name: "a".into() }));
        assert_eq!(holder(&c, &all), Some(Holder { name: "a".into() }), "the holder, not the next in line");
        assert_eq!(holder(&other, &all), None, "another target");
        assert_eq!(holder(&b, [&b, &c]), None, "the holder gone: the next oldest holds");
        assert_eq!(holder(&a, []), None, "alone");
    }

    #[test]
    fn ties_in_creation_time_go_by_name_and_other_namespaces_do_not_count() {
        let a = profile("a", "web", Some("2026-01-01T00:00:00Z"));
        let b = profile("b", "web", Some("2026-01-01T00:00:00Z"));
        assert_eq!(holder(&b, [&a, &b]), Some(Holder { name: "a".into() }));
        assert_eq!(holder(&a, [&a, &b]), None);
        let mut elsewhere = profile("0", "web", Some("2025-01-01T00:00:00Z"));
        elsewhere.metadata.namespace = Some("other".into());
        assert_eq!(holder(&a, [&elsewhere]), None);
    }

    fn reported(mut p: PerformanceProfile, reason: &str) -> PerformanceProfile {
        let ready = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time("2026-01-05T00:00:00Z".parse().unwrap()),
            observed_generation: None,
        };
        let target = Some(p.spec.target_ref.name.clone());
        p.status =
            Some(perf_operator_api::PerformanceProfileStatus { conditions: vec![ready], target, ..Default::default() });
        p
    }

    #[test]
    fn a_profile_acting_on_its_target_keeps_it_from_an_older_one_that_comes_later() {
        // b has run on `web` alone; a, older, is retargeted onto `web`: b's canary must not be taken over.
        let a = profile("a", "web", Some("2026-01-01T00:00:00Z"));
        let b = reported(profile("b", "web", Some("2026-01-02T00:00:00Z")), "Progressing");
        assert_eq!(holder(&a, [&a, &b]), Some(Holder { name: "b".into() }));
        assert_eq!(holder(&b, [&a, &b]), None);
        // Once a is told it waits (TargetHeld), it still does not count as acting.
        let a = reported(a, TARGET_HELD);
        assert_eq!(holder(&a, [&a, &b]), Some(Holder { name: "b".into() }));
        assert_eq!(holder(&b, [&a, &b]), None);
        // Two acting at once (written before this rule, or a race): the oldest keeps it.
        let a = reported(a, "AllComponentsReady");
        assert_eq!(holder(&b, [&a, &b]), Some(Holder { name: "a".into() }));
        // A profile that acted on another target and was retargeted here has not acted on this one.
        let mut moved = reported(profile("m", "api", Some("2025-01-01T00:00:00Z")), "AllComponentsReady");
        moved.spec.target_ref.name = "web".into();
        assert_eq!(holder(&moved, [&moved, &b]), Some(Holder { name: "b".into() }));
        assert_eq!(holder(&b, [&moved, &b]), None);
        // A refused or suspended holder still holds: what it applied is still on the target.
        let c = reported(profile("c", "api", Some("2026-01-03T00:00:00Z")), "InvalidSpec");
        let d = profile("d", "api", Some("2026-01-01T00:00:00Z"));
        assert_eq!(holder(&d, [&c, &d]), Some(Holder { name: "c".into() }));
    }

    #[test]
    fn the_message_names_target_and_holder() {
        let b = profile("b", "web", None);
        let m = Holder { name: "a".into() }.message(&b);
        assert!(m.contains("deployment web") && m.contains("profile a"), "{m}");
    }
}
