//! Pools sized for the worst case of pods: an HPA's maximum, primary and canary pods; a need the server's share
//! cannot meet is `PoolsReady=False`, reason `Undersized`, with needed vs allowed, and never published above it.

mod fixtures;

use fixtures::{NS, Profile, World};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::json;

fn hpa(max: i32) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "metadata": {"name": "risk-api", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "risk-api"},
                 "minReplicas": 2, "maxReplicas": max}
    }))
    .unwrap()
}

#[tokio::test]
async fn an_hpa_maximum_shares_the_server_and_a_shortfall_is_undersized() {
    let mut profile = Profile::test();
    // PostgreSQL allows 200, 10 % reserved: 180 over the pods.
    profile.spec.pools = Some(
        serde_json::from_value(json!({"appReplicas": 3,
            "postgres": {"min": 5, "max": 40, "serverMaxConnections": 200, "reservedPercent": 10}}))
        .unwrap(),
    );
    profile.spec.canary = None;
    let world = World::with(profile.clone(), None).await;
    world.api::<HorizontalPodAutoscaler>().create(&Default::default(), &hpa(12)).await.unwrap();
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    let pools = p.status.as_ref().unwrap().pools.clone().unwrap();
    // 3 pods now, up to 12 with the HPA: 180 / 12 = 15 each.
    assert_eq!((pools.app_replicas, pools.worst_case_pods, pools.sizes["postgres"].max), (3, 12, 15));
    let (status, reason, message) = World::condition(&p, "PoolsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Published"), "{message}");

    // A load that needs more than the share: published at the share, and said.
    profile.spec.pools = Some(
        serde_json::from_value(json!({"appReplicas": 3,
            "postgres": {"min": 5, "max": 100, "serverMaxConnections": 200, "reservedPercent": 10,
                         "load": {"queriesPerSecond": 3000, "queryLatencyMs": 50}}}))
        .unwrap(),
    );
    let world = World::with(profile, None).await;
    world.api::<HorizontalPodAutoscaler>().create(&Default::default(), &hpa(12)).await.unwrap();
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    let (status, reason, message) = World::condition(&p, "PoolsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Undersized"), "{message}");
    assert!(message.contains("postgres: needs") && message.contains("allows 15"), "{message}");
    assert_eq!(p.status.unwrap().pools.unwrap().sizes["postgres"].max, 15, "never above the share");
}
