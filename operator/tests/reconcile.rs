//! Reconcile against an in-memory API server (kube-fake-client: server-side apply and the status subresource).

mod fixtures;

use fixtures::{NS, Profile, ProfileExt, World, target_deployment};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Patch, PatchParams};
use perf_operator::components::labels::CONFIG_CHECKSUM_ANNOTATION;
use perf_operator_api::PerformanceProfile;
use serde_json::json;

#[tokio::test]
async fn create_provisions_redis_publishes_the_contract_and_becomes_ready() {
    let world = World::with(Profile::test().with_provisioned_redis().with_pools(), Some(target_deployment(4))).await;
    world.reconcile().await.unwrap();

    let secret = world.api::<Secret>().get("risk-api-redis").await.unwrap();
    assert_eq!(secret.data.unwrap()["password"].0.len(), 64, "a 32-byte hex password");
    let conf = world.api::<ConfigMap>().get("risk-api-redis-config").await.unwrap();
    let conf = &conf.data.unwrap()["redis.conf"];
    assert!(conf.contains("maxmemory 134217728") && conf.contains("maxmemory-policy allkeys-lru"), "{conf}");
    world.api::<Service>().get("risk-api-redis").await.unwrap();
    let redis = world.api::<Deployment>().get("risk-api-redis").await.unwrap();
    let owner = &redis.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("PerformanceProfile", Some(true)));

    let contract = world.api::<ConfigMap>().get("risk-api-perf").await.unwrap().data.unwrap();
    assert_eq!(contract["cache.ttl.riskModel"], "3600");
    assert_eq!(contract["cache.redis.address"], "risk-api-redis.risk.svc:6379");
    assert_eq!(contract["pools.clickhouse.max"], "10");
    assert_eq!(contract["pools.postgres.min"], "5");

    let p = world.profile().await;
    assert_eq!(World::condition(&p, "CacheReady").1, "WaitingForRedis");
    assert_eq!(World::condition(&p, "Ready").0, "False");
    assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Progressing"));
    assert_eq!(p.status.as_ref().unwrap().pools.as_ref().unwrap().app_replicas, 4, "observed target replicas");

    world.redis_becomes_available().await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert_eq!(
        World::condition(&p, "Ready"),
        ("True".into(), "AllComponentsReady".into(), "all components are ready".into())
    );
    assert_eq!(World::condition(&p, "PoolsReady").0, "True");
    assert_eq!(World::condition(&p, "Degraded").0, "False");
    assert_eq!(p.status.as_ref().unwrap().observed_generation, Some(1));
}

#[tokio::test]
async fn reconciling_an_unchanged_profile_writes_nothing() {
    let world = World::with(Profile::test().with_provisioned_redis().with_pools(), Some(target_deployment(2))).await;
    world.reconcile().await.unwrap();
    world.redis_becomes_available().await;
    world.reconcile().await.unwrap();
    let password = world.api::<Secret>().get("risk-api-redis").await.unwrap().data.unwrap()["password"].clone();

    world.reset_writes();
    world.reconcile().await.unwrap();
    world.reconcile().await.unwrap();
    assert_eq!(world.writes(), 0, "a steady state must not write");
    let again = world.api::<Secret>().get("risk-api-redis").await.unwrap().data.unwrap()["password"].clone();
    assert_eq!(password, again, "the password is never rotated by a reconcile");
}

#[tokio::test]
async fn drift_in_an_owned_object_is_corrected() {
    let world = World::with(Profile::test().with_provisioned_redis(), None).await;
    world.reconcile().await.unwrap();

    let patch = json!({"data": {"redis.conf": "maxmemory 1\n"}});
    world
        .api::<ConfigMap>()
        .patch("risk-api-redis-config", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let patch = json!({"spec": {"replicas": 3}});
    world.api::<Deployment>().patch("risk-api-redis", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    world.reset_writes();

    world.reconcile().await.unwrap();
    assert!(world.writes() >= 2, "both drifted objects re-applied");
    let conf = world.api::<ConfigMap>().get("risk-api-redis-config").await.unwrap().data.unwrap();
    assert!(conf["redis.conf"].contains("maxmemory 134217728"));
    let redis = world.api::<Deployment>().get("risk-api-redis").await.unwrap();
    assert_eq!(redis.spec.unwrap().replicas, Some(1));
}

#[tokio::test]
async fn an_invalid_spec_degrades_names_the_field_and_applies_nothing() {
    let world = World::with(Profile::test().with_provisioned_redis().with_canary_stages(vec![10, 5, 100]), None).await;
    world.reconcile_settled().await.unwrap();

    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(message.contains("spec.canary.stages") && message.contains("strictly increasing"), "{message}");
    assert_eq!(World::condition(&p, "Ready").0, "False");
    assert!(world.api::<Secret>().get_opt("risk-api-redis").await.unwrap().is_none(), "nothing applied");
    assert!(world.api::<ConfigMap>().get_opt("risk-api-perf").await.unwrap().is_none(), "nothing published");

    world.reset_writes();
    world.reconcile().await.unwrap();
    assert_eq!(world.writes(), 0, "no hot loop on an invalid object");
}

#[tokio::test]
async fn a_contract_change_rolls_the_target_when_asked() {
    let world =
        World::with(Profile::test().with_provisioned_redis().with_rollout_on_change(), Some(target_deployment(1)))
            .await;
    world.reconcile().await.unwrap();
    let checksum = |d: Deployment| {
        d.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[CONFIG_CHECKSUM_ANNOTATION].clone()
    };
    let first = checksum(world.api::<Deployment>().get("risk-api").await.unwrap());
    let p = world.profile().await;
    assert_eq!(p.status.unwrap().app_config.unwrap().checksum, first);

    let mut profile = world.profile().await;
    profile.spec.cache.as_mut().unwrap().ttl_classes[0].ttl_seconds = 7200;
    let patch = json!({"spec": profile.spec});
    world.api::<PerformanceProfile>().patch("risk-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    world.reconcile().await.unwrap();
    let second = checksum(world.api::<Deployment>().get("risk-api").await.unwrap());
    assert_ne!(first, second, "a TTL change must roll the app");
    let image =
        world.api::<Deployment>().get("risk-api").await.unwrap().spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone();
    assert_eq!(image.as_deref(), Some("risk-api:1"), "nothing else of the target is touched");
}

#[tokio::test]
async fn deletion_runs_the_finalizer_when_the_profile_asks_for_cleanup() {
    let world = World::with(Profile::test().with_clickhouse_prune(), None).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    assert!(p.metadata.finalizers.unwrap_or_default().contains(&"perf.operator.dev/cleanup".to_string()));

    // The in-memory API deletes at once, ignoring finalizers, and the reconcile reads the profile back from the
    // API, so the finalizer's clean-up step is called directly here; tests/e2e deletes through the real finalizer
    // and checks the finalizer is removed and the profile gone.
    let profile = std::sync::Arc::new(world.profile().await);
    let action = perf_operator::controller::cleanup::cleanup(profile, world.ctx.clone()).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
}

#[tokio::test]
async fn profiles_without_external_state_get_no_finalizer() {
    let world = World::with(Profile::test().with_provisioned_redis(), None).await;
    world.reconcile().await.unwrap();
    assert_eq!(
        world.profile().await.metadata.finalizers.unwrap_or_default(),
        vec![fixtures::FOREIGN_FINALIZER.to_string()]
    );
    let _ = NS;
}

#[tokio::test]
async fn a_canary_profile_creates_the_primary_and_hands_the_target_back_on_deletion() {
    let world =
        World::with(Profile::test().with_canary_stages(vec![10, 25, 50, 100]), Some(target_deployment(3))).await;
    world.reconcile_settled().await.unwrap();

    let p = world.profile().await;
    assert!(p.metadata.finalizers.clone().unwrap_or_default().iter().any(|f| f == "perf.operator.dev/cleanup"));
    let canary = p
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .unwrap_or_else(|| panic!("no canary status: {:?}", World::condition(&p, "CanaryReady")));
    assert_eq!(canary.primary_replicas, 3, "{canary:?}");
    assert!(canary.message.as_deref().unwrap_or_default().contains("primary"), "{canary:?}");
    let primary = world.api::<Deployment>().get("risk-api-primary").await.expect("primary created");
    assert_eq!(primary.spec.unwrap().replicas, Some(3), "the primary starts with the target's replicas");
    let (_, reason, _) = World::condition(&p, "CanaryReady");
    assert!(!reason.is_empty());

    // The finalizer's clean-up step (see the test above for why it is called directly).
    let profile = std::sync::Arc::new(world.profile().await);
    perf_operator::controller::cleanup::cleanup(profile, world.ctx.clone()).await.unwrap();
    let target = world.api::<Deployment>().get("risk-api").await.unwrap();
    assert_eq!(target.spec.unwrap().replicas, Some(3), "the target serves again before the primary goes");
}

#[tokio::test]
async fn a_profile_whose_canary_section_was_removed_still_hands_the_target_back_on_deletion() {
    let world =
        World::with(Profile::test().with_canary_stages(vec![10, 25, 50, 100]), Some(target_deployment(3))).await;
    world.reconcile_settled().await.unwrap();
    // The canary section removed from a live profile: the primary keeps serving, the target keeps zero replicas,
    // and the finalizer stays (it was set while the canary existed).
    let mut profile = world.profile().await;
    assert!(profile.status.as_ref().is_some_and(|s| s.canary.is_some()));
    // Where a run leaves it once the primary serves: the target at zero replicas.
    let zero = json!({"spec": {"replicas": 0}});
    world.api::<Deployment>().patch("risk-api", &PatchParams::default(), &Patch::Merge(&zero)).await.unwrap();
    profile.spec.canary = None;
    let profile = std::sync::Arc::new(profile);
    perf_operator::controller::cleanup::cleanup(profile, world.ctx.clone()).await.unwrap();
    let target = world.api::<Deployment>().get("risk-api").await.unwrap();
    assert_eq!(target.spec.unwrap().replicas, Some(3), "the primary's replicas go back to the target");
}

#[tokio::test]
async fn an_object_of_the_same_name_the_profile_does_not_control_is_never_taken_over() {
    let world = World::with(Profile::test().with_provisioned_redis(), Some(target_deployment(2))).await;
    // Someone's own Secret and ConfigMap under the names the operator would give the profile's.
    let mut secret = Secret::default();
    secret.metadata.name = Some("risk-api-redis".into());
    secret.string_data = Some([("password".to_string(), "theirs".to_string())].into());
    world.api::<Secret>().create(&Default::default(), &secret).await.unwrap();
    let mut contract = ConfigMap::default();
    contract.metadata.name = Some("risk-api-perf".into());
    contract.data = Some([("mine".to_string(), "keep".to_string())].into());
    world.api::<ConfigMap>().create(&Default::default(), &contract).await.unwrap();

    let result = world.reconcile().await;
    let error = result.err().map(|e| perf_operator::error::chain(&e)).unwrap_or_default();
    assert!(error.contains("ConfigMap risk-api-perf exists and is not this profile's"), "{error}");
    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "CacheReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ApplyFailed"), "{message}");
    assert!(message.contains("Secret risk-api-redis exists and is not this profile's"), "{message}");
    let kept = world.api::<ConfigMap>().get("risk-api-perf").await.unwrap();
    assert_eq!(kept.data.unwrap(), [("mine".to_string(), "keep".to_string())].into(), "their data is untouched");
    assert!(kept.metadata.owner_references.is_none(), "not adopted");
    let kept = world.api::<Secret>().get("risk-api-redis").await.unwrap();
    assert!(kept.metadata.owner_references.is_none(), "not adopted");
}
