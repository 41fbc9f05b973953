//! The reconcile scenarios against a real API server: create, steady state, drift, invalid spec (refused by the
//! API server's own CEL), deletion. Each test runs in its own random namespace.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::cluster;
use perf_operator_api::PerformanceProfile;
use serde_json::json;

/// A profile with a provisioned Redis and pools; with `stages`, a canary section too.
fn profile(namespace: &str, stages: Option<&[u32]>) -> PerformanceProfile {
    let mut spec = json!({
        "targetRef": {"name": "shop"},
        "cache": {"redis": {"provision": {"maxMemory": "32Mi"}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]},
        "pools": {"postgres": {"min": 5, "max": 20}}
    });
    if let Some(stages) = stages {
        spec["canary"] = json!({"stages": stages});
    }
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "shop", "namespace": namespace},
        "spec": spec
    }))
    .expect("profile")
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored (see README)"]
async fn create_converge_drift_and_steady_state() {
    let c = cluster().await;
    let profiles = c.api::<PerformanceProfile>();
    profiles.create(&PostParams::default(), &profile(&c.namespace, None)).await.expect("create");

    let contract = c
        .eventually(60, "the app contract", || async { c.api::<ConfigMap>().get_opt("shop-perf").await.ok().flatten() })
        .await;
    assert_eq!(contract.data.expect("data")["cache.ttl.pages"], "60");
    c.eventually(240, "Ready=True (Redis pulled and running)", || async {
        let p = profiles.get("shop").await.ok()?;
        p.status?.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;

    // Steady state: a reconcile (triggered by a label change) writes nothing. ConfigMaps have no status, so their
    // resourceVersion moves only on a write.
    let versions = || async {
        let mut v = Vec::new();
        for name in ["shop-perf", "shop-redis-config"] {
            v.push(c.api::<ConfigMap>().get(name).await.expect("config map").metadata.resource_version);
        }
        v
    };
    let before = versions().await;
    let touch = json!({"metadata": {"labels": {"e2e-touch": "1"}}});
    profiles.patch("shop", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch");
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(before, versions().await, "a steady-state reconcile must not write");

    // Drift is corrected.
    let drift = json!({"data": {"redis.conf": "maxmemory 1\n"}});
    c.api::<ConfigMap>()
        .patch("shop-redis-config", &PatchParams::default(), &Patch::Merge(&drift))
        .await
        .expect("drift");
    c.eventually(30, "drift corrected", || async {
        let cm = c.api::<ConfigMap>().get("shop-redis-config").await.ok()?;
        cm.data?.get("redis.conf")?.contains("maxmemory 33554432").then_some(())
    })
    .await;
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored (see README)"]
async fn the_api_server_refuses_a_bad_profile_naming_the_field() {
    let c = cluster().await;
    let err =
        c.api::<PerformanceProfile>().create(&PostParams::default(), &profile(&c.namespace, Some(&[10, 5, 100]))).await;
    let message = format!("{err:?}");
    assert!(err.is_err(), "the API server accepted non-increasing stages");
    assert!(message.contains("stages") && message.contains("strictly increasing"), "{message}");
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored (see README)"]
async fn deleting_the_profile_garbage_collects_what_it_owns() {
    let c = cluster().await;
    let profiles = c.api::<PerformanceProfile>();
    profiles.create(&PostParams::default(), &profile(&c.namespace, None)).await.expect("create");
    c.eventually(60, "the Redis Deployment", || async {
        c.api::<Deployment>().get_opt("shop-redis").await.ok().flatten()
    })
    .await;
    profiles.delete("shop", &Default::default()).await.expect("delete");
    c.eventually(120, "owned objects gone", || async {
        c.api::<Deployment>().get_opt("shop-redis").await.ok()?.is_none().then_some(())
    })
    .await;
}
