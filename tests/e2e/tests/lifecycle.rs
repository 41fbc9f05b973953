//! A profile's life against the real API server, with the operator as its own process under the chart's
//! ServiceAccount: create -> Ready with owned objects, quiet steady state (from the audit log), drift put back,
//! deletion through the finalizer and the garbage collector, and a namespace deletion that completes.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{
    clickhouse_database, clickhouse_indexes, clickhouse_url, create_app, profile, pruned_index_and_canary,
};
use perf_e2e::{OPERATOR_USER, audit, cluster, kubelet};
use serde_json::json;

const MANAGED: &str = "app.kubernetes.io/managed-by=perf-operator";

/// Names of the objects of kind `K` the operator labelled as its own, each checked for an owner reference to
/// the profile (controller, blocking deletion), so the garbage collector removes them with it.
async fn owned<K>(api: &Api<K>, uid: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&ListParams::default().labels(MANAGED)).await.expect("list owned");
    for o in &list.items {
        let owners = o.owner_references();
        assert!(
            owners.iter().any(|r| r.uid == uid && r.controller == Some(true) && r.kind == "PerformanceProfile"),
            "{} has no controller owner reference to the profile: {owners:?}",
            o.name_any()
        );
    }
    list.items.iter().map(|o| o.name_any()).collect()
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn create_converges_writes_nothing_when_steady_and_puts_back_drift() {
    let c = cluster().await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let op = c.operator("replica-a");
    // Every component that writes to Kubernetes: Redis objects, the contract, and a canary primary at rest.
    let spec = json!({"canary": {"stages": [10, 25, 50, 100], "stepInterval": "5s"}});
    let created = c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await;
    let uid = created.expect("create profile").uid().expect("uid");
    c.wait_condition("shop", "Ready", "True", 120).await;

    assert!(owned(&c.api::<ConfigMap>(), &uid).await.contains(&"shop-perf".to_string()), "no app contract");
    assert!(!owned(&c.api::<Deployment>(), &uid).await.is_empty(), "no Redis Deployment");
    let services = owned(&c.api::<Service>(), &uid).await;
    assert!(!services.is_empty(), "no Redis Service");
    assert!(!owned(&c.api::<Secret>(), &uid).await.is_empty(), "no Redis password Secret");

    // Steady state: two resyncs (every 5 s here) write nothing, by the audit log or, on a cluster without one,
    // by resourceVersions (the objects checked have no status, so only a write moves them).
    // The round that made Ready True records the conditions' transitions as Events after it writes the status: the
    // window opens once a later round has started (rounds of one profile never overlap), so that one has finished.
    let seen_ready = op.reconciles().await;
    c.eventually(30, "a round after Ready", || async { (op.reconciles().await > seen_ready).then_some(()) }).await;
    let window = audit::Window::open();
    let contract_version = c.api::<ConfigMap>().get("shop-perf").await.expect("contract").resource_version();
    let profile_version = c.profiles().get("shop").await.expect("profile").resource_version();
    let start = op.reconciles().await;
    c.eventually(60, "two resyncs", || async { (op.reconciles().await >= start + 2.0).then_some(()) }).await;
    if let Some(window) = window {
        let writes: Vec<String> = window.writes(OPERATOR_USER, &c.namespace).iter().map(|e| e.describe()).collect();
        assert!(writes.is_empty(), "the steady state wrote: {writes:?}");
        assert!(!window.requests(OPERATOR_USER).is_empty(), "the audit log saw no request of the operator at all");
    }
    assert_eq!(contract_version, c.api::<ConfigMap>().get("shop-perf").await.expect("contract").resource_version());
    assert_eq!(profile_version, c.profiles().get("shop").await.expect("profile").resource_version());

    // An owned object edited by hand is put back; a deleted one comes back.
    let drift = json!({"data": {"cache.ttl.pages": "1"}});
    c.api::<ConfigMap>().patch("shop-perf", &PatchParams::default(), &Patch::Merge(&drift)).await.expect("edit");
    c.eventually(30, "the contract put back", || async {
        let cm = c.api::<ConfigMap>().get("shop-perf").await.ok()?;
        (cm.data?.get("cache.ttl.pages")? == "60").then_some(())
    })
    .await;
    c.api::<Service>().delete(&services[0], &DeleteParams::default()).await.expect("delete Service");
    c.eventually(30, "the Service recreated", || async {
        let s = c.api::<Service>().get_opt(&services[0]).await.ok()??;
        s.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn deletion_runs_the_finalizer_then_the_garbage_collector_and_namespaces_go() {
    let c = cluster().await;
    let db = clickhouse_database(&c.namespace).await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 3).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    let spec = pruned_index_and_canary(&db);
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("create");
    c.eventually(120, "the index on the live table", || async {
        clickhouse_indexes(&db).await.contains(&"i_model".to_string()).then_some(())
    })
    .await;
    c.eventually(120, "the canary taking over the target (primary serving)", || async {
        let target = c.api::<Deployment>().get("shop").await.ok()?;
        (target.spec?.replicas? == 0).then_some(())
    })
    .await;

    c.profiles().delete("shop", &DeleteParams::default()).await.expect("delete profile");
    c.eventually(120, "the profile gone (finalizer done)", || async {
        c.profiles().get_opt("shop").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(clickhouse_indexes(&db).await.is_empty(), "prune: true left the operator's index on the table");
    let target = c.api::<Deployment>().get("shop").await.expect("target");
    assert_eq!(target.spec.and_then(|s| s.replicas), Some(3), "the canary did not hand the target back");
    c.eventually(120, "owned objects collected by the garbage collector", || async {
        let left = c.api::<ConfigMap>().list(&ListParams::default().labels(MANAGED)).await.ok()?.items.len()
            + c.api::<Deployment>().list(&ListParams::default().labels(MANAGED)).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;

    // A namespace holding a profile with a finalizer is deleted while the operator runs: it completes.
    let spec = json!({"clickhouse": {"endpoint": clickhouse_url(), "database": db, "prune": true, "tables": []}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "again", spec)).await.expect("create");
    c.eventually(60, "the finalizer set", || async {
        let p = c.profiles().get("again").await.ok()?;
        (!p.finalizers().is_empty()).then_some(())
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces.delete(&c.namespace, &DeleteParams::default()).await.expect("delete namespace");
    c.eventually(180, "the namespace deletion to complete", || async {
        namespaces.get_opt(&c.namespace).await.ok()?.is_none().then_some(())
    })
    .await;
}
