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
    /// Most app pods that may exist at once (HPA maximum, primary and canary during a run): a server's share is
    /// divided by this, so all pods together never open more than the server allows.
    pub worst_case_pods: u32,
    pub sizes: BTreeMap<String, PoolSize>,
    /// Pools whose need the server's share cannot meet, said with needed vs allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undersized: Vec<String>,
}

/// What may add pods beyond the serving ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// `maxReplicas` of an HPA aimed at the target.
    pub hpa_max: Option<u32>,
    /// The profile runs canaries: primary and canary pods exist together, up to twice the primary's.
    pub canary: bool,
}

impl Growth {
    /// The worst case of pods for `replicas` serving now.
    pub fn worst_case(&self, replicas: u32) -> u32 {
        let most = replicas.max(self.hpa_max.unwrap_or(0)).max(1);
        if self.canary { most.saturating_mul(2) } else { most }
    }
}

/// Plans every declared pool. Redis pools are capped by the Redis `maxclients` unless the pool names its own cap:
/// the one the operator configures, or for an external Redis the declared one, else the one the server reported.
/// `replicas`: the app pods (declared or counted), 1 when unknown; `reported`: the `maxclients` the Redis reported.
pub fn plan(
    spec: &PoolsSpec,
    cache: Option<&CacheSpec>,
    replicas: Option<u32>,
    reported: Option<u32>,
    growth: Growth,
) -> PoolsPlan {
    let app_replicas = spec.app_replicas.or(replicas).unwrap_or(1).max(1);
    let worst_case_pods = growth.worst_case(app_replicas);
    let redis_cap = cache.and_then(|c| match (&c.redis.provision, &c.redis.external) {
        (Some(p), _) => Some(p.max_clients),
        (None, Some(e)) => e.max_clients.or(reported),
        (None, None) => None,
    });
    let mut sizes = BTreeMap::new();
    let mut undersized = Vec::new();
    for (name, pool, fallback_cap) in
        [("clickhouse", &spec.clickhouse, None), ("postgres", &spec.postgres, None), ("redis", &spec.redis, redis_cap)]
    {
        if let Some(pool) = pool {
            let sized = size(pool, app_replicas, worst_case_pods, fallback_cap);
            undersized.extend(sized.short.map(|s| format!("{name}: {s}")));
            sizes.insert(name.to_string(), sized.size);
        }
    }
    PoolsPlan { app_replicas, worst_case_pods, sizes, undersized }
}

/// Connections per pod needed to carry the load (Little's law: concurrency = rate x time held), with headroom.
pub fn needed_per_pod(queries_per_second: f64, latency_ms: f64, headroom_percent: u32, replicas: u32) -> u32 {
    let concurrency = queries_per_second * latency_ms / 1000.0 * (1.0 + f64::from(headroom_percent) / 100.0);
    let per_pod = (concurrency / f64::from(replicas.max(1))).ceil();
    // Saturating: a huge declared load clamps to max anyway.
    if per_pod >= f64::from(u32::MAX) { u32::MAX } else { per_pod.max(0.0) as u32 }
}

/// One pool's size, and what the server's share falls short of, if it does.
#[derive(Clone, Debug, PartialEq)]
pub struct Sized {
    pub size: PoolSize,
    pub short: Option<String>,
}

/// Sizes one pool: bounds or load over the serving pods first, then the server's limit shared by the worst case
/// of pods. The published size never exceeds that share; a need above it (the load's, or the declared minimum)
/// is reported.
pub fn size(pool: &PoolSpec, replicas: u32, worst_case_pods: u32, fallback_cap: Option<u32>) -> Sized {
    let (mut max, mut reason, need) = match &pool.load {
        Some(load) => {
            let needed =
                needed_per_pod(load.queries_per_second, load.query_latency_ms, load.headroom_percent, replicas);
            (needed.clamp(pool.min.max(1), pool.max), "Load", needed.max(pool.min))
        }
        None => (pool.max, "Fixed", pool.min),
    };
    let mut short = None;
    if let Some(server_max) = pool.server_max_connections.or(fallback_cap) {
        let reserved = pool.reserved_percent.min(100);
        let usable = u64::from(server_max) * u64::from(100 - reserved) / 100;
        let pods = worst_case_pods.max(1);
        let cap = (usable / u64::from(pods)).max(1) as u32;
        if max > cap {
            max = cap;
            reason = "ServerCap";
        }
        // The server is short only when it binds below the declared max (a need above `max` is the spec's limit).
        if need.min(pool.max) > cap {
            short = Some(format!(
                "needs {need} connection(s) per pod, the server allows {cap} ({server_max} less {reserved} % \
                 reserved, over up to {pods} pod(s))"
            ));
        }
    }
    Sized { size: PoolSize { min: pool.min.min(max), max, reason: reason.to_string() }, short }
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
        assert_eq!(size(&pool(5, 20), 1, 1, None).size, PoolSize { min: 5, max: 20, reason: "Fixed".into() });
    }

    #[test]
    fn load_is_carried_by_littles_law_with_headroom() {
        // 400 q/s x 25 ms = 10 in flight, +20 % = 12, over 2 pods = 6 per pod.
        let mut p = pool(2, 50);
        p.load = Some(PoolLoad { queries_per_second: 400.0, query_latency_ms: 25.0, headroom_percent: 20 });
        assert_eq!(size(&p, 2, 2, None).size, PoolSize { min: 2, max: 6, reason: "Load".into() });
    }

    #[test]
    fn load_never_goes_outside_bounds() {
        let mut p = pool(5, 20);
        p.load = Some(PoolLoad { queries_per_second: 1.0, query_latency_ms: 1.0, headroom_percent: 0 });
        assert_eq!(size(&p, 1, 1, None).size.max, 5);
        p.load = Some(PoolLoad { queries_per_second: 1e9, query_latency_ms: 1e3, headroom_percent: 0 });
        assert_eq!(size(&p, 1, 1, None).size.max, 20);
    }

    #[test]
    fn server_limit_is_shared_by_all_pods_minus_the_reserve() {
        // PostgreSQL max_connections 100, 10 % reserved, 8 pods: 90 / 8 = 11 per pod.
        let mut p = pool(5, 20);
        p.server_max_connections = Some(100);
        assert_eq!(size(&p, 8, 8, None).size, PoolSize { min: 5, max: 11, reason: "ServerCap".into() });
        // min follows a cap below it, so min <= max always holds.
        assert_eq!(size(&p, 40, 40, None).size, PoolSize { min: 2, max: 2, reason: "ServerCap".into() });
    }

    #[test]
    fn redis_pools_default_to_the_redis_maxclients() {
        let spec = PoolsSpec { redis: Some(pool(1, 500)), app_replicas: Some(30), ..PoolsSpec::default() };
        let cache: CacheSpec = serde_json::from_value(serde_json::json!({
            "redis": {"provision": {"maxClients": 1000}}
        }))
        .unwrap();
        let plan = plan(&spec, Some(&cache), None, None, Growth::default());
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
        assert_eq!(plan(&spec, Some(&external(None)), None, Some(2000), Growth::default()).sizes["redis"].max, 180);
        // A declared cap wins over the reported one (a proxy in front of Redis may allow fewer).
        assert_eq!(plan(&spec, Some(&external(Some(100))), None, Some(2000), Growth::default()).sizes["redis"].max, 9);
        // Neither known (unreachable, nothing declared): the pool's own bounds.
        assert_eq!(plan(&spec, Some(&external(None)), None, None, Growth::default()).sizes["redis"].max, 500);
    }

    #[test]
    fn the_server_share_is_split_over_the_worst_case_of_pods_and_a_shortfall_is_said() {
        // PostgreSQL 200, 10 % reserved = 180; 4 pods now, an HPA up to 6, canaries: up to 12 pods, 15 each.
        let mut p = pool(5, 20);
        p.server_max_connections = Some(200);
        let growth = Growth { hpa_max: Some(6), canary: true };
        assert_eq!(growth.worst_case(4), 12);
        let spec = PoolsSpec { postgres: Some(p.clone()), app_replicas: Some(4), ..PoolsSpec::default() };
        let planned = plan(&spec, None, None, None, growth);
        assert_eq!(planned.sizes["postgres"], PoolSize { min: 5, max: 15, reason: "ServerCap".into() });
        assert!(planned.undersized.is_empty());
        // A load needing 50 per pod cannot fit: published at the share, reported with needed vs allowed.
        p.load = Some(PoolLoad { queries_per_second: 4000.0, query_latency_ms: 50.0, headroom_percent: 0 });
        p.max = 100;
        let sized = size(&p, 4, 12, None);
        assert_eq!(sized.size.max, 15);
        let short = sized.short.unwrap();
        assert!(short.contains("needs 50") && short.contains("allows 15") && short.contains("12 pod"), "{short}");
        // Declared max 10 binds before the server's 15: not the server's shortfall.
        p.max = 10;
        assert_eq!(size(&p, 4, 12, None).short, None);
    }

    #[test]
    fn sizes_never_exceed_the_share_and_grow_with_load_for_every_pod_count() {
        let mut p = pool(1, 1000);
        p.server_max_connections = Some(500);
        for replicas in 1..=20u32 {
            for canary in [false, true] {
                let worst = Growth { hpa_max: Some(replicas + 3), canary }.worst_case(replicas);
                let mut last = 0;
                for qps in [1.0, 10.0, 100.0, 1000.0, 10000.0] {
                    p.load = Some(PoolLoad { queries_per_second: qps, query_latency_ms: 20.0, headroom_percent: 20 });
                    let s = size(&p, replicas, worst, None).size;
                    assert!(
                        u64::from(s.max) * u64::from(worst) <= 450 || s.max == 1,
                        "{replicas} {canary} {qps}: {s:?}"
                    );
                    assert!(s.min <= s.max && s.max >= last, "{replicas} {canary} {qps}: {s:?}");
                    last = s.max;
                }
            }
        }
    }
}
