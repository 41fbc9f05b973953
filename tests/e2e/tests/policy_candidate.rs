//! A policy candidate in the shadow of the active policy, against the real API server with the operator as its own
//! process: its verdict is in status while the contract keeps the active policy's values, `kubectl perf policy
//! promote` refuses it and then (forced) makes it the policy in one write, after which the contract follows it. A
//! promotion patch read at a stale resourceVersion is refused by the API server and changes nothing.
//!
//! The active policy is the host's test fixture (`policies/host/tests/fixtures/hostile.wasm`, which echoes the
//! published TTLs) from a ConfigMap; the candidate is the built-in `adaptive-ttl`, which lengthens TTLs while the
//! hit ratio is low: the test's own Redis sees only misses, so the two differ by 25 % (the bound is 10 %).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, profile};
use perf_e2e::own_redis::OwnRedis;
use perf_e2e::{Cluster, Operator, cluster, env_path, kubelet, repo_root};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::process::Output;

fn active_component() -> Vec<u8> {
    std::fs::read(repo_root().join("policies/host/tests/fixtures/hostile.wasm")).expect("the hostile fixture")
}

/// The published TTL of class `pages` in the contract ConfigMap.
async fn contract_ttl(c: &Cluster) -> Option<u32> {
    let cm = c.api::<ConfigMap>().get("shop-perf").await.ok()?;
    cm.data.as_ref()?.get("cache.ttl.pages")?.parse().ok()
}

/// `status.policies.cache.candidate`.
async fn candidate_record(c: &Cluster) -> Value {
    let p = c.profiles().get("shop").await.expect("profile");
    serde_json::to_value(p.status.and_then(|s| s.policies?.cache?.candidate)).unwrap_or_default()
}

/// `perf-operator policy promote shop` with the admin identity (the test's KUBECONFIG), as `kubectl perf` runs it.
fn promote(namespace: &str, extra: &[&str]) -> Output {
    std::process::Command::new(env_path("PERF_OPERATOR_BIN"))
        .args(["policy", "promote", "shop", "--namespace", namespace])
        .args(extra)
        .output()
        .expect("run perf-operator policy promote")
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn a_candidate_is_judged_in_the_shadow_and_promoted_by_hand_only() {
    let c = cluster().await;
    let redis = OwnRedis::start();
    create_app(&c.api(), "shop", "registry.example/shop:1", 1).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let op = Operator::start(&c.namespace, "replica-a");
    let component = active_component();
    let sha256 = hex::encode(Sha256::digest(&component));
    let mut cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "ttl-policy"}})).expect("ConfigMap");
    cm.binary_data = Some(BTreeMap::from([("policy.wasm".into(), ByteString(component))]));
    c.api::<ConfigMap>().create(&PostParams::default(), &cm).await.expect("create ConfigMap");
    let spec = json!({"cache": {
        "redis": {"external": {"address": redis.url()}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
        "policy": {"configMap": {"name": "ttl-policy", "key": "policy.wasm", "sha256": sha256}, "onFailure": "UseSpec"},
        "candidate": {"builtin": "adaptive-ttl", "maxDifferencePercent": 10}
    }});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", spec)).await.expect("create profile");

    // Misses between evaluations (every 4 s with the 5 s resync): the candidate lengthens, the active echoes.
    let record = c
        .eventually(90, "the candidate's verdict Differs", || async {
            redis.misses(200);
            Some(candidate_record(&c).await).filter(|r| r["verdict"] == "Differs")
        })
        .await;
    assert_eq!(record["policy"], "builtin:adaptive-ttl");
    assert_eq!(
        (record["comparedWith"].as_str(), record["maxDifferencePercent"].as_u64()),
        (Some("Decision"), Some(10))
    );
    let largest = record["largestDifferencePercent"].as_u64().expect("a largest difference");
    assert!(largest > 10 && record["differencePercent"]["pages"] == largest, "{record}");
    assert!(record["classes"]["pages"]["ttlSeconds"].as_u64().is_some_and(|t| t > 60), "{record}");
    assert_eq!(contract_ttl(&c).await, Some(60), "the contract keeps the active policy's TTL");
    let condition = c.condition("shop", "PolicyCandidateAgrees").await;
    assert_eq!(condition, Some(("False".into(), "DiffersBeyondBound".into())), "advisory, beside Ready");
    c.wait_condition("shop", "Ready", "True", 60).await;
    let counted = r#"perf_operator_policy_candidate_evaluations_total{verdict="Differs",world="cache-policy"}"#;
    assert!(op.metric(counted).await.is_some_and(|n| n >= 1.0), "{counted}");
    let gauge = format!(
        r#"perf_operator_policy_candidate_difference_percent{{namespace="{}",profile="shop",world="cache-policy"}}"#,
        c.namespace
    );
    assert!(op.metric(&gauge).await.is_some_and(|d| d > 10.0), "{gauge}");

    // Refused while it differs (exit 4), nothing changed; promoted with --force.
    let before = c.profiles().get("shop").await.expect("profile");
    let refused = promote(&c.namespace, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("differs beyond its bound") && stderr.contains("--force"), "{stderr}");
    let after = c.profiles().get("shop").await.expect("profile");
    assert_eq!(after.spec, before.spec, "a refused promotion writes nothing");

    // A promotion read before a change: the API server refuses the patch at the stale resourceVersion (409).
    let stale = before.metadata.resource_version.clone().expect("a resourceVersion");
    let touch = json!({"metadata": {"annotations": {"perf-e2e/touched": "yes"}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&touch)).await.expect("touch the profile");
    let guarded: Patch<()> = Patch::Json(
        serde_json::from_value(json!([
            {"op": "replace", "path": "/metadata/resourceVersion", "value": stale},
            {"op": "remove", "path": "/spec/cache/candidate"}
        ]))
        .expect("a JSON patch"),
    );
    let conflict = c.profiles().patch("shop", &PatchParams::default(), &guarded).await.expect_err("a conflict");
    assert!(matches!(&conflict, kube::Error::Api(s) if s.code == 409), "{conflict:?}");
    assert!(c.profiles().get("shop").await.expect("profile").spec.cache.and_then(|c| c.candidate).is_some());

    let promoted = promote(&c.namespace, &["--force", "--world", "cache"]);
    let stdout = String::from_utf8_lossy(&promoted.stdout);
    assert_eq!(promoted.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&promoted.stderr));
    assert!(stdout.contains("spec.cache.policy is now builtin:adaptive-ttl") && stdout.contains("GitOps"), "{stdout}");
    let cache = c.profiles().get("shop").await.expect("profile").spec.cache.expect("cache");
    assert!(cache.candidate.is_none(), "the candidate is gone");
    let policy = serde_json::to_value(cache.policy).expect("JSON");
    assert_eq!(
        policy,
        json!({"builtin": "adaptive-ttl", "onFailure": "UseSpec"}),
        "the active policy's onFailure kept"
    );

    // The contract follows the promoted policy; the candidate's condition goes with it.
    let ttl = c
        .eventually(90, "the promoted policy's TTL in the contract", || async {
            redis.misses(200);
            contract_ttl(&c).await.filter(|&ttl| ttl > 60)
        })
        .await;
    assert!(ttl <= 240, "adaptive-ttl keeps TTLs within 4x the spec: {ttl}");
    c.eventually(30, "PolicyCandidateAgrees removed", || async {
        c.condition("shop", "PolicyCandidateAgrees").await.is_none().then_some(())
    })
    .await;
}
