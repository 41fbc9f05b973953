//! Pools component: connection pool sizes per app pod, from declared bounds or load, capped by the servers.

use perf_operator_api::{CacheSpec, PoolSize, PoolSpec, PoolsSpec};
use serde::Serialize;
use std::collections::BTreeMap;

/// Sizes to publish, per pool name (`clickhouse`, `postgres`, `redis`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolsPlan {
    /// App pods the sizes were computed for.
    pub app_replicas: u32,
    pub sizes: BTreeMap<String, PoolSize>,
}

/// Plans every declared pool. Redis pools are capped by the Redis `maxclients` unless the pool names its own cap:
/// the one the operator configures, or for an external Redis the declared one, else the one the server reported.
/// `replicas`: the app pods (declared or counted), 1 when unknown; `reported`: the `maxclients` the Redis reported.
pub fn plan(spec: &PoolsSpec, cache: Option<&CacheSpec>, replicas: Option<u32>, reported: Option<u32>) -> PoolsPlan {
    let app_replicas = spec.app_replicas.or(replicas).unwrap_or(1).max(1);
    let redis_cap = cache.and_then(|c| match (&c.redis.provision, &c.redis.external) {
        (Some(p), _) => Some(p.max_clients),
        (None, Some(e)) => e.max_clients.or(reported),
        (None, None) => None,
    });
    let mut sizes = BTreeMap::new();
    for (name, pool, fallback_cap) in
        [("clickhouse", &spec.clickhouse, None), ("postgres", &spec.postgres, None), ("redis", &spec.redis, redis_cap)]
    {
        if let Some(pool) = pool {
            sizes.insert(name.to_string(), size(pool, app_replicas, fallback_cap));
        }
    }
    PoolsPlan { app_replicas, sizes }
}

/// Connections per pod needed to carry the load (Little's law: concurrency = rate x time held), with headroom.
pub fn needed_per_pod(queries_per_second: f64, latency_ms: f64, headroom_percent: u32, replicas: u32) -> u32 {
    let concurrency = queries_per_second * latency_ms / 1000.0 * (1.0 + f64::from(headroom_percent) / 100.0);
    let per_pod = (concurrency / f64::from(replicas.max(1))).ceil();
    // Saturating: a huge declared load clamps to max anyway.
    if per_pod >= f64::from(u32::MAX) { u32::MAX } else { per_pod.max(0.0) as u32 }
}

/// Sizes one pool: bounds or load first, then the server's limit shared by all pods.
pub fn size(pool: &PoolSpec, replicas: u32, fallback_cap: Option<u32>) -> PoolSize {
    let (mut max, mut reason) = match &pool.load {
        Some(load) => {
            let needed =
                needed_per_pod(load.queries_per_second, load.query_latency_ms, load.headroom_percent, replicas);
            (needed.clamp(pool.min.max(1), pool.max), "Load")
        }
        None => (pool.max, "Fixed"),
    };
    if let Some(server_max) = pool.server_max_connections.or(fallback_cap) {
        let usable = u64::from(server_max) * u64::from(100 - pool.reserved_percent.min(100)) / 100;
        let cap = (usable / u64::from(replicas.max(1))).max(1) as u32;
        if max > cap {
            max = cap;
            reason = "ServerCap";
        }
    }
    PoolSize { min: pool.min.min(max), max, reason: reason.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_operator_api::PoolLoad;

    fn pool(min: u32, max: u32) -> PoolSpec {
        PoolSpec { min, max, reserved_percent: 10, ..PoolSpec::default() }
    }

    #[test]
    fn fixed_bounds_are_published_as_declared() {
        assert_eq!(size(&pool(5, 20), 1, None), PoolSize { min: 5, max: 20, reason: "Fixed".into() });
    }

    #[test]
    fn load_is_carried_by_littles_law_with_headroom() {
        // 400 q/s x 25 ms = 10 in flight, +20 % = 12, over 2 pods = 6 per pod.
        let mut p = pool(2, 50);
        p.load = Some(PoolLoad { queries_per_second: 400.0, query_latency_ms: 25.0, headroom_percent: 20 });
        assert_eq!(size(&p, 2, None), PoolSize { min: 2, max: 6, reason: "Load".into() });
    }

    #[test]
    fn load_never_goes_outside_bounds() {
        let mut p = pool(5, 20);
        p.load = Some(PoolLoad { queries_per_second: 1.0, query_latency_ms: 1.0, headroom_percent: 0 });
        assert_eq!(size(&p, 1, None).max, 5);
        p.load = Some(PoolLoad { queries_per_second: 1e9, query_latency_ms: 1e3, headroom_percent: 0 });
        assert_eq!(size(&p, 1, None).max, 20);
    }

    #[test]
    fn server_limit_is_shared_by_all_pods_minus_the_reserve() {
        // PostgreSQL max_connections 100, 10 % reserved, 8 pods: 90 / 8 = 11 per pod.
        let mut p = pool(5, 20);
        p.server_max_connections = Some(100);
        assert_eq!(size(&p, 8, None), PoolSize { min: 5, max: 11, reason: "ServerCap".into() });
        // min follows a cap below it, so min <= max always holds.
        assert_eq!(size(&p, 40, None), PoolSize { min: 2, max: 2, reason: "ServerCap".into() });
    }

    #[test]
    fn redis_pools_default_to_the_redis_maxclients() {
        let spec = PoolsSpec { redis: Some(pool(1, 500)), app_replicas: Some(30), ..PoolsSpec::default() };
        let cache: CacheSpec = serde_json::from_value(serde_json::json!({
            "redis": {"provision": {"maxClients": 1000}}
        }))
        .unwrap();
        let plan = plan(&spec, Some(&cache), None, None);
        assert_eq!(plan.sizes["redis"], PoolSize { min: 1, max: 30, reason: "ServerCap".into() });
    }

    #[test]
    fn external_redis_pools_take_the_declared_cap_else_the_reported_one() {
        let spec = PoolsSpec { redis: Some(pool(1, 500)), app_replicas: Some(10), ..PoolsSpec::default() };
        let external = |max_clients: Option<u32>| -> CacheSpec {
            serde_json::from_value(serde_json::json!({
                "redis": {"external": {"address": "redis://cache:6379", "maxClients": max_clients}}
            }))
            .unwrap()
        };
        // Reported 2000, 10 % reserved, 10 pods: 180 each.
        assert_eq!(plan(&spec, Some(&external(None)), None, Some(2000)).sizes["redis"].max, 180);
        // A declared cap wins over the reported one (a proxy in front of Redis may allow fewer).
        assert_eq!(plan(&spec, Some(&external(Some(100))), None, Some(2000)).sizes["redis"].max, 9);
        // Neither known (unreachable, nothing declared): the pool's own bounds.
        assert_eq!(plan(&spec, Some(&external(None)), None, None).sizes["redis"].max, 500);
    }
}
