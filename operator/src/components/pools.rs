//! Pools component: connection pool sizes per app pod, from declared bounds or load, capped by the servers' share
//! ([`Cap`], decided from declared and live limits by [`super::pool_limits`]).

use perf_operator_api::{PoolSize, PoolSpec, PoolsSpec, ServerLimits};
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
    /// What the servers allow, as read (or, in `plan`, as observed), by pool.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, ServerLimits>,
    /// Pools whose need the server's share cannot meet, said with needed vs allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undersized: Vec<String>,
    /// Declared limits above what the server allows, with both numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Servers that could not be read this round, and what their pool was sized from instead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
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

/// What a server allows the app's pods in all, before `reservedPercent`, or why that is not known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cap {
    /// No server limit is named or known: the declared bounds alone.
    #[default]
    None,
    /// `connections` in all; `source` says where the number comes from, e.g. `declared serverMaxConnections 200`.
    Limit { connections: u64, source: String },
    /// A named server could not be read and nothing else says what it allows: the pool is held at its minimum,
    /// never above a share nobody verified.
    Unverified,
}

/// The cap of each pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub clickhouse: Cap,
    pub postgres: Cap,
    pub redis: Cap,
}

/// Plans every declared pool under its cap. `replicas`: the app pods (declared or counted), 1 when unknown.
pub fn plan(spec: &PoolsSpec, caps: &Caps, replicas: Option<u32>, growth: Growth) -> PoolsPlan {
    let app_replicas = spec.app_replicas.or(replicas).unwrap_or(1).max(1);
    let worst_case_pods = growth.worst_case(app_replicas);
    let mut sizes = BTreeMap::new();
    let mut undersized = Vec::new();
    let postgres = spec.postgres.as_ref().map(|p| &p.pool);
    for (name, pool, cap) in [
        ("clickhouse", spec.clickhouse.as_ref(), &caps.clickhouse),
        ("postgres", postgres, &caps.postgres),
        ("redis", spec.redis.as_ref(), &caps.redis),
    ] {
        if let Some(pool) = pool {
            let sized = size(pool, app_replicas, worst_case_pods, cap);
            undersized.extend(sized.short.map(|s| format!("{name}: {s}")));
            sizes.insert(name.to_string(), sized.size);
        }
    }
    PoolsPlan {
        app_replicas,
        worst_case_pods,
        sizes,
        servers: BTreeMap::new(),
        undersized,
        warnings: Vec::new(),
        unread: Vec::new(),
    }
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
pub fn size(pool: &PoolSpec, replicas: u32, worst_case_pods: u32, cap: &Cap) -> Sized {
    let (mut max, mut reason, need) = match &pool.load {
        Some(load) => {
            let needed =
                needed_per_pod(load.queries_per_second, load.query_latency_ms, load.headroom_percent, replicas);
            (needed.clamp(pool.min.max(1), pool.max), "Load", needed.max(pool.min))
        }
        None => (pool.max, "Fixed", pool.min),
    };
    let mut short = None;
    let mut limit = None;
    match cap {
        Cap::None => {}
        Cap::Unverified => {
            max = max.min(pool.min.max(1));
            reason = "Unverified";
            limit = Some("unknown: the server could not be read and nothing declares its limit; held at min".into());
        }
        Cap::Limit { connections, source } => {
            let reserved = pool.reserved_percent.min(100);
            let usable = connections * u64::from(100 - reserved) / 100;
            let pods = worst_case_pods.max(1);
            let share = u32::try_from(usable / u64::from(pods)).unwrap_or(u32::MAX).max(1);
            if max > share {
                max = share;
                reason = "ServerCap";
            }
            // The server is short only when it binds below the declared max (a need above `max` is the spec's limit).
            if need.min(pool.max) > share {
                short = Some(format!(
                    "needs {need} connection(s) per pod, the server allows {share} ({source}: {connections} less \
                     {reserved} % reserved, over up to {pods} pod(s))"
                ));
            }
            limit = Some(format!(
                "{source}: {connections}, less {reserved} % = {usable}, over {pods} pod(s) = {share} per pod"
            ));
        }
    }
    Sized { size: PoolSize { min: pool.min.min(max), max, reason: reason.to_string(), limit }, short }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_operator_api::PoolLoad;

    fn pool(min: u32, max: u32) -> PoolSpec {
        PoolSpec { min, max, reserved_percent: 10, ..PoolSpec::default() }
    }

    fn limit(connections: u64) -> Cap {
        Cap::Limit { connections, source: "declared serverMaxConnections".into() }
    }

    fn sized(min: u32, max: u32, reason: &str) -> PoolSize {
        PoolSize { min, max, reason: reason.into(), limit: None }
    }

    #[test]
    fn fixed_bounds_are_published_as_declared() {
        assert_eq!(size(&pool(5, 20), 1, 1, &Cap::None).size, sized(5, 20, "Fixed"));
    }

    #[test]
    fn load_is_carried_by_littles_law_with_headroom() {
        // 400 q/s x 25 ms = 10 in flight, +20 % = 12, over 2 pods = 6 per pod.
        let mut p = pool(2, 50);
        p.load = Some(PoolLoad { queries_per_second: 400.0, query_latency_ms: 25.0, headroom_percent: 20 });
        assert_eq!(size(&p, 2, 2, &Cap::None).size, sized(2, 6, "Load"));
    }

    #[test]
    fn load_never_goes_outside_bounds() {
        let mut p = pool(5, 20);
        p.load = Some(PoolLoad { queries_per_second: 1.0, query_latency_ms: 1.0, headroom_percent: 0 });
        assert_eq!(size(&p, 1, 1, &Cap::None).size.max, 5);
        p.load = Some(PoolLoad { queries_per_second: 1e9, query_latency_ms: 1e3, headroom_percent: 0 });
        assert_eq!(size(&p, 1, 1, &Cap::None).size.max, 20);
    }

    #[test]
    fn server_limit_is_shared_by_all_pods_minus_the_reserve_and_says_so() {
        // PostgreSQL max_connections 100, 10 % reserved, 8 pods: 90 / 8 = 11 per pod.
        let s = size(&pool(5, 20), 8, 8, &limit(100)).size;
        assert_eq!((s.min, s.max, s.reason.as_str()), (5, 11, "ServerCap"));
        assert_eq!(
            s.limit.as_deref(),
            Some("declared serverMaxConnections: 100, less 10 % = 90, over 8 pod(s) = 11 per pod")
        );
        // min follows a cap below it, so min <= max always holds.
        let s = size(&pool(5, 20), 40, 40, &limit(100)).size;
        assert_eq!((s.min, s.max, s.reason.as_str()), (2, 2, "ServerCap"));
        // A limit that does not bind is still said.
        let s = size(&pool(5, 20), 1, 1, &limit(100)).size;
        assert_eq!((s.max, s.reason.as_str(), s.limit.is_some()), (20, "Fixed", true));
    }

    #[test]
    fn an_unverified_server_holds_the_pool_at_its_minimum() {
        let mut p = pool(5, 20);
        p.load = Some(PoolLoad { queries_per_second: 1000.0, query_latency_ms: 50.0, headroom_percent: 0 });
        let s = size(&p, 1, 1, &Cap::Unverified);
        assert_eq!((s.size.min, s.size.max, s.size.reason.as_str()), (5, 5, "Unverified"));
        assert_eq!(s.short, None, "the failed read is the report, not a shortfall nobody measured");
        // min 0 still leaves the app one connection.
        assert_eq!(size(&pool(0, 20), 1, 1, &Cap::Unverified).size.max, 1);
    }

    #[test]
    fn the_server_share_is_split_over_the_worst_case_of_pods_and_a_shortfall_is_said() {
        // PostgreSQL 200, 10 % reserved = 180; 4 pods now, an HPA up to 6, canaries: up to 12 pods, 15 each.
        let mut p = pool(5, 20);
        let growth = Growth { hpa_max: Some(6), canary: true };
        assert_eq!(growth.worst_case(4), 12);
        let spec = PoolsSpec {
            postgres: Some(perf_operator_api::PostgresPoolSpec { pool: p.clone(), server: None }),
            app_replicas: Some(4),
            ..PoolsSpec::default()
        };
        let caps = Caps { postgres: limit(200), ..Caps::default() };
        let planned = plan(&spec, &caps, None, growth);
        let s = &planned.sizes["postgres"];
        assert_eq!((s.min, s.max, s.reason.as_str()), (5, 15, "ServerCap"));
        assert!(planned.undersized.is_empty());
        // A load needing 50 per pod cannot fit: published at the share, reported with needed vs allowed.
        p.load = Some(PoolLoad { queries_per_second: 4000.0, query_latency_ms: 50.0, headroom_percent: 0 });
        p.max = 100;
        let sized = size(&p, 4, 12, &limit(200));
        assert_eq!(sized.size.max, 15);
        let short = sized.short.unwrap();
        assert!(short.contains("needs 50") && short.contains("allows 15") && short.contains("12 pod"), "{short}");
        // Declared max 10 binds before the server's 15: not the server's shortfall.
        p.max = 10;
        assert_eq!(size(&p, 4, 12, &limit(200)).short, None);
    }

    #[test]
    fn sizes_never_exceed_the_share_and_grow_with_load_and_latency_for_every_pod_count() {
        let mut p = pool(1, 1000);
        for replicas in 1..=20u32 {
            for canary in [false, true] {
                let worst = Growth { hpa_max: Some(replicas + 3), canary }.worst_case(replicas);
                let mut last = 0;
                for qps in [1.0, 10.0, 100.0, 1000.0, 10000.0] {
                    p.load = Some(PoolLoad { queries_per_second: qps, query_latency_ms: 20.0, headroom_percent: 20 });
                    let s = size(&p, replicas, worst, &limit(500)).size;
                    assert!(
                        u64::from(s.max) * u64::from(worst) <= 450 || s.max == 1,
                        "{replicas} {canary} {qps}: {s:?}"
                    );
                    assert!(s.min <= s.max && s.max >= last, "{replicas} {canary} {qps}: {s:?}");
                    last = s.max;
                }
                // And with the time a query holds a connection.
                let mut last = 0;
                for latency in [0.5, 5.0, 50.0, 500.0, 5000.0] {
                    p.load =
                        Some(PoolLoad { queries_per_second: 100.0, query_latency_ms: latency, headroom_percent: 20 });
                    let s = size(&p, replicas, worst, &limit(500)).size;
                    assert!(u64::from(s.max) * u64::from(worst) <= 450 || s.max == 1, "{replicas} {latency}: {s:?}");
                    assert!(s.min <= s.max && s.max >= last, "{replicas} {canary} {latency} ms: {s:?}");
                    last = s.max;
                }
            }
        }
    }
}
