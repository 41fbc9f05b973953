//! Pools sized from live limits, end to end: the operator as its own process under the chart's ServiceAccount reads
//! the real PostgreSQL of the suite (`max_connections=37`, 3 reserved; POSTGRES_URL from tests/run.sh) with the
//! credentials of a Secret, divides the share by the HPA's maxReplicas, publishes it in the app contract, and says
//! `Undersized` when the declared load needs more than the server allows.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use perf_e2e::fixtures::{create_app, create_postgres_secret, postgres, profile};
use perf_e2e::{Cluster, cluster, kubelet};
use perf_operator_api::PoolSize;
use serde_json::{Value, json};

async fn postgres_size(c: &Cluster) -> Option<PoolSize> {
    c.profiles().get("shop").await.ok()?.status?.pools?.sizes.get("postgres").cloned()
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn pools_are_capped_by_the_live_postgres_share_of_the_most_pods_and_undersized_is_said() {
    let c = cluster().await;
    let (host, port, _, _) = postgres();
    create_postgres_secret(&c.api::<Secret>()).await;
    create_app(&c.api(), "shop", "registry.example/shop:1", 2).await;
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({"metadata": {"name": "shop"},
        "spec": {"minReplicas": 2, "maxReplicas": 3,
                 "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 70}}}]}}))
    .expect("hpa");
    c.api::<HorizontalPodAutoscaler>().create(&PostParams::default(), &hpa).await.expect("create the HPA");
    let _kubelet = kubelet::run(c.api::<Pod>());
    let _op = c.operator("replica-a");
    let server = json!({"host": host, "port": port, "credentialsSecretRef": {"name": "db"}, "sslMode": "disable"});
    let pools = json!({"pools": {"postgres": {"min": 2, "max": 40, "server": server}}});
    c.profiles().create(&PostParams::default(), &profile(&c.namespace, "shop", pools)).await.expect("create");

    // 37 minus 3 reserved = 34, less 10 % = 30, over the HPA's 3 pods = 10 per pod: the live server binds.
    let size = c
        .eventually(90, "the postgres pool capped by the live server", || async {
            postgres_size(&c).await.filter(|s| s.reason == "ServerCap")
        })
        .await;
    assert_eq!((size.min, size.max), (2, 10), "{size:?}");
    let limit = size.limit.unwrap_or_default();
    assert!(limit.starts_with("live PostgreSQL max_connections 37 minus 3 reserved: 34"), "{limit}");
    assert!(limit.contains("3 pod(s)"), "divided by the HPA's maxReplicas: {limit}");
    let pools = c.profiles().get("shop").await.expect("profile").status.and_then(|s| s.pools).expect("pools");
    assert_eq!(pools.worst_case_pods, 3);
    let contract = c.api::<ConfigMap>().get("shop-perf").await.expect("contract").data.unwrap_or_default();
    assert_eq!(contract.get("pools.postgres.max").map(String::as_str), Some("10"), "published above the share");
    assert_eq!(c.condition("shop", "PoolsReady").await.map(|(s, _)| s), Some("True".into()));

    // A declared load that needs more than the share: Undersized, needed vs allowed, never published above it.
    let load: Value =
        json!({"spec": {"pools": {"postgres": {"load": {"queriesPerSecond": 2000, "queryLatencyMs": 50}}}}});
    c.profiles().patch("shop", &PatchParams::default(), &Patch::Merge(&load)).await.expect("declare the load");
    let (_, message) = c
        .eventually(60, "PoolsReady=False Undersized", || async {
            let (status, reason) = c.condition("shop", "PoolsReady").await?;
            (status == "False" && reason == "Undersized").then_some(())?;
            let p = c.profiles().get("shop").await.ok()?;
            let condition = p.status?.conditions.into_iter().find(|c| c.type_ == "PoolsReady")?;
            Some((reason, condition.message))
        })
        .await;
    assert!(message.contains("postgres: needs") && message.contains("allows 10"), "{message}");
    assert_eq!(postgres_size(&c).await.map(|s| s.max), Some(10));
}
