//! A policy ConfigMap edited in place, against the in-memory API: the ConfigMap is read again on every reconcile (a
//! loaded pin does not hide the edit), bytes that no longer match the pin are refused with `PinMismatch` and
//! `onFailure` applies, and a pin updated to the new bytes loads them with the same operator context (no restart).
//! Uses the shared Redis of tests/run.sh (REDIS_URL) for observations, as `policies.rs` does.

mod fixtures;

use fixtures::{NS, Profile, World};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use perf_operator::decide::policy::PIN_MISMATCH;
use perf_operator_api::PerformanceProfile;
use perf_policy_host::source::sha256_hex;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Component A: the built-in adaptive TTL policy.
const A: &[u8] = perf_policy_host::BUILTIN_ADAPTIVE_TTL;
/// Component B: another cache policy, the host's test fixture, which echoes the published TTLs and gives its
/// settings text (`{}` here) as its reason, so which of the two decided shows in status.
const B: &[u8] = include_bytes!("../../policies/host/tests/fixtures/hostile.wasm");

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .unwrap_or_else(|_| panic!("REDIS_URL not set: run the suite with tests/run.sh, which starts redis-server"))
}

/// The profile, its cache policy taken from the ConfigMap `ttl-policy`, key `policy.wasm`, pinned to `sha256`.
fn pinned_to(sha256: &str) -> PerformanceProfile {
    let mut p = Profile::test();
    p.spec.cache = Some(
        serde_json::from_value(json!({
            "redis": {"external": {"address": redis_url()}},
            "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}],
            "policy": {"configMap": {"name": "ttl-policy", "key": "policy.wasm", "sha256": sha256}}
        }))
        .unwrap(),
    );
    p
}

fn policy_config_map(component: &[u8]) -> ConfigMap {
    let mut cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ttl-policy", "namespace": NS}})).unwrap();
    cm.binary_data = Some(BTreeMap::from([("policy.wasm".into(), ByteString(component.to_vec()))]));
    cm
}

fn cache_evaluation(p: &PerformanceProfile) -> Value {
    serde_json::to_value(p.status.as_ref().and_then(|s| s.policies.as_ref())).unwrap_or_default()["cache"].clone()
}

async fn contract(world: &World) -> BTreeMap<String, String> {
    world.api::<ConfigMap>().get("risk-api-perf").await.unwrap().data.unwrap()
}

#[tokio::test]
async fn an_edited_config_map_is_refused_by_its_pin_until_the_pin_follows() {
    let (sha_a, sha_b) = (sha256_hex(A), sha256_hex(B));
    let world = World::with(pinned_to(&sha_a), None).await;
    world.api::<ConfigMap>().create(&PostParams::default(), &policy_config_map(A)).await.unwrap();

    // A, pinned: its decision is published.
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").0, "True", "{:?}", World::condition(&p, "PoliciesReady"));
    let eval = cache_evaluation(&p);
    assert_eq!(eval["published"], "Policy");
    assert_ne!(eval["reason"], "{}", "A decided, not B: {eval}");
    let decided_by_a = contract(&world).await;
    assert!(decided_by_a.contains_key("cache.ttl.riskModel"));

    // The ConfigMap edited in place to B: A stays loaded under its pin, but the bytes are read again and refused.
    world.api::<ConfigMap>().replace("ttl-policy", &PostParams::default(), &policy_config_map(B)).await.unwrap();
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "PoliciesReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", PIN_MISMATCH), "{message}");
    for part in [&format!("ConfigMap {NS}/ttl-policy"), "\"policy.wasm\"", &sha_a, &sha_b] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    assert_eq!(cache_evaluation(&p)["published"], "LastGood", "KeepLastGood is the default");
    assert_eq!(contract(&world).await, decided_by_a, "the last good decision stays published");

    // The pin follows the edit: B is loaded and decides, in the same operator context.
    let patch = json!({"spec": {"cache": {"policy": {"configMap": {"sha256": sha_b}}}}});
    world.api::<PerformanceProfile>().patch("risk-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").0, "True", "{:?}", World::condition(&p, "PoliciesReady"));
    let eval = cache_evaluation(&p);
    assert_eq!(
        (eval["published"].as_str(), eval["reason"].as_str()),
        (Some("Policy"), Some("{}")),
        "B decided: {eval}"
    );
    assert_eq!(eval["policy"], format!("configMap:ttl-policy/policy.wasm@{}", &sha_b[..12]));
}

#[tokio::test]
async fn a_pin_updated_before_the_config_map_waits_for_the_bytes() {
    let sha_b = sha256_hex(B);
    let world = World::with(pinned_to(&sha_b), None).await;
    world.api::<ConfigMap>().create(&PostParams::default(), &policy_config_map(A)).await.unwrap();
    world.reconcile().await.unwrap();
    let (status, reason, message) = World::condition(&world.profile().await, "PoliciesReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", PIN_MISMATCH), "{message}");

    world.api::<ConfigMap>().replace("ttl-policy", &PostParams::default(), &policy_config_map(B)).await.unwrap();
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").0, "True", "{:?}", World::condition(&p, "PoliciesReady"));
    assert_eq!(cache_evaluation(&p)["reason"], "{}", "B decided");
}
