//! Pools sized for the worst case of pods: an HPA's maximum, primary and canary pods; a need the server's share
//! cannot meet is `PoolsReady=False`, reason `Undersized`, with needed vs allowed, and never published above it.
//! Caps from live servers: the suite's PostgreSQL (POSTGRES_URL, started by tests/run.sh with max_connections 37)
//! and ClickHouse engine (CLICKHOUSE_URL); declared limits checked against them; servers that cannot be read.

mod fixtures;

use fixtures::{NS, Profile, World, postgres_server};
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

/// The suite's PostgreSQL (tests/run.sh: max_connections 37, 3 reserved for superusers) as `pools.postgres.server`,
/// credentials from the Secret `pg`; `extra` is merged into the pool.
fn with_live_postgres(port: Option<u16>, extra: serde_json::Value) -> perf_operator_api::PerformanceProfile {
    let (host, live_port, _, _) = postgres_server();
    let mut pool = json!({"min": 2, "max": 40,
        "server": {"host": host, "port": port.unwrap_or(live_port), "credentialsSecretRef": {"name": "pg"}}});
    for (k, v) in extra.as_object().unwrap() {
        pool[k] = v.clone();
    }
    let mut profile = Profile::test();
    profile.spec.pools = Some(serde_json::from_value(json!({"appReplicas": 2, "postgres": pool})).unwrap());
    profile
}

async fn world_with_secret(profile: perf_operator_api::PerformanceProfile, password: Option<&str>) -> World {
    let (_, _, user, real) = postgres_server();
    let world = World::with(profile, None).await;
    world.secret("pg", &[("username", &user), ("password", password.unwrap_or(&real))]).await;
    world
}

fn pools_status(p: &perf_operator_api::PerformanceProfile) -> perf_operator_api::PoolsStatus {
    p.status.as_ref().and_then(|s| s.pools.clone()).expect("status.pools")
}

#[tokio::test]
async fn the_live_max_connections_less_the_reserved_caps_the_pool() {
    let world = world_with_secret(with_live_postgres(None, json!({})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    let pools = pools_status(&p);
    let server = &pools.servers["postgres"];
    assert_eq!((server.max_connections, server.reserved_connections), (Some(37), Some(3)), "{server:?}");
    assert!(server.connections_in_use.unwrap_or(0) >= 1 && server.error.is_none(), "{server:?}");
    // 37 - 3 reserved = 34, less 10 % = 30, over 2 pods = 15 per pod.
    let size = &pools.sizes["postgres"];
    assert_eq!((size.min, size.max, size.reason.as_str()), (2, 15, "ServerCap"));
    let limit = size.limit.as_deref().unwrap_or_default();
    assert!(limit.starts_with("live PostgreSQL max_connections 37 minus 3 reserved: 34"), "{limit}");
    let (status, reason, message) = World::condition(&p, "PoolsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Published"), "{message}");
    let contract = world.api::<k8s_openapi::api::core::v1::ConfigMap>().get("risk-api-perf").await.unwrap();
    assert_eq!(contract.data.unwrap()["pools.postgres.max"], "15");
    let (_, _, _, password) = postgres_server();
    assert!(!serde_json::to_string(&p.status).unwrap().contains(&password), "no credentials in status");
}

#[tokio::test]
async fn a_declared_limit_above_the_live_one_warns_with_both_numbers_and_one_below_is_used() {
    let world = world_with_secret(with_live_postgres(None, json!({"serverMaxConnections": 200})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    // The declared 200 is used (200 less 10 % over 2 pods = 90, above max 40) and checked against the live 34.
    let size = &pools_status(&p).sizes["postgres"];
    assert_eq!((size.max, size.reason.as_str()), (40, "Fixed"));
    assert!(size.limit.as_deref().unwrap_or_default().starts_with("declared serverMaxConnections 200"), "{size:?}");
    let (status, reason, message) = World::condition(&p, "PoolsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "DeclaredAboveLive"), "{message}");
    assert!(message.contains("declared serverMaxConnections 200") && message.contains("reserved: 34"), "{message}");
    let warned = world.events().into_iter().any(|(kind, reason, note)| {
        kind == "Warning" && reason == "PoolsReadyTrue" && note.contains("DeclaredAboveLive") && note.contains("34")
    });
    assert!(warned, "a Warning event: {:?}", world.events());
    assert_eq!(World::condition(&p, "Ready").0, "True", "a warning, not a failure");

    let world = world_with_secret(with_live_postgres(None, json!({"serverMaxConnections": 20})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    // 20 less 10 % = 18, over 2 pods = 9: the declared value, below the live one, sets the size.
    let size = &pools_status(&p).sizes["postgres"];
    assert_eq!((size.max, size.reason.as_str()), (9, "ServerCap"));
    assert!(size.limit.as_deref().unwrap_or_default().starts_with("declared serverMaxConnections 20:"), "{size:?}");
    assert_eq!(World::condition(&p, "PoolsReady").1, "Published");
}

#[tokio::test]
async fn a_wrong_password_is_reported_and_the_pool_never_sized_above_what_was_verified() {
    // Never read: held at min.
    let world = world_with_secret(with_live_postgres(None, json!({})), Some("wrong")).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    let pools = pools_status(&p);
    let size = &pools.sizes["postgres"];
    assert_eq!((size.min, size.max, size.reason.as_str()), (2, 2, "Unverified"));
    let error = pools.servers["postgres"].error.clone().unwrap_or_default();
    assert!(error.contains("refused the password") && !error.contains("wrong"), "{error}");
    let (status, reason, message) = World::condition(&p, "PoolsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "WrongPassword"), "{message}");
    assert!(message.contains("held at min"), "{message}");

    // Read once, then the password breaks: sized from that reading, said in status.
    let (_, _, user, real) = postgres_server();
    world.secret("pg", &[("username", &user), ("password", &real)]).await;
    world.reconcile().await.unwrap();
    assert_eq!(pools_status(&world.profile().await).sizes["postgres"].max, 15);
    world.secret("pg", &[("username", &user), ("password", "wrong")]).await;
    world.reconcile().await.unwrap();
    let p = world.profile().await;
    let pools = pools_status(&p);
    let (size, server) = (&pools.sizes["postgres"], &pools.servers["postgres"]);
    assert_eq!((size.max, size.reason.as_str()), (15, "ServerCap"));
    assert!(size.limit.as_deref().unwrap_or_default().contains("as read earlier"), "{size:?}");
    assert_eq!((server.max_connections, server.error.is_some()), (Some(37), true), "{server:?}");
    assert_eq!(World::condition(&p, "PoolsReady").1, "WrongPassword");
}

#[tokio::test]
async fn an_unreachable_server_is_sized_from_the_declared_limit_or_held_at_min() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let world = world_with_secret(with_live_postgres(Some(free), json!({})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    assert_eq!(pools_status(&p).sizes["postgres"].max, 2);
    let (status, reason, message) = World::condition(&p, "PoolsReady");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{free}/postgres is unreachable")), "{message}");

    let world = world_with_secret(with_live_postgres(Some(free), json!({"serverMaxConnections": 100})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    // 100 less 10 % over 2 pods = 45, above max 40: the declared limit is what is known.
    assert_eq!(pools_status(&p).sizes["postgres"].max, 40);
    let message = World::condition(&p, "PoolsReady").2;
    assert!(message.contains("sized from declared serverMaxConnections 100"), "{message}");

    // No Secret at all: said as such.
    let world = World::with(with_live_postgres(None, json!({})), None).await;
    world.reconcile_settled().await.unwrap();
    assert_eq!(World::condition(&world.profile().await, "PoolsReady").1, "CredentialsUnavailable");
}

/// The chdb engine of tests/run.sh (CLICKHOUSE_URL) reports `system.server_settings`: max_connections 4096 and
/// max_concurrent_queries 0 (no limit), so max_connections caps the ClickHouse pool.
#[tokio::test]
async fn the_clickhouse_pool_is_capped_by_the_engines_own_limits() {
    let url = std::env::var("CLICKHOUSE_URL")
        .unwrap_or_else(|_| panic!("CLICKHOUSE_URL not set: run tests/run.sh, which starts the ClickHouse engine"));
    let profile = |endpoint: &str, pool: serde_json::Value| {
        let mut p = Profile::test();
        p.spec.clickhouse = Some(serde_json::from_value(json!({"endpoint": endpoint, "tables": []})).unwrap());
        p.spec.pools = Some(serde_json::from_value(json!({"appReplicas": 4, "clickhouse": pool})).unwrap());
        p
    };
    let world = World::with(profile(&url, json!({"min": 1, "max": 5000})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    let pools = pools_status(&p);
    let server = &pools.servers["clickhouse"];
    assert_eq!((server.max_connections, server.max_concurrent_queries), (Some(4096), Some(0)), "{server:?}");
    // 4096 less 10 % = 3686, over 4 pods = 921.
    let size = &pools.sizes["clickhouse"];
    assert_eq!((size.max, size.reason.as_str()), (921, "ServerCap"));
    assert!(size.limit.as_deref().unwrap_or_default().starts_with("ClickHouse max_connections 4096:"), "{size:?}");
    assert_eq!(World::condition(&p, "PoolsReady").1, "Published");

    let world = World::with(profile(&url, json!({"min": 1, "max": 5000, "serverMaxConnections": 10000})), None).await;
    world.reconcile_settled().await.unwrap();
    let message = World::condition(&world.profile().await, "PoolsReady").2;
    assert!(message.contains("10000") && message.contains("ClickHouse max_connections 4096: 4096"), "{message}");

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let world = World::with(profile(&format!("http://127.0.0.1:{free}"), json!({"min": 3, "max": 50})), None).await;
    world.reconcile_settled().await.unwrap();
    let p = world.profile().await;
    assert_eq!(pools_status(&p).sizes["clickhouse"].max, 3, "held at min");
    assert_eq!(World::condition(&p, "PoolsReady").1, "Unreachable");
}
