//! `cache.redis.provision.deleteWithProfile`, on the real API server with its garbage collector: by default a
//! provisioned Redis goes with its profile; with `false` the finalizer lets its objects go first (no owner
//! reference to the profile, annotated with where they came from), so the collector leaves them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Resource;
use kube::api::{DeleteParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::{Cluster, cluster};
use serde_json::json;
use std::time::Duration;

fn spec(keep: bool) -> serde_json::Value {
    json!({"cache": {"redis": {"provision": {"maxMemory": "32Mi", "deleteWithProfile": !keep}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}]}})
}

/// Owner references and the orphaned-from annotation of `name` of kind `K`, if it exists.
async fn look<K>(c: &Cluster, name: &str) -> Option<(usize, Option<String>)>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let o = c.api::<K>().get_opt(name).await.expect("get")?;
    let meta = o.meta();
    let from = meta.annotations.as_ref().and_then(|a| a.get("perf.operator.dev/orphaned-from").cloned());
    Some((meta.owner_references.as_ref().map_or(0, Vec::len), from))
}

/// The Redis objects of profile `name` that exist, as (kind, owner reference count, orphaned-from annotation).
async fn redis_objects(c: &Cluster, name: &str) -> Vec<(&'static str, usize, Option<String>)> {
    let redis = format!("{name}-redis");
    let found = [
        ("Deployment", look::<Deployment>(c, &redis).await),
        ("Service", look::<Service>(c, &redis).await),
        ("Secret", look::<Secret>(c, &redis).await),
        ("ConfigMap", look::<ConfigMap>(c, &format!("{redis}-config")).await),
    ];
    found.into_iter().filter_map(|(kind, o)| o.map(|(owners, from)| (kind, owners, from))).collect()
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_redis_kept_with_delete_with_profile_false_outlives_its_profile_and_the_default_goes() {
    let c = cluster().await;
    let _op = c.operator("replica-a");
    for (name, keep) in [("kept", true), ("gone", false)] {
        create_app(&c.api(), name, "registry.example/app:1", 1).await;
        c.profiles().create(&PostParams::default(), &profile(&c.namespace, name, spec(keep))).await.expect("create");
    }
    for name in ["kept", "gone"] {
        c.eventually(60, "the Redis objects applied", || async {
            (redis_objects(&c, name).await.len() == 4).then_some(())
        })
        .await;
    }
    for name in ["kept", "gone"] {
        c.profiles().delete(name, &DeleteParams::default()).await.expect("delete profile");
    }
    for name in ["kept", "gone"] {
        c.eventually(60, "the profile gone", || async {
            c.profiles().get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    // The collector deletes the default's objects; the kept ones stay, whatever it had time for.
    c.eventually(60, "the default Redis collected", || async {
        redis_objects(&c, "gone").await.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = redis_objects(&c, "kept").await;
    let from = format!("{}/kept", c.namespace);
    let expected: Vec<(&str, usize, Option<String>)> =
        ["Deployment", "Service", "Secret", "ConfigMap"].into_iter().map(|k| (k, 0, Some(from.clone()))).collect();
    assert_eq!(kept, expected, "the kept Redis's objects, unowned and marked");
    let events = c.api::<k8s_openapi::api::events::v1::Event>().list(&Default::default()).await.expect("events");
    assert!(events.items.iter().any(|e| e.reason.as_deref() == Some("RedisKept")), "no RedisKept event");
}
