//! The operator runs the profile's WASM policies through the real host and publishes their decisions, or what
//! `onFailure` says when a policy cannot decide. Uses the shared Redis of tests/run.sh (REDIS_URL) for observations.

mod fixtures;

use fixtures::{Profile, World};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use perf_operator_api::PerformanceProfile;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .unwrap_or_else(|_| panic!("REDIS_URL not set: run the suite with tests/run.sh, which starts redis-server"))
}

fn with_cache_policy(policy: Value) -> PerformanceProfile {
    let mut p = Profile::test();
    p.spec.cache = Some(
        serde_json::from_value(json!({
            "redis": {"external": {"address": redis_url()}},
            "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}, {"name": "metrics", "ttlSeconds": 300}],
            "policy": policy
        }))
        .unwrap(),
    );
    p
}

fn evaluation(p: &PerformanceProfile, world: &str) -> Value {
    let policies = p.status.as_ref().and_then(|s| s.policies.as_ref());
    serde_json::to_value(policies).unwrap_or_default()[world].clone()
}

async fn contract(world: &World) -> BTreeMap<String, String> {
    world.api::<ConfigMap>().get("risk-api-perf").await.unwrap().data.unwrap()
}

#[tokio::test]
async fn a_builtin_cache_policy_decides_the_published_ttls() {
    let world = World::with(with_cache_policy(json!({"builtin": "adaptive-ttl"})), None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").1, "Evaluated", "{:?}", World::condition(&p, "PoliciesReady"));
    let eval = evaluation(&p, "cache");
    assert_eq!(eval["published"], "Policy");
    assert_eq!(eval["policy"], "builtin:adaptive-ttl");
    assert!(eval["observed"]["maxMemoryBytes"].is_u64(), "Redis stats were the input: {eval}");
    assert!(eval["counters"]["hits"].is_u64(), "the counters are kept for the next interval: {eval}");
    let published = &p.status.as_ref().unwrap().cache.as_ref().unwrap().ttl_seconds;
    let c = contract(&world).await;
    for (class, ttl) in published {
        assert_eq!(c[&format!("cache.ttl.{class}")], ttl.to_string(), "contract and status agree");
        assert_eq!(eval["classes"][class]["ttlSeconds"], *ttl);
    }
}

#[tokio::test]
async fn bad_settings_are_reported_and_the_spec_values_published() {
    let policy = json!({"builtin": "adaptive-ttl", "settings": {"growFactor": 0}, "onFailure": "UseSpec"});
    let world = World::with(with_cache_policy(policy), None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "PoliciesReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "BadSettings"));
    assert!(message.contains("growFactor"), "{message}");
    assert_eq!(evaluation(&p, "cache")["published"], "Spec");
    let c = contract(&world).await;
    assert_eq!((c["cache.ttl.riskModel"].as_str(), c["cache.ttl.metrics"].as_str()), ("3600", "300"));
}

#[tokio::test]
async fn a_pin_mismatch_is_refused_and_fail_closed_admits_nothing() {
    let profile = with_cache_policy(json!({
        "configMap": {"name": "ttl-policy", "key": "policy.wasm", "sha256": "0".repeat(64)},
        "onFailure": "FailClosed"
    }));
    let world = World::with(profile, None).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ttl-policy", "namespace": fixtures::NS}})).unwrap();
    let cm = ConfigMap {
        binary_data: Some(BTreeMap::from([(
            "policy.wasm".into(),
            ByteString(perf_policy_host::BUILTIN_ADAPTIVE_TTL.to_vec()),
        )])),
        ..cm
    };
    world.api::<ConfigMap>().create(&PostParams::default(), &cm).await.unwrap();
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    let (status, _, message) = World::condition(&p, "PoliciesReady");
    assert_eq!(status, "False");
    assert!(message.contains("digest_mismatch") && message.contains("FailClosed"), "{message}");
    let closed = contract(&world).await;
    assert_eq!((closed["cache.admit.riskModel"].as_str(), closed["cache.admit.metrics"].as_str()), ("false", "false"));
    assert_eq!(evaluation(&p, "cache")["published"], "Closed");

    // The right pin is picked up without a restart.
    let sha = perf_policy_host::source::sha256_hex(perf_policy_host::BUILTIN_ADAPTIVE_TTL);
    let pin = json!({"spec": {"cache": {"policy": {"configMap": {"sha256": sha}}}}});
    world.api::<PerformanceProfile>().patch("risk-api", &PatchParams::default(), &Patch::Merge(&pin)).await.unwrap();
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").0, "True");
    let decided = contract(&world).await;
    assert!(decided.contains_key("cache.ttl.riskModel"));
    assert_eq!(evaluation(&world.profile().await, "cache")["published"], "Policy");
}

#[tokio::test]
async fn a_rate_limit_policy_without_traffic_holds_the_spec_limits() {
    let mut p = Profile::test();
    p.spec.rate_limit = Some(
        serde_json::from_value(json!({
            "routes": [{"route": "/api/v1/risk", "requestsPerSecond": 500, "burst": 1000}],
            "policy": {"builtin": "adaptive-rate-limit"}
        }))
        .unwrap(),
    );
    let world = World::with(p, None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").0, "True", "{:?}", World::condition(&p, "PoliciesReady"));
    let limits: Value = serde_json::from_str(&contract(&world).await["ratelimit.json"]).unwrap();
    assert_eq!(limits, json!([{"route": "/api/v1/risk", "requestsPerSecond": 500, "burst": 1000}]));
}
