//! The app contract: one ConfigMap per profile, `<profile>-perf`, that the app mounts or reads.
//!
//! Keys (format version 1, documented in README):
//! - `perf.json`: everything below as one JSON document (`version`, `cache`, `pools`, `rateLimits`).
//! - `cache.redis.address`, `cache.redis.passwordSecret` (`name/key`), `cache.ttl.<class>` (seconds);
//!   `cache.admit.<class>` (`true`/`false`) only when a cache policy decides admission (absent: admitted).
//! - `pools.<pool>.min`, `pools.<pool>.max` for `clickhouse`, `postgres`, `redis`.
//! - `ratelimit.json`: `[{route, requestsPerSecond, burst}]`.
//! - `slo.p99LatencyMs`, `slo.errorRatePercent`: the objective, so the app's latency histogram has a bucket at it.
//!
//! The JSON Schema of `perf.json` is `clients/app-contract.schema.json`; the Python client validates against it and
//! the suite checks every contract `plan` writes for the examples against it.

use super::cache::CachePlan;
use super::labels::meta;
use super::pools::PoolsPlan;
use super::rate_limit::RateLimitPlan;
use k8s_openapi::api::core::v1::ConfigMap;
use perf_operator_api::{PerformanceProfile, Slo};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the key layout, bumped on incompatible changes.
pub const CONTRACT_VERSION: u32 = 1;

/// The published values; policies may have replaced the spec's TTLs and limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contract<'a> {
    pub slo: Option<&'a Slo>,
    pub cache: Option<&'a CachePlan>,
    pub pools: Option<&'a PoolsPlan>,
    pub rate_limits: Option<&'a RateLimitPlan>,
}

/// ConfigMap data of the contract; keys are sorted, so the checksum is stable.
pub fn data(contract: &Contract<'_>) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let mut doc = json!({ "version": CONTRACT_VERSION });
    if let Some(slo) = contract.slo {
        data.insert("slo.p99LatencyMs".into(), slo.p99_latency_ms.to_string());
        data.insert("slo.errorRatePercent".into(), slo.error_rate_percent.to_string());
        doc["slo"] = json!({"p99LatencyMs": slo.p99_latency_ms, "errorRatePercent": slo.error_rate_percent});
    }
    if let Some(cache) = contract.cache {
        data.insert("cache.redis.address".into(), cache.address.clone());
        if let Some((name, key)) = &cache.password_secret {
            data.insert("cache.redis.passwordSecret".into(), format!("{name}/{key}"));
        }
        for (class, ttl) in &cache.ttl_seconds {
            data.insert(format!("cache.ttl.{class}"), ttl.to_string());
        }
        for (class, admit) in &cache.admit {
            data.insert(format!("cache.admit.{class}"), admit.to_string());
        }
        doc["cache"] = json!({
            "redis": { "address": cache.address, "passwordSecret": cache.password_secret.as_ref().map(|(n, k)| json!({"name": n, "key": k})) },
            "ttlSeconds": cache.ttl_seconds,
        });
        if !cache.admit.is_empty() {
            doc["cache"]["admit"] = json!(cache.admit);
        }
    }
    if let Some(pools) = contract.pools {
        for (name, size) in &pools.sizes {
            data.insert(format!("pools.{name}.min"), size.min.to_string());
            data.insert(format!("pools.{name}.max"), size.max.to_string());
        }
        doc["pools"] = json!(
            pools
                .sizes
                .iter()
                .map(|(n, s)| (n.clone(), json!({"min": s.min, "max": s.max})))
                .collect::<BTreeMap<_, _>>()
        );
    }
    if let Some(limits) = contract.rate_limits {
        let routes = serde_json::to_string(&limits.routes).unwrap_or_else(|_| "[]".into());
        data.insert("ratelimit.json".into(), routes);
        doc["rateLimits"] = json!(limits.routes);
    }
    data.insert("perf.json".into(), serde_json::to_string_pretty(&doc).unwrap_or_default());
    data
}

/// sha256 of the data, hex.
pub fn checksum(data: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in data {
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The contract ConfigMap.
pub fn config_map(profile: &PerformanceProfile, data: BTreeMap<String, String>) -> ConfigMap {
    ConfigMap {
        metadata: meta(profile, profile.app_config_name(), "app-config"),
        data: Some(data),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_operator_api::{PoolSize, RouteLimit};

    #[test]
    fn contract_has_flat_keys_and_one_json_document() {
        let cache = CachePlan {
            address: "shop-redis.prod.svc:6379".into(),
            password_secret: Some(("shop-redis".into(), "password".into())),
            ttl_seconds: BTreeMap::from([("riskModel".into(), 3600), ("metrics".into(), 300)]),
            admit: BTreeMap::from([("metrics".into(), false)]),
            max_clients: Some(10_000),
        };
        let size = PoolSize { min: 5, max: 20, reason: "Fixed".into(), limit: None };
        let pools = PoolsPlan {
            app_replicas: 2,
            worst_case_pods: 2,
            sizes: BTreeMap::from([("postgres".into(), size)]),
            servers: BTreeMap::new(),
            undersized: Vec::new(),
            warnings: Vec::new(),
            unread: Vec::new(),
        };
        let limits =
            RateLimitPlan { routes: vec![RouteLimit { route: "/api".into(), requests_per_second: 100, burst: 200 }] };
        let slo = Slo::default();
        let d =
            data(&Contract { slo: Some(&slo), cache: Some(&cache), pools: Some(&pools), rate_limits: Some(&limits) });
        assert_eq!(d["cache.ttl.riskModel"], "3600");
        assert_eq!(d["cache.redis.passwordSecret"], "shop-redis/password");
        assert_eq!(d["cache.admit.metrics"], "false");
        assert_eq!(d["pools.postgres.max"], "20");
        let doc: serde_json::Value = serde_json::from_str(&d["perf.json"]).unwrap();
        assert_eq!(doc["cache"]["ttlSeconds"]["metrics"], 300);
        assert_eq!(doc["rateLimits"][0]["burst"], 200);
        assert_eq!(doc["pools"]["postgres"]["min"], 5);
        assert_eq!((doc["slo"]["p99LatencyMs"].clone(), d["slo.errorRatePercent"].as_str()), (json!(150), "0.1"));
    }

    #[test]
    fn checksum_changes_with_any_value() {
        let mut d = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let before = checksum(&d);
        assert_eq!(before, checksum(&d.clone()));
        d.insert("a".into(), "2".into());
        assert_ne!(before, checksum(&d));
    }
}
