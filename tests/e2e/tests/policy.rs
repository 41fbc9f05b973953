//! Scenario 8: a policy ConfigMap edited in place, against the real API server with the operator as its own
//! process. The edit is seen through the operator's watch of the ConfigMaps profiles name (the resync is set to
//! 300 s here, so nothing else would notice it in time), the new bytes are refused by the profile's sha256 pin with
//! the last good decision kept, and once the pin follows, the new component decides, in the same process.
//!
//! Two cache policies whose decisions differ on the same observations: A is the host's test fixture
//! (`policies/host/tests/fixtures/hostile.wasm`, a cache policy that, with plain settings, echoes the published TTLs
//! and gives its settings text as its reason); B is the built-in `adaptive-ttl`, which lengthens TTLs while the hit
//! ratio is low. The profile reads a Redis of the test's own that sees only misses (made just before B decides: a
//! policy judges the interval since its previous evaluation). (The built-in rate-limit
//! component cannot stand in for either: it implements the other world, so a cache policy pinned to it is refused
//! as `wrong_world` and never becomes ready.)

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::own_redis::OwnRedis;
use perf_e2e::{Cluster, Operator, cluster, kubelet, repo_root};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

fn component_a() -> Vec<u8> {
    std::fs::read(repo_root().join("policies/host/tests/fixtures/hostile.wasm")).expect("the hostile fixture")
}

fn component_b() -> Vec<u8> {
    std::fs::read(repo_root().join("policies/builtin/adaptive-ttl.wasm")).expect("the built-in adaptive-ttl")
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum (coreutils)");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_string()
}

fn policy_config_map(component: Vec<u8>) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "ttl-policy"}})).expect("ConfigMap");
    cm.binary_data = Some(BTreeMap::from([("policy.wasm".into(), ByteString(component))]));
    cm
}

/// The profile's `PoliciesReady` condition as (status, reason, message).
async fn policies_ready(c: &Cluster) -> Option<(String, String, String)> {
    let p = c.profiles().get("shop").await.ok()?;
    let cond = p.status?.conditions.into_iter().find(|c| c.type_ == "PoliciesReady")?;
    Some((cond.status, cond.reason, cond.message))
}

/// `status.policies.cache`.
async fn cache_evaluation(c: &Cluster) -> Value {
    let p = c.profiles().get("shop").await.expect("profile");
    serde_json::to_value(p.status.and_then(|s| s.policies?.cache)).unwrap_or_default()
}

/// The published TTL of class `pages` in the contract ConfigMap, and the ConfigMap's resourceVersion.
async fn contract_ttl(c: &Cluster) -> Option<(u32, String)> {
    let cm = c.api::<ConfigMap>().get("shop-perf").await.ok()?;
    let ttl = cm.data.as_ref()?.get("cache.ttl.pages")?.parse().ok()?;
    Some((ttl, cm.resource_version()?))
}

/// Profile reconciles of the process so far, checked never to go down: a restarted process starts again at 0.
async fn same_process(op: &mut Operator, before: f64) -> f64 {
    assert!(op.running(), "the operator process exited");
    let now = op.reconciles().await;
    assert!(now >= before, "reconciles went from {before} to {now}: the operator restarted");
    now
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_policy_config_map_edited_in_place_is_refused_by_its_pin_until_the_pin_follows() {
    let c = cluster().await;
    let redis = OwnRedis::start();
    redis.misses(200);
    create_app(&c.api(), "shop", "registry.example/shop:1", 2).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    // Resync every 300 s: only the ConfigMap watch can notice the edit within the waits below.
    let mut op = Operator::start_with(&c.namespace, "replica-a", &["--resync-seconds", "300"]);
    let (a, b) = (component_a(), component_b());
    let (sha_a, sha_b) = (sha256_hex(&a), sha256_hex(&b));
    assert_ne!(sha_a, sha_b);

    // Component A, pinned: PoliciesReady and A's decision published (the spec TTL echoed, reason "{}").
    c.api::<ConfigMap>().create(&PostParams::default(), &policy_config_map(a)).await.expect("create ConfigMap");
    let spec = json!({"cache": {
        "redis": {"external": {"address": redis.url()}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
        "policy": {"configMap": {"name": "ttl-policy", "key": "policy.wasm", "sha256": sha_a}}
    }});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("create profile");
    c.wait_condition("shop", "PoliciesReady", "True", 120).await;
    // Settled: the next reconcile without an event is the 300 s resync.
    c.wait_condition("shop", "Ready", "True", 120).await;
    let eval = cache_evaluation(&c).await;
    assert_eq!(
        (eval["published"].as_str(), eval["reason"].as_str()),
        (Some("Policy"), Some("{}")),
        "A decided: {eval}"
    );
    let (ttl, contract_version) = contract_ttl(&c).await.expect("the contract publishes cache.ttl.pages");
    assert_eq!(ttl, 60, "A echoes the spec TTL");
    let reconciles = same_process(&mut op, 0.0).await;

    // The ConfigMap edited in place to B: refused by the pin, naming the ConfigMap, the key and both digests, and
    // the contract left as it was (KeepLastGood, the default).
    let mut cm = c.api::<ConfigMap>().get("ttl-policy").await.expect("ConfigMap");
    cm.binary_data = policy_config_map(b).binary_data;
    c.api::<ConfigMap>().replace("ttl-policy", &PostParams::default(), &cm).await.expect("edit ConfigMap");
    let (_, _, message) = c
        .eventually(60, "PoliciesReady=False with reason PinMismatch", || async {
            policies_ready(&c).await.filter(|(s, r, _)| s == "False" && r == "PinMismatch")
        })
        .await;
    for part in [&format!("ConfigMap {}/ttl-policy", c.namespace), "\"policy.wasm\"", &sha_a, &sha_b] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    assert_eq!(cache_evaluation(&c).await["published"], "LastGood");
    let (ttl, version) = contract_ttl(&c).await.expect("contract");
    assert_eq!((ttl, version), (60, contract_version), "the contract changed although B was refused");
    let reconciles = same_process(&mut op, reconciles).await;

    // The pin follows: B is loaded and decides (TTLs lengthened on a hit ratio of 0), in the same process. A policy
    // is given the counters of the interval since its previous evaluation, so the misses it judges happen now.
    redis.misses(200);
    let patch = json!({"spec": {"cache": {"policy": {"configMap": {"sha256": sha_b}}}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("update the pin");
    c.wait_condition("shop", "PoliciesReady", "True", 60).await;
    let ttl = c
        .eventually(60, "B's decision in the contract", || async {
            contract_ttl(&c).await.map(|(ttl, _)| ttl).filter(|&ttl| ttl > 60)
        })
        .await;
    assert!(ttl <= 240, "adaptive-ttl keeps TTLs within 4x the spec: {ttl}");
    let eval = cache_evaluation(&c).await;
    // B lengthened on the interval with the misses; a later round (no lookups since) keeps what it decided.
    let reasons = ["hit ratio below target and memory available", "no lookups observed"];
    assert!(reasons.iter().any(|r| eval["reason"] == *r), "B decided: {eval}");
    assert_eq!(eval["policy"], format!("configMap:ttl-policy/policy.wasm@{}", &sha_b[..12]));
    same_process(&mut op, reconciles).await;
}
