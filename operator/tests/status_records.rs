//! Records in status survive every reconcile that cannot rebuild them. The in-memory API server of `fixtures.rs`
//! applies status as a real one does (`ssa.rs`): a field the operator leaves out of its apply is removed, so each
//! test would fail on a status built from scratch.

mod fixtures;

use fixtures::{Profile, ProfileExt, World, target_deployment};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use perf_operator_api::{CanaryStatus, ClickHouseStatus, PerformanceProfile};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

fn typed<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// A profile whose ClickHouse (unreachable, port 9) declares one index on `events` and prunes.
fn with_clickhouse_index() -> PerformanceProfile {
    let mut p = Profile::test().with_clickhouse_prune();
    p.spec.clickhouse.as_mut().unwrap().tables = typed(json!([
        {"name": "events", "indexes": [{"name": "i_model", "expression": "model", "type": "bloom_filter(0.01)"}]}
    ]));
    p
}

/// What the kubelet would report once a Deployment's pods run.
async fn pods_ready(world: &World, name: &str, replicas: i32) {
    let status = json!({"status": {"observedGeneration": 1000, "replicas": replicas, "updatedReplicas": replicas,
                                   "readyReplicas": replicas, "availableReplicas": replicas}});
    world.api::<Deployment>().patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

/// What the operator created in ClickHouse, as a previous reconcile recorded it.
fn clickhouse_records() -> Value {
    json!({
        "tables": [{"name": "events", "state": "InSync", "applied": 1, "pending": 0}],
        "managed": [{"table": "events", "kind": "Index", "name": "i_model", "definition": "model", "live": "model",
                     "materialized": true}]
    })
}

/// A canary run at stage 1/4, as a previous reconcile recorded it.
fn canary_run() -> Value {
    json!({"phase": "WaitingForPods", "runId": "r2", "stableId": "r1", "stage": "1/4", "stageIndex": 0, "weight": 10,
           "failedChecks": 1, "startedAt": "2026-01-01T00:00:00Z"})
}

/// `profile` as the operator left it: `status` was its last apply.
fn with_status(mut profile: PerformanceProfile, status: Value) -> PerformanceProfile {
    profile.status = Some(serde_json::from_value(status).unwrap());
    profile
}

fn clickhouse(p: &PerformanceProfile) -> ClickHouseStatus {
    p.status.as_ref().and_then(|s| s.clickhouse.clone()).expect("status.clickhouse")
}

fn canary(p: &PerformanceProfile) -> CanaryStatus {
    p.status.as_ref().and_then(|s| s.canary.clone()).expect("status.canary")
}

async fn patch_spec(world: &World, spec: Value) {
    let patch = json!({"spec": spec});
    world.api::<PerformanceProfile>().patch("risk-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

#[tokio::test]
async fn an_invalid_spec_keeps_the_canary_run_and_the_clickhouse_records_and_a_fix_resumes() {
    let profile = with_clickhouse_index().with_canary_stages(vec![10, 25, 50, 100]);
    let world =
        World::with(with_status(profile, json!({"clickhouse": clickhouse_records()})), Some(target_deployment(3)))
            .await;
    world.reconcile_settled().await.unwrap();
    pods_ready(&world, "risk-api-primary", 3).await;
    world.reconcile().await.unwrap();
    // A new template starts a run.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "risk-api:2"}]}}}});
    world.api::<Deployment>().patch("risk-api", &PatchParams::default(), &Patch::Merge(&image)).await.unwrap();
    world.reconcile().await.unwrap();
    let running = world.profile().await;
    let run = canary(&running);
    assert!(run.run_id.is_some() && run.started_at.is_some(), "{run:?}");

    patch_spec(&world, json!({"canary": {"stages": [10, 5, 100]}})).await;
    world.reconcile().await.unwrap();
    let invalid = world.profile().await;
    assert_eq!(World::condition(&invalid, "Degraded").1, "InvalidSpec");
    assert_eq!(canary(&invalid), run, "the run is kept as it was");
    assert_eq!(clickhouse(&invalid), clickhouse(&running), "the prune records are kept");
    assert_eq!(clickhouse(&invalid).managed.len(), 1);

    patch_spec(&world, json!({"canary": {"stages": [10, 25, 50, 100]}})).await;
    world.reconcile().await.unwrap();
    let fixed = world.profile().await;
    let (_, reason, message) = World::condition(&fixed, "Degraded");
    assert_eq!(reason, "Unreachable", "only the unreachable ClickHouse degrades it now: {message}");
    let resumed = canary(&fixed);
    assert_eq!((resumed.run_id, resumed.started_at), (run.run_id, run.started_at), "same run, not a new one");
    assert_eq!(clickhouse(&fixed).managed, clickhouse(&running).managed);
}

#[tokio::test]
async fn an_unreachable_clickhouse_keeps_the_records() {
    let profile = with_status(with_clickhouse_index(), json!({"clickhouse": clickhouse_records()}));
    let world = World::with(profile, None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "ClickHouseReady").0, "False");
    assert_eq!(clickhouse(&p).managed, typed::<ClickHouseStatus>(clickhouse_records()).managed);
    // Each declared table says why it was not looked at this round, rather than its state from the last one.
    let tables = clickhouse(&p).tables;
    assert!(!tables.is_empty() && tables.iter().all(|t| t.state == "Failed"), "{tables:?}");
    assert!(tables.iter().all(|t| t.message.as_deref().is_some_and(|m| m.contains("unreachable"))), "{tables:?}");
}

#[tokio::test]
async fn missing_clickhouse_credentials_keep_the_records() {
    let mut profile = with_clickhouse_index();
    profile.spec.clickhouse.as_mut().unwrap().credentials_secret_ref =
        Some(serde_json::from_value(json!({"name": "clickhouse-creds"})).unwrap());
    let world = World::with(with_status(profile, json!({"clickhouse": clickhouse_records()})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "ClickHouseReady").1, "CredentialsUnavailable");
    assert_eq!(clickhouse(&p), typed(clickhouse_records()));
}

#[tokio::test]
async fn a_canary_that_cannot_see_its_target_keeps_the_run() {
    let profile = Profile::test().with_canary_stages(vec![10, 25, 50, 100]);
    let world = World::with(with_status(profile, json!({"canary": canary_run()})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "CanaryReady").0, "False");
    assert_eq!(canary(&p), typed(canary_run()));
}

#[tokio::test]
async fn a_failing_rate_limit_policy_keeps_the_last_good_limits() {
    let mut profile = Profile::test();
    profile.spec.rate_limit = Some(
        serde_json::from_value(json!({
            "routes": [{"route": "/api", "requestsPerSecond": 500, "burst": 1000}],
            "policy": {"configMap": {"name": "missing", "key": "policy.wasm", "sha256": "0".repeat(64)},
                       "onFailure": "KeepLastGood"}
        }))
        .unwrap(),
    );
    let decided = json!({"/api": {"requestsPerSecond": 42, "burst": 84}});
    let status = json!({"policies": {"rateLimit": {"policy": "builtin:x", "published": "Policy", "routes": decided}}});
    let world = World::with(with_status(profile, status), None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "PoliciesReady").0, "False");
    let evaluation = serde_json::to_value(p.status.unwrap().policies.unwrap().rate_limit).unwrap();
    assert_eq!((&evaluation["published"], &evaluation["routes"]), (&json!("LastGood"), &decided));
    let contract = world.api::<ConfigMap>().get("risk-api-perf").await.unwrap().data.unwrap();
    let published: Value = serde_json::from_str(&contract["ratelimit.json"]).unwrap();
    assert_eq!(published, json!([{"route": "/api", "requestsPerSecond": 42, "burst": 84}]));
}

#[tokio::test]
async fn a_contract_that_cannot_be_published_still_records_the_round() {
    let profile = Profile::test().with_canary_stages(vec![10, 25, 50, 100]);
    let world = World::with(profile, Some(target_deployment(3))).await;
    world.reconcile().await.unwrap();
    world.fail_patches_of("risk-api-perf");
    assert!(world.reconcile().await.is_err(), "the publish error still goes to backoff");
    world.api::<Deployment>().get("risk-api-primary").await.expect("the canary step ran");
    let p = world.profile().await;
    assert!(canary(&p).message.is_some(), "and is recorded: {:?}", canary(&p));
    assert!(p.status.unwrap().app_config.is_none(), "no contract is claimed that was not published");
}

#[tokio::test]
async fn an_unreadable_profile_keeps_its_records() {
    let status = json!({"clickhouse": clickhouse_records(), "canary": canary_run()});
    let profile = with_status(Profile::test().with_clickhouse_prune(), status.clone());
    let world = World::with(profile, None).await;
    let metadata = world.profile().await.metadata;
    let guard =
        DeserializeGuard::<PerformanceProfile>(Err(InvalidObject { error: "unknown variant".into(), metadata }));
    perf_operator::controller::reconcile(Arc::new(guard), world.ctx.clone()).await.unwrap();
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "Degraded").1, "InvalidSpec");
    assert_eq!((clickhouse(&p), canary(&p)), (typed(status["clickhouse"].clone()), typed(status["canary"].clone())));
}
