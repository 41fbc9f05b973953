//! What `plan` decides on instead of live servers: a file (`--observations`) or example values. Built-in policies
//! are loaded and evaluated for real; components from a ConfigMap or a URL are loaded only by the running operator.

use crate::decide::{Observed, ProvisionedRedis, Read, Unread};
use crate::postgres::PostgresLimits;
use crate::redis_stats::RedisStats;
use perf_clickhouse::limits::ServerLimits as ClickHouseLimits;
use perf_operator_api::{CachePolicyStatus, PerformanceProfile, PerformanceProfileStatus, PoliciesStatus, PolicyRef};
use perf_operator_api::{RedisCounters, RouteObservation};
use perf_policy_host::{HostConfig, Policy, PolicyHost, RouteTraffic, World};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Password shown for a Redis the operator would provision (it draws a random one).
pub const PLAN_PASSWORD: &str = "<generated-at-apply>";

/// Observations for a plan. Every field is optional; an absent one takes the example value.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observations {
    /// Pods serving the app (default: `pools.appReplicas`, else 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `maxReplicas` of an HPA aimed at the target (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_max_replicas: Option<u32>,
    /// Redis over one policy interval: counters of the interval, gauges now (default: 70 % hits, 40 % memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisInterval>,
    /// Traffic per route (default: each route at 60 % of its spec rate, well within the SLO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<BTreeMap<String, RouteObservation>>,
    /// The PostgreSQL that `pools.postgres.server` names (default: a stock server, `max_connections` 100 with 3
    /// reserved for superusers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresObservation>,
    /// The profile's ClickHouse, for its pool (default: ClickHouse's built-in `max_connections` 4096 and
    /// `max_concurrent_queries` 0, no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickHouseObservation>,
}

/// A PostgreSQL's limits, or why it could not be read.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresObservation {
    #[serde(default = "default_pg_max")]
    pub max_connections: u64,
    #[serde(default = "default_pg_superuser_reserved")]
    pub superuser_reserved_connections: u64,
    /// PostgreSQL 16 and later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_connections: Option<u64>,
    #[serde(default)]
    pub connections_in_use: u64,
    /// The read failed with this message (the numbers are then ignored): `plan` sizes as a reconcile would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
}

fn default_pg_max() -> u64 {
    100
}
fn default_pg_superuser_reserved() -> u64 {
    3
}

impl Default for PostgresObservation {
    fn default() -> Self {
        Self {
            max_connections: default_pg_max(),
            superuser_reserved_connections: default_pg_superuser_reserved(),
            reserved_connections: None,
            connections_in_use: 0,
            unreachable: None,
        }
    }
}

/// A ClickHouse's limits (absent: the server does not say), or why it could not be read.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClickHouseObservation {
    #[serde(default = "default_ch_max_connections")]
    pub max_connections: Option<u64>,
    #[serde(default = "default_ch_max_concurrent_queries")]
    pub max_concurrent_queries: Option<u64>,
    /// The read failed with this message (the numbers are then ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<String>,
}

fn default_ch_max_connections() -> Option<u64> {
    Some(4096)
}
fn default_ch_max_concurrent_queries() -> Option<u64> {
    Some(0)
}

impl Default for ClickHouseObservation {
    fn default() -> Self {
        Self {
            max_connections: default_ch_max_connections(),
            max_concurrent_queries: default_ch_max_concurrent_queries(),
            unreachable: None,
        }
    }
}

impl PostgresObservation {
    fn read(&self) -> Read<PostgresLimits> {
        if let Some(message) = &self.unreachable {
            return Err(Unread::Given { what: "PostgreSQL", message: message.clone() });
        }
        Ok(PostgresLimits {
            max_connections: self.max_connections,
            superuser_reserved_connections: self.superuser_reserved_connections,
            reserved_connections: self.reserved_connections,
            connections_in_use: self.connections_in_use,
        })
    }
}

impl ClickHouseObservation {
    fn read(&self) -> Read<ClickHouseLimits> {
        if let Some(message) = &self.unreachable {
            return Err(Unread::Given { what: "ClickHouse", message: message.clone() });
        }
        let missing = (self.max_connections.is_none() || self.max_concurrent_queries.is_none())
            .then(|| "limits unknown: not in the observations".to_string());
        Ok(ClickHouseLimits {
            max_connections: self.max_connections,
            max_concurrent_queries: self.max_concurrent_queries,
            missing,
        })
    }
}

/// Redis as a cache policy sees it over one interval.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisInterval {
    pub hits: u64,
    pub misses: u64,
    #[serde(default)]
    pub evictions: u64,
    pub used_memory_bytes: u64,
    /// 0 means unlimited.
    #[serde(default)]
    pub max_memory_bytes: u64,
    #[serde(default)]
    pub keys: u64,
    #[serde(default)]
    pub max_clients: u64,
}

impl Default for RedisInterval {
    fn default() -> Self {
        Self {
            hits: 7_000,
            misses: 3_000,
            evictions: 0,
            used_memory_bytes: 100 << 20,
            max_memory_bytes: 256 << 20,
            keys: 20_000,
            max_clients: 10_000,
        }
    }
}

fn host() -> Result<&'static PolicyHost, String> {
    static HOST: OnceLock<Result<PolicyHost, String>> = OnceLock::new();
    HOST.get_or_init(|| PolicyHost::new(HostConfig::default()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads a built-in policy; a candidate as a tenant of its own, so it never shares an instance with the active one.
fn load(world: World, r: &PolicyRef, candidate: bool) -> Read<Arc<Policy>> {
    let Some(name) = &r.builtin else {
        return Err(Unread::NotObserved(
            "a component from a ConfigMap, a URL or a registry is loaded by the running operator",
        ));
    };
    let host = host().map_err(|_| Unread::NotObserved("the WASM engine could not start"))?;
    let loaded = match candidate {
        false => host.load_builtin(world, name),
        true => host.load_for(PLAN_CANDIDATE_TENANT, world, perf_policy_host::Source::Builtin(name)),
    };
    loaded.map_err(|e| Unread::Policy(crate::decide::PolicyUnavailable::Host(e)))
}

/// The tenant `plan` loads candidates for.
const PLAN_CANDIDATE_TENANT: &str = "plan#candidate";

impl Observations {
    /// Reads a YAML or JSON file.
    pub fn read(path: &std::path::Path) -> crate::Result<Self> {
        let text = crate::manifest::read_capped(path)?;
        serde_saphyr::from_str(&text)
            .map_err(|e| crate::Error::Manifest { path: path.display().to_string(), message: e.to_string() })
    }

    fn redis(&self) -> RedisInterval {
        self.redis.unwrap_or_default()
    }

    fn traffic(&self, profile: &PerformanceProfile) -> BTreeMap<String, RouteObservation> {
        if let Some(t) = &self.traffic {
            return t.clone();
        }
        let Some(rl) = &profile.spec.rate_limit else { return BTreeMap::new() };
        let slo = &profile.spec.slo;
        let example = |rps: u32| RouteObservation {
            requests_per_second: f64::from(rps) * 0.6,
            p99_latency_ms: f64::from(slo.p99_latency_ms) * 0.5,
            error_percent: slo.error_rate_percent * 0.1,
            rejected_per_second: 0.0,
        };
        rl.routes.iter().map(|r| (r.route.clone(), example(r.requests_per_second))).collect()
    }

    /// The observations a policy of `profile` decides on, as the plan shows them.
    pub fn policy_inputs(&self, profile: &PerformanceProfile) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        if profile.spec.cache.as_ref().is_some_and(|c| c.policy.is_some()) {
            out.insert("redis".into(), serde_json::json!(self.redis()));
        }
        if profile.spec.rate_limit.as_ref().is_some_and(|r| r.policy.is_some()) {
            out.insert("traffic".into(), serde_json::json!(self.traffic(profile)));
        }
        serde_json::Value::Object(out)
    }

    /// A previous round whose Redis counters were zero, so the decision is given the file's interval counters.
    pub fn previous_status(&self) -> PerformanceProfileStatus {
        let cache = CachePolicyStatus { counters: Some(RedisCounters::default()), ..Default::default() };
        let policies = PoliciesStatus { cache: Some(cache), rate_limit: None };
        PerformanceProfileStatus { policies: Some(policies), ..Default::default() }
    }

    /// Says, in the plan's `pools.servers`, which servers' limits are example values rather than observations.
    pub fn mark_examples(&self, pools: &mut crate::components::pools::PoolsPlan) {
        let example = "example values of a stock server (plan reads no server; --observations sets them)";
        for (pool, given) in [("postgres", self.postgres.is_some()), ("clickhouse", self.clickhouse.is_some())] {
            if let (Some(server), false) = (pools.servers.get_mut(pool), given) {
                server.message = Some(example.to_string());
            }
        }
    }

    /// What the decision reads.
    pub fn observed(&self, profile: &PerformanceProfile) -> Observed {
        let spec = &profile.spec;
        let (cache, rate_limit) = (spec.cache.as_ref(), spec.rate_limit.as_ref());
        let r = self.redis();
        let redis = RedisStats {
            hits: r.hits,
            misses: r.misses,
            evicted_keys: r.evictions,
            used_memory_bytes: r.used_memory_bytes,
            max_memory_bytes: r.max_memory_bytes,
            keys: r.keys,
            max_clients: r.max_clients,
            ..RedisStats::default()
        };
        let traffic = self.traffic(profile).into_iter().map(|(route, t)| (route, traffic(t))).collect();
        let provisioned = cache.is_some_and(|c| c.redis.provision.is_some());
        Observed {
            serving: spec.pools.as_ref().map(|_| Ok(self.replicas)),
            autoscaling: spec.pools.as_ref().map(|_| Ok(self.hpa_max_replicas)),
            provisioned_redis: provisioned.then(|| {
                Ok(ProvisionedRedis {
                    password: Some(PLAN_PASSWORD.into()),
                    available: true,
                    ..ProvisionedRedis::default()
                })
            }),
            new_password: None,
            new_exporter_password: provisioned.then(|| Ok(PLAN_PASSWORD.into())),
            redis: cache.map(|_| Ok(redis)),
            cache_policy: cache.and_then(|c| c.policy.as_ref()).map(|r| load(World::Cache, r, false)),
            rate_limit_policy: rate_limit.and_then(|s| s.policy.as_ref()).map(|r| load(World::RateLimit, r, false)),
            cache_candidate: cache.and_then(|c| c.candidate.as_ref()).map(|c| load(World::Cache, &c.policy, true)),
            rate_limit_candidate: rate_limit
                .and_then(|s| s.candidate.as_ref())
                .map(|c| load(World::RateLimit, &c.policy, true)),
            traffic: spec.rate_limit.as_ref().map(|_| Ok(traffic)),
            clickhouse: spec.clickhouse.as_ref().map(|_| Err(Unread::NotObserved("plan shows the DDL separately"))),
            canary: spec.canary.as_ref().map(|_| Err(Unread::NotObserved("plan shows the canary's schedule"))),
            postgres_limits: crate::decide::pools::reads_postgres(profile)
                .then(|| self.postgres.clone().unwrap_or_default().read()),
            clickhouse_limits: crate::decide::pools::reads_clickhouse(profile)
                .then(|| self.clickhouse.clone().unwrap_or_default().read()),
            // plan evaluates the policies every time.
            policy_every: None,
        }
    }
}

fn traffic(t: RouteObservation) -> RouteTraffic {
    RouteTraffic {
        requests_per_second: t.requests_per_second,
        p99_latency_ms: t.p99_latency_ms,
        error_percent: t.error_percent,
        rejected_per_second: t.rejected_per_second,
    }
}
