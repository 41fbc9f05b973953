//! `plan` and a reconcile run the same decision: given the observations a reconcile recorded, `plan` publishes
//! the same app contract, for every profile of every example (policies included).

mod fixtures;

use fixtures::{NS, World};
use k8s_openapi::api::core::v1::ConfigMap;
use perf_operator::plan::observations::{ClickHouseObservation, PostgresObservation, RedisInterval};
use perf_operator::plan::{self, Observations};
use perf_operator_api::{PerformanceProfile, ServerLimits};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .unwrap_or_else(|_| panic!("REDIS_URL not set: run the suite with tests/run.sh, which starts redis-server"))
}

fn examples() -> Vec<(PathBuf, PerformanceProfile)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            for p in plan::load_valid_profiles(&path).unwrap() {
                out.push((path.clone(), p));
            }
        }
    }
    assert!(out.len() >= 2, "examples found: {}", out.len());
    out
}

/// The example as the fake API server holds it. The suite's Redis stands in for the example's (a provisioned Redis
/// is not reachable from a test), and no Prometheus is named for traffic.
fn as_stored(mut p: PerformanceProfile) -> PerformanceProfile {
    p.metadata.name = Some("risk-api".into());
    p.metadata.namespace = Some(NS.into());
    p.metadata.uid = Some("0b7c5d0e-0000-4000-8000-000000000001".into());
    p.metadata.generation = Some(1);
    p.spec.target_ref.name = "risk-api".into();
    if let Some(cache) = p.spec.cache.as_mut() {
        cache.redis = serde_json::from_value(serde_json::json!({"external": {"address": redis_url()}})).unwrap();
    }
    if let Some(rl) = p.spec.rate_limit.as_mut() {
        rl.prometheus = None;
    }
    p
}

/// What the reconcile decided on, from its status records and the Redis it read.
async fn recorded(p: &PerformanceProfile) -> Observations {
    let status = p.status.clone().unwrap_or_default();
    let max_clients =
        perf_operator::redis_stats::fetch(&perf_egress::Egress::open(), &redis_url(), None, Duration::from_secs(3))
            .await
            .map(|s| s.max_clients)
            .unwrap_or(0);
    let redis =
        status.policies.as_ref().and_then(|s| s.cache.as_ref()).and_then(|c| c.observed).map(|o| RedisInterval {
            hits: o.hits,
            misses: o.misses,
            evictions: o.evictions,
            used_memory_bytes: o.used_memory_bytes,
            max_memory_bytes: o.max_memory_bytes,
            keys: o.keys,
            max_clients,
        });
    let servers = status.pools.map(|p| p.servers).unwrap_or_default();
    Observations {
        replicas: None,
        hpa_max_replicas: None,
        redis: redis.or(Some(RedisInterval { max_clients, ..RedisInterval::default() })),
        traffic: Some(BTreeMap::new()),
        postgres: servers.get("postgres").map(postgres),
        clickhouse: servers.get("clickhouse").map(clickhouse),
    }
}

/// A server's limits as the reconcile recorded them: the numbers it read, or the failure it met (the examples
/// name servers a test cannot reach, and a reconcile that never read them has no earlier numbers either).
fn postgres(s: &ServerLimits) -> PostgresObservation {
    PostgresObservation {
        max_connections: s.max_connections.unwrap_or_default(),
        superuser_reserved_connections: s.reserved_connections.unwrap_or_default(),
        reserved_connections: None,
        connections_in_use: s.connections_in_use.unwrap_or_default(),
        unreachable: s.error.clone(),
    }
}

fn clickhouse(s: &ServerLimits) -> ClickHouseObservation {
    ClickHouseObservation {
        max_connections: s.max_connections,
        max_concurrent_queries: s.max_concurrent_queries,
        unreachable: s.error.clone(),
    }
}

#[tokio::test]
async fn plan_publishes_what_a_reconcile_publishes_on_every_example() {
    let mut with_policies = 0;
    for (path, example) in examples() {
        let stored = as_stored(example);
        with_policies += usize::from(
            stored.spec.cache.as_ref().is_some_and(|c| c.policy.is_some())
                || stored.spec.rate_limit.as_ref().is_some_and(|r| r.policy.is_some()),
        );
        let world = World::with(stored.clone(), None).await;
        world.reconcile_settled().await.unwrap();
        let reconciled = world.profile().await;
        let published = world.api::<ConfigMap>().get("risk-api-perf").await.unwrap().data.unwrap_or_default();

        let planned = plan::plan_profile(&stored, &recorded(&reconciled).await);
        assert_eq!(
            planned.app_config.data,
            published,
            "{}: plan and reconcile publish different contracts",
            path.display()
        );
        assert_eq!(
            Some(planned.app_config.checksum.as_str()),
            reconciled.status.as_ref().and_then(|s| s.app_config.as_ref()).map(|a| a.checksum.as_str()),
            "{}",
            path.display()
        );
    }
    assert!(with_policies >= 1, "an example sets policies");
}
