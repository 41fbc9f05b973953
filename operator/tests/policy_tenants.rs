//! Profiles as tenants of the policy host, against the in-memory API: two profiles using the same component never
//! share its instances (guest state cannot carry one profile's input into the other's decision), and a component
//! the host refuses at load is `PoliciesReady=False` with its category, as in the metric and the CLI.
//! Uses the shared Redis of tests/run.sh (REDIS_URL) for observations, as `policies.rs` does.

mod fixtures;

use std::collections::BTreeMap;
use std::sync::Arc;

use fixtures::{NS, Profile, World};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use perf_operator_api::PerformanceProfile;
use perf_policy_host::source::sha256_hex;
use serde_json::{Value, json};

/// The host's hostile fixture: with `remember` in its settings it reports the settings of its previous call.
const HOSTILE: &[u8] = include_bytes!("../../policies/host/tests/fixtures/hostile.wasm");
/// A component with two linear memories: refused before it is compiled.
const MULTI_MEMORY: &[u8] = include_bytes!("../../policies/host/tests/fixtures/multi-memory.wasm");

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .unwrap_or_else(|_| panic!("REDIS_URL not set: run the suite with tests/run.sh, which starts redis-server"))
}

/// A profile `name` whose cache policy is the ConfigMap `policy` (key `policy.wasm`) pinned to `sha256`.
fn profile(name: &str, sha256: &str, settings: Value) -> PerformanceProfile {
    let mut p = Profile::test();
    p.metadata.name = Some(name.into());
    // One profile per target: each profile here is a tenant's own service.
    p.spec.target_ref.name = name.into();
    p.spec.cache = Some(
        serde_json::from_value(json!({
            "redis": {"external": {"address": redis_url()}},
            "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}],
            "policy": {"configMap": {"name": "policy", "key": "policy.wasm", "sha256": sha256}, "settings": settings}
        }))
        .unwrap(),
    );
    p
}

fn config_map(component: &[u8]) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "policy", "namespace": NS}})).unwrap();
    cm.binary_data = Some(BTreeMap::from([("policy.wasm".into(), ByteString(component.to_vec()))]));
    cm
}

/// Reconciles the profile `name` with the world's operator context (one policy host for every profile).
async fn reconcile(world: &World, name: &str) -> PerformanceProfile {
    let api: Api<PerformanceProfile> = world.api();
    let p = api.get(name).await.unwrap();
    perf_operator::controller::converge::reconcile(Arc::new(p), world.ctx.clone()).await.unwrap();
    api.get(name).await.unwrap()
}

fn cache_reason(p: &PerformanceProfile) -> String {
    let policies = serde_json::to_value(p.status.as_ref().and_then(|s| s.policies.as_ref())).unwrap_or_default();
    policies["cache"]["reason"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn profiles_sharing_a_component_never_share_its_state() {
    let sha = sha256_hex(HOSTILE);
    let secret = json!({"mode": "remember", "secret": "risk-api-card-4111"});
    // Each reconcile evaluates: the state the guest keeps is what one evaluation passes to the next.
    let world = World::with(profile("risk-api", &sha, secret), None).await.evaluating_every_round();
    world.api::<ConfigMap>().create(&PostParams::default(), &config_map(HOSTILE)).await.unwrap();
    let other = profile("pricing-api", &sha, json!({"mode": "remember"}));
    world.api::<PerformanceProfile>().create(&PostParams::default(), &other).await.unwrap();

    for name in ["risk-api", "risk-api", "pricing-api", "pricing-api"] {
        let p = reconcile(&world, name).await;
        let reason = cache_reason(&p);
        assert!(reason.starts_with("previous="), "{name} decided: {reason:?} {:?}", p.status);
        if name == "pricing-api" {
            assert!(!reason.contains("risk-api-card"), "another profile's input leaked: {reason}");
        }
    }
    // Not vacuous: the guest does keep state between calls of one profile.
    let p = reconcile(&world, "risk-api").await;
    assert!(cache_reason(&p).contains("risk-api-card-4111"), "{}", cache_reason(&p));
}

#[tokio::test]
async fn a_component_refused_at_load_names_its_category() {
    let sha = sha256_hex(MULTI_MEMORY);
    let world = World::with(profile("risk-api", &sha, json!({})), None).await;
    world.api::<ConfigMap>().create(&PostParams::default(), &config_map(MULTI_MEMORY)).await.unwrap();
    for _ in 0..2 {
        let p = reconcile(&world, "risk-api").await;
        let (status, _, message) = World::condition(&p, "PoliciesReady");
        assert_eq!(status, "False", "{message}");
        assert!(message.contains("2 linear memories") && message.contains("(load)"), "{message}");
    }
}

#[tokio::test]
async fn a_candidate_never_shares_the_active_policys_instances() {
    let sha = sha256_hex(HOSTILE);
    let mut p = profile("risk-api", &sha, json!({"mode": "remember", "who": "active-7731"}));
    let candidate = json!({"configMap": {"name": "policy", "key": "policy.wasm", "sha256": sha},
        "settings": {"mode": "remember", "who": "candidate-5520"}});
    p.spec.cache.as_mut().unwrap().candidate = Some(serde_json::from_value(candidate).unwrap());
    // The same component on both sides: only the tenant the candidate is loaded for keeps them apart.
    let world = World::with(p, None).await.evaluating_every_round();
    world.api::<ConfigMap>().create(&PostParams::default(), &config_map(HOSTILE)).await.unwrap();
    let candidate_reason = |p: &PerformanceProfile| {
        let policies = serde_json::to_value(p.status.as_ref().and_then(|s| s.policies.as_ref())).unwrap_or_default();
        policies["cache"]["candidate"]["reason"].as_str().unwrap_or_default().to_string()
    };
    let mut last = None;
    for _ in 0..3 {
        let p = reconcile(&world, "risk-api").await;
        let (active, candidate) = (cache_reason(&p), candidate_reason(&p));
        assert!(
            active.starts_with("previous=") && candidate.starts_with("previous="),
            "{active:?} {candidate:?} {:?}",
            p.status
        );
        assert!(!active.contains("candidate-5520"), "the candidate's input reached the active policy: {active}");
        assert!(!candidate.contains("active-7731"), "the active policy's input reached the candidate: {candidate}");
        last = Some(candidate);
    }
    // Not vacuous: the candidate's own instance keeps its state between evaluations.
    assert!(last.unwrap().contains("candidate-5520"));
}
