//! A provisioned Redis with `persistence` against the real API server and kube-controller-manager: a StatefulSet
//! whose controller makes the claim `data-<name>-0`, Ready through the kubelet stand-in; turned off, a Deployment
//! again, the StatefulSet deleted and the claim (the data) kept.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::{cluster, kubelet};
use serde_json::json;

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_persistent_redis_is_a_stateful_set_with_its_claim_and_turning_it_off_keeps_the_data() {
    let c = cluster().await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 1).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    let cache = json!({"redis": {"provision": {"maxMemory": "32Mi",
        "persistence": {"mode": "both", "size": "2Gi", "storageClassName": "standard"}}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]});
    let desired = profile(&c.namespace, "shop", json!({"cache": cache}));
    let created = c.profiles().create(&PostParams::default(), &desired).await.expect("create profile");
    let uid = created.uid().expect("uid");
    c.wait_condition("shop", "CacheReady", "True", 120).await;

    let set = c.api::<StatefulSet>().get("shop-redis").await.expect("the Redis StatefulSet");
    assert!(set.owner_references().iter().any(|o| o.uid == uid), "not owned by the profile");
    assert!(c.api::<Deployment>().get_opt("shop-redis").await.expect("get").is_none(), "a Deployment as well");
    let claim = c
        .eventually(60, "the claim made by the StatefulSet controller", || async {
            c.api::<PersistentVolumeClaim>().get_opt("data-shop-redis-0").await.ok()?
        })
        .await;
    let spec = claim.spec.expect("claim spec");
    let size = spec.resources.and_then(|r| r.requests).and_then(|r| r.get("storage").cloned()).map(|q| q.0);
    assert_eq!((size.as_deref(), spec.storage_class_name.as_deref()), (Some("2Gi"), Some("standard")));
    let conf = c.api::<k8s_openapi::api::core::v1::ConfigMap>().get("shop-redis-config").await.expect("config");
    let conf = conf.data.unwrap_or_default().get("redis.conf").cloned().unwrap_or_default();
    assert!(conf.contains("dir /data") && conf.contains("appendonly yes") && conf.contains("save 3600"), "{conf}");

    // Off: a Deployment again, the StatefulSet deleted, the claim (the data) kept.
    let off = json!({"spec": {"cache": {"redis": {"provision": {"persistence": null}}}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&off)).await.expect("turn persistence off");
    c.eventually(90, "a Deployment instead of the StatefulSet", || async {
        let deployment = c.api::<Deployment>().get_opt("shop-redis").await.ok()??;
        let set = c.api::<StatefulSet>().get_opt("shop-redis").await.ok()?;
        let gone = set.is_none_or(|s| s.metadata.deletion_timestamp.is_some());
        (gone && deployment.owner_references().iter().any(|o| o.uid == uid)).then_some(())
    })
    .await;
    c.wait_condition("shop", "CacheReady", "True", 90).await;
    let kept = c.api::<PersistentVolumeClaim>().get_opt("data-shop-redis-0").await.expect("get claim");
    assert!(kept.is_some(), "turning persistence off deleted the data");
}
