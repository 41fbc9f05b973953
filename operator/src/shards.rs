//! The guard against overlapping shards. Instances split the profiles by label selector (`--watch-label-selector`),
//! each electing on a Lease of its own; the shards' Leases share one namespace. Each leader writes its selector and
//! namespaces on its Lease and reads the other live shards' at its start and every [`CHECK_EVERY`]. Before a
//! profile's first round (and again when its labels or the shards change) it asks the API server whether another
//! live shard's selector matches it too (a metadata-only LIST by name, so the server parses the selector). Neither
//! shard reconciles such a profile: each says so in a Warning event until the labels or the selectors are fixed,
//! rather than two operators writing the same objects.

use crate::controller::Scope;
use crate::leader::LeaseConfig;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::{Client, ResourceExt};
use perf_operator_api::PerformanceProfile;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// The Lease's annotation holding its shard's label selector (empty: every profile).
pub const SELECTOR_ANNOTATION: &str = "perf.operator.dev/watch-label-selector";
/// The Lease's annotation holding its shard's namespaces, comma-separated (empty: every namespace).
pub const NAMESPACES_ANNOTATION: &str = "perf.operator.dev/watch-namespaces";
/// The label that marks a Lease as a shard's.
pub const SHARD_LEASE_LABEL: &str = "perf.operator.dev/shard-lease";

/// How often a leader looks for shards overlapping its own.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// How long one look may take (a leader waits for the first before its first round).
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The other live shards (from their Leases) and, per profile, which of them select it too: asked of the API server
/// on the profile's first round under the current shards and labels, then kept until either changes.
#[derive(Default)]
pub struct Conflicts {
    others: Mutex<Vec<Other>>,
    verdicts: Mutex<BTreeMap<(String, String), Verdict>>,
}

/// The hash of a profile's labels when it was asked about, and the other shards' Leases that select it.
type Verdict = (u64, BTreeSet<String>);

impl Conflicts {
    /// The other live shards' Leases that also select `profile` (empty: none). Without other shards nothing is
    /// asked; a selector the server refuses selects nothing.
    pub async fn of(&self, client: &Client, profile: &PerformanceProfile) -> kube::Result<BTreeSet<String>> {
        let others = lock(&self.others).clone();
        if others.is_empty() {
            return Ok(BTreeSet::new());
        }
        let key = (profile.namespace().unwrap_or_default(), profile.name_any());
        let labels = labels_hash(profile);
        if let Some((hash, verdict)) = lock(&self.verdicts).get(&key)
            && *hash == labels
        {
            return Ok(verdict.clone());
        }
        let mut verdict = BTreeSet::new();
        for other in &others {
            if selects(client, other, &key.0, &key.1).await? {
                verdict.insert(other.lease.clone());
            }
        }
        lock(&self.verdicts).insert(key, (labels, verdict.clone()));
        Ok(verdict)
    }

    /// Forgets a profile that left the watch.
    pub fn forget(&self, namespace: &str, name: &str) {
        lock(&self.verdicts).remove(&(namespace.to_string(), name.to_string()));
    }

    /// The live shards now; when they changed, every profile is asked about again.
    fn set_others(&self, others: Vec<Other>) {
        let mut known = lock(&self.others);
        if *known != others {
            if !others.is_empty() {
                tracing::info!(shards = ?others.iter().map(|o| &o.lease).collect::<Vec<_>>(), "other live shards");
            }
            *known = others;
            lock(&self.verdicts).clear();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The profile's labels, hashed: a relabel asks again.
fn labels_hash(profile: &PerformanceProfile) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    profile.labels().hash(&mut hasher);
    hasher.finish()
}

/// Whether `other` selects profile `namespace/name`: one metadata-only LIST by name and its selector.
async fn selects(client: &Client, other: &Other, namespace: &str, name: &str) -> kube::Result<bool> {
    if !other.namespaces.is_empty() && !other.namespaces.iter().any(|n| n == namespace) {
        return Ok(false);
    }
    let api: Api<PartialObjectMeta<PerformanceProfile>> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&other.selector).fields(&format!("metadata.name={name}"));
    match api.list_metadata(&params).await {
        Ok(list) => Ok(!list.items.is_empty()),
        // A selector the server refuses selects nothing (that shard's own watch fails the same way).
        Err(kube::Error::Api(e)) if e.code == 400 => {
            tracing::warn!(lease = %other.lease, error = %e, "another shard's selector is refused");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Writes this shard's selector and namespaces on its Lease (a merge patch: the election's fields stay).
pub async fn announce(client: &Client, lease: &LeaseConfig, scope: &Scope) -> kube::Result<()> {
    let patch = json!({"metadata": {
        "labels": {SHARD_LEASE_LABEL: "true"},
        "annotations": {
            SELECTOR_ANNOTATION: scope.selector.clone().unwrap_or_default(),
            NAMESPACES_ANNOTATION: scope.namespaces.join(","),
        }
    }});
    let leases: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
    leases.patch(&lease.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

/// Looks for other live shards every [`CHECK_EVERY`]; never returns.
pub async fn guard(client: Client, lease: LeaseConfig, scope: Scope, conflicts: &Conflicts) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        refresh(&client, &lease, &scope, conflicts).await;
    }
}

/// One look at the Leases, within [`CHECK_TIMEOUT`]; a failed one keeps what the last one found.
pub async fn refresh(client: &Client, lease: &LeaseConfig, scope: &Scope, conflicts: &Conflicts) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &lease.namespace);
    let params = ListParams::default().labels(SHARD_LEASE_LABEL);
    match tokio::time::timeout(CHECK_TIMEOUT, leases.list(&params)).await {
        Ok(Ok(list)) => conflicts.set_others(others(&list.items, lease, scope, jiff::Timestamp::now())),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not list the shards' Leases; keeping the last answer"),
        Err(_) => {
            tracing::warn!(after = ?CHECK_TIMEOUT, "listing the shards' Leases timed out; keeping the last answer")
        }
    }
}

/// The live shards other than this one whose namespaces meet this one's.
fn others(leases: &[Lease], lease: &LeaseConfig, scope: &Scope, now: jiff::Timestamp) -> Vec<Other> {
    let mut found: Vec<Other> = leases
        .iter()
        .filter(|l| l.name_any() != lease.name && live(l, now))
        .map(Other::of)
        .filter(|o| overlap(&scope.namespaces, &o.namespaces).is_some())
        .collect();
    found.sort_by(|a, b| a.lease.cmp(&b.lease));
    found
}

/// Another shard, as its Lease says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Other {
    lease: String,
    selector: String,
    namespaces: Vec<String>,
}

impl Other {
    fn of(lease: &Lease) -> Self {
        let annotation = |key: &str| lease.annotations().get(key).cloned().unwrap_or_default();
        let namespaces = annotation(NAMESPACES_ANNOTATION);
        Self {
            lease: lease.name_any(),
            selector: annotation(SELECTOR_ANNOTATION),
            namespaces: namespaces.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect(),
        }
    }
}

/// A Lease some replica holds and renewed within its duration.
fn live(lease: &Lease, now: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return false };
    let held = spec.holder_identity.as_deref().is_some_and(|h| !h.is_empty());
    let duration = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    held && renewed.is_some_and(|r| r + duration > now)
}

/// The namespaces two shards both watch (None inside: every namespace); None when they share none.
fn overlap(mine: &[String], theirs: &[String]) -> Option<Vec<Option<String>>> {
    let shared: Vec<Option<String>> = match (mine.is_empty(), theirs.is_empty()) {
        (true, true) => vec![None],
        (true, false) => theirs.iter().cloned().map(Some).collect(),
        (false, true) => mine.iter().cloned().map(Some).collect(),
        (false, false) => mine.iter().filter(|n| theirs.contains(n)).cloned().map(Some).collect(),
    };
    (!shared.is_empty()).then_some(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_shards_share_the_namespaces_both_watch() {
        let ns = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(overlap(&[], &[]), Some(vec![None]));
        assert_eq!(overlap(&[], &ns(&["a"])), Some(vec![Some("a".into())]));
        assert_eq!(overlap(&ns(&["a", "b"]), &[]), Some(vec![Some("a".into()), Some("b".into())]));
        assert_eq!(overlap(&ns(&["a", "b"]), &ns(&["b", "c"])), Some(vec![Some("b".into())]));
        assert_eq!(overlap(&ns(&["a"]), &ns(&["c"])), None);
    }

    #[test]
    fn the_other_shards_are_the_live_leases_but_this_one_whose_namespaces_meet_it() {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let now = jiff::Timestamp::now();
        let lease = |name: &str, renewed_ago: i64, selector: &str, namespaces: &str| {
            let mut l = Lease {
                spec: Some(LeaseSpec {
                    holder_identity: Some("pod".into()),
                    lease_duration_seconds: Some(15),
                    renew_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(renewed_ago))),
                    ..LeaseSpec::default()
                }),
                ..Lease::default()
            };
            l.metadata.name = Some(name.into());
            l.metadata.annotations = Some(
                [(SELECTOR_ANNOTATION, selector), (NAMESPACES_ANNOTATION, namespaces)]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
            );
            l
        };
        let mine = LeaseConfig {
            namespace: "ops".into(),
            name: "shard-a".into(),
            holder: "pod".into(),
            ttl: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
        };
        let scope = Scope { namespaces: vec!["team-a".into(), "team-b".into()], ..Scope::default() };
        let leases = [
            lease("shard-a", 1, "shard=a", "team-a"),
            lease("zeta", 1, "tier=gold", ""),
            lease("dead", 60, "tier=silver", ""),
            lease("elsewhere", 1, "tier=bronze", "team-c"),
            lease("beta", 1, "", " team-b , team-c "),
        ];
        let found = others(&leases, &mine, &scope, now);
        let names: Vec<&str> = found.iter().map(|o| o.lease.as_str()).collect();
        assert_eq!(names, ["beta", "zeta"], "sorted; not this one, not the dead one, not one in other namespaces");
        assert_eq!(found[0].namespaces, ["team-b", "team-c"]);
        assert_eq!((found[1].selector.as_str(), found[1].namespaces.len()), ("tier=gold", 0));
    }

    #[test]
    fn a_lease_is_live_while_held_and_renewed_within_its_duration() {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let now = jiff::Timestamp::now();
        let lease = |holder: Option<&str>, renewed_ago: i64| Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(now - jiff::SignedDuration::from_secs(renewed_ago))),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert!(live(&lease(Some("pod-a"), 5), now));
        assert!(!live(&lease(Some("pod-a"), 20), now), "expired");
        assert!(!live(&lease(None, 1), now), "released");
        assert!(!live(&lease(Some(""), 1), now), "released");
        assert!(!live(&Lease::default(), now));
    }
}
