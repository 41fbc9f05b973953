//! The `policies` section of `plan`: built-in policies evaluated offline on example observations, so a reviewer
//! sees what they would publish; policies from a ConfigMap or a URL are loaded only by the running operator.

use perf_operator_api::{PerformanceProfile, PolicyRef};
use perf_policy_host::{CacheInput, CacheStats, HostConfig, PolicyHost, RateLimitInput, RouteTraffic, World};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Example observations: a cache hitting 70 % at 40 % of its memory, routes within their SLO at 60 % of the rate.
fn example_stats() -> CacheStats {
    CacheStats {
        hits: 7_000,
        misses: 3_000,
        evictions: 0,
        used_memory_bytes: 100 << 20,
        max_memory_bytes: 256 << 20,
        keys: 20_000,
    }
}

fn host() -> Result<&'static PolicyHost, String> {
    static HOST: OnceLock<Result<PolicyHost, String>> = OnceLock::new();
    HOST.get_or_init(|| PolicyHost::new(HostConfig::default()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// The policy section, or None when the profile uses no policy.
pub fn section(profile: &PerformanceProfile) -> Option<Value> {
    let mut out = serde_json::Map::new();
    if let Some(cache) = &profile.spec.cache
        && let Some(r) = &cache.policy
    {
        let input = CacheInput::from_spec(
            &cache.ttl_classes,
            &BTreeMap::new(),
            example_stats(),
            &profile.spec.slo,
            r.settings.as_ref(),
        );
        let result = evaluate(r, World::Cache, |host, name| {
            let policy = host.load_builtin(World::Cache, name).map_err(|e| e.to_string())?;
            policy
                .validate_settings(&perf_policy_host::spec::settings_text(r.settings.as_ref()))
                .map_err(|e| e.to_string())?;
            let out = policy.evaluate_cache(&input).map_err(|e| e.to_string())?;
            Ok(json!({ "ttlSeconds": out.ttl_seconds(&input), "memoryAdvice": out.memory, "reason": out.reason }))
        });
        out.insert("cache".into(), json!({ "observations": example_stats(), "decision": result }));
    }
    if let Some(rl) = &profile.spec.rate_limit
        && let Some(r) = &rl.policy
    {
        let traffic: BTreeMap<String, RouteTraffic> = rl
            .routes
            .iter()
            .map(|route| {
                let t = RouteTraffic {
                    requests_per_second: f64::from(route.requests_per_second) * 0.6,
                    p99_latency_ms: f64::from(profile.spec.slo.p99_latency_ms) * 0.5,
                    error_percent: profile.spec.slo.error_rate_percent * 0.1,
                    rejected_per_second: 0.0,
                };
                (route.route.clone(), t)
            })
            .collect();
        let input =
            RateLimitInput::from_spec(&rl.routes, &BTreeMap::new(), &traffic, &profile.spec.slo, r.settings.as_ref());
        let result = evaluate(r, World::RateLimit, |host, name| {
            let policy = host.load_builtin(World::RateLimit, name).map_err(|e| e.to_string())?;
            policy
                .validate_settings(&perf_policy_host::spec::settings_text(r.settings.as_ref()))
                .map_err(|e| e.to_string())?;
            let out = policy.evaluate_rate_limit(&input).map_err(|e| e.to_string())?;
            Ok(json!({ "routes": out.by_route(&input), "reason": out.reason }))
        });
        out.insert("rateLimit".into(), json!({ "observations": traffic, "decision": result }));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn evaluate(r: &PolicyRef, world: World, run: impl FnOnce(&PolicyHost, &str) -> Result<Value, String>) -> Value {
    let Some(name) = &r.builtin else {
        return json!({ "notEvaluated": format!("{world}: loaded from its ConfigMap or URL by the running operator") });
    };
    match host().and_then(|h| run(h, name)) {
        Ok(v) => v,
        Err(e) => json!({ "error": e, "onFailure": r.on_failure }),
    }
}
