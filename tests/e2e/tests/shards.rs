//! Shards on one API server: two operator instances with disjoint label selectors and a default instance that
//! takes the profiles no shard claims, each with its own Lease. Every profile is reconciled by exactly one of them
//! (the audit log by token), and relabelling a profile moves it to another shard.

use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::{Cluster, Operator, audit, cluster, redis_traffic};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const SHARD_LABEL: &str = "perf.operator.dev/shard";

/// An instance for `selector`, electing on a Lease of its own.
fn instance(c: &Cluster, holder: &str, selector: &str) -> Operator {
    let lease = format!("{}-{holder}", perf_e2e::operator::lease_name(&c.namespace));
    Operator::start_with(&c.namespace, holder, &["--watch-label-selector", selector, "--lease-name", &lease])
}

/// A profile named `name` with its target, labelled for `shard` (none: unlabelled).
async fn create(c: &Cluster, name: &str, shard: Option<&str>) {
    create_app(&c.api(), name, "registry.example/app:1", 1).await;
    let cache = json!({"redis": {"external": {"address": redis_traffic::url()}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]});
    let mut p = profile(&c.namespace, name, json!({"cache": cache}));
    if let Some(shard) = shard {
        p.metadata.labels = Some(BTreeMap::from([(SHARD_LABEL.to_string(), shard.to_string())]));
    }
    c.profiles().create(&PostParams::default(), &p).await.expect("create profile");
}

/// Who wrote each profile's status since the window opened: profile -> holders.
fn status_writers(window: &audit::Window, ops: &[&Operator]) -> BTreeMap<String, Vec<String>> {
    let mut writers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in window.events().iter().filter(|e| e.is_write()) {
        let Some(o) = e.object_ref.as_ref().filter(|o| o.resource == "performanceprofiles") else { continue };
        let Some(op) = ops.iter().find(|op| e.user.credential_id() == Some(op.credential_id.as_str())) else {
            continue;
        };
        let holders = writers.entry(o.name.clone()).or_default();
        if !holders.contains(&op.holder) {
            holders.push(op.holder.clone());
        }
    }
    writers
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn each_profile_is_reconciled_by_exactly_one_shard_and_moves_when_relabelled() {
    let c = cluster().await;
    let Some(window) = audit::Window::open() else {
        panic!("the shard test reads who wrote from the audit log of tests/support/control-plane.sh")
    };
    let a = instance(&c, "shard-a", &format!("{SHARD_LABEL}=a"));
    let b = instance(&c, "shard-b", &format!("{SHARD_LABEL}=b"));
    let default = instance(&c, "default", &format!("!{SHARD_LABEL}"));
    create(&c, "on-a", Some("a")).await;
    create(&c, "on-b", Some("b")).await;
    create(&c, "unclaimed", None).await;
    for name in ["on-a", "on-b", "unclaimed"] {
        c.wait_condition(name, "Ready", "True", 90).await;
    }
    let ops = [&a, &b, &default];
    let writers = status_writers(&window, &ops);
    let expected = BTreeMap::from([
        ("on-a".to_string(), vec!["shard-a".to_string()]),
        ("on-b".to_string(), vec!["shard-b".to_string()]),
        ("unclaimed".to_string(), vec!["default".to_string()]),
    ]);
    assert_eq!(writers, expected, "profile -> instances that wrote it");

    // Relabelled into shard b: the default instance lets it go, shard b takes it (a spec change shows a round).
    let moved = Some(audit::Window::open().expect("audit log"));
    let label = json!({"metadata": {"labels": {SHARD_LABEL: "b"}}});
    c.profiles().patch("unclaimed", &PatchParams::default(), &Patch::Merge(&label)).await.expect("relabel");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ttl = json!({"spec": {"cache": {"ttlClasses": [{"name": "pages", "ttlSeconds": 90}]}}});
    c.profiles().patch("unclaimed", &PatchParams::default(), &Patch::Merge(&ttl)).await.expect("change the spec");
    let generation = c.profiles().get("unclaimed").await.expect("profile").metadata.generation;
    c.eventually(30, "the relabelled profile reconciled", || async {
        let p = c.profiles().get("unclaimed").await.ok()?;
        (p.status?.observed_generation == generation).then_some(())
    })
    .await;
    let writers = status_writers(moved.as_ref().expect("window"), &ops);
    assert_eq!(writers.get("unclaimed"), Some(&vec!["shard-b".to_string()]), "after the relabel: {writers:?}");
}

/// The notes of the ShardConflict Events about profile `name` (each names the other shard's Lease).
async fn conflict_notes(c: &Cluster, name: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let events = c.api::<Event>().list(&kube::api::ListParams::default()).await.expect("list Events");
    events
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ShardConflict"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_profile_two_live_shards_select_is_reconciled_by_neither_until_the_labels_leave_it_to_one() {
    let c = cluster().await;
    let a = instance(&c, "shard-a", &format!("{SHARD_LABEL}=a"));
    // A mistaken second shard whose selector also takes shard a's gold profiles.
    let gold = instance(&c, "gold", "tier=gold");
    let mut ops = [a, gold];
    c.eventually(30, "both shards leading", || async {
        let mut leading = 0;
        for op in &ops {
            leading += usize::from(op.metric("perf_operator_leader").await == Some(1.0));
        }
        (leading == 2).then_some(())
    })
    .await;
    // Each leader checks at its start and every 30 s: by then each has seen the other's Lease.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let window = audit::Window::open().expect("the shard test reads who wrote from the audit log");
    create_app(&c.api(), "both", "registry.example/app:1", 1).await;
    let cache = json!({"redis": {"external": {"address": redis_traffic::url()}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]});
    let mut p = profile(&c.namespace, "both", json!({"cache": cache}));
    let labels = [(SHARD_LABEL, "a"), ("tier", "gold")];
    p.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    c.profiles().create(&PostParams::default(), &p).await.expect("create profile");
    let leases = ["shard-a", "gold"].map(|holder| format!("{}-{holder}", perf_e2e::operator::lease_name(&c.namespace)));
    c.eventually(60, "both shards reporting the conflict", || async {
        let notes = conflict_notes(&c, "both").await;
        leases.iter().all(|l| notes.iter().any(|n| n.contains(l.as_str()))).then_some(())
    })
    .await;
    let writers = status_writers(&window, &[&ops[0], &ops[1]]);
    assert_eq!(writers.get("both"), None, "neither shard acts on a profile both select: {writers:?}");

    // The labels leave it to shard a: within a check period it takes it, and only it.
    let moved = audit::Window::open().expect("audit log");
    let untier = json!({"metadata": {"labels": {"tier": null}}});
    c.profiles().patch("both", &PatchParams::default(), &Patch::Merge(&untier)).await.expect("unlabel gold");
    c.wait_condition("both", "Ready", "True", 90).await;
    let writers = status_writers(&moved, &[&ops[0], &ops[1]]);
    assert_eq!(writers.get("both"), Some(&vec!["shard-a".to_string()]), "{writers:?}");
    for op in &mut ops {
        assert!(op.running(), "an instance exited:\n{}", op.log());
    }
}
