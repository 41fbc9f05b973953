//! The example policies, through the real host: decisions move in the direction the observations call for.

use perf_policy_host::{CacheInput, Error, HostConfig, PolicyHost, RateLimitInput, World};

fn host() -> PolicyHost {
    PolicyHost::new(HostConfig::default()).unwrap()
}

fn cache_example() -> CacheInput {
    serde_json::from_str(include_str!("../../examples/cache-input.json")).unwrap()
}

fn rate_limit_example() -> RateLimitInput {
    serde_json::from_str(include_str!("../../examples/rate-limit-input.json")).unwrap()
}

#[test]
fn ttl_lengthens_while_hit_ratio_is_low_and_memory_allows() {
    let host = host();
    let policy = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let input = cache_example();
    let output = policy.evaluate_cache(&input).unwrap();
    assert_eq!(output.classes.len(), 10);
    for (before, after) in input.classes.iter().zip(&output.classes) {
        assert!(
            after.ttl_seconds > before.ttl_seconds || after.ttl_seconds == before.spec_ttl_seconds * 4,
            "{after:?}"
        );
        assert!(after.ttl_seconds <= before.spec_ttl_seconds * 4, "{after:?} above 4x spec");
    }
    assert!(output.memory.is_none());
    assert!(output.reason.contains("hit ratio below target"), "{}", output.reason);
}

#[test]
fn ttl_shortens_under_eviction_pressure_and_advises_memory() {
    let host = host();
    let policy = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let mut input = cache_example();
    input.stats.evictions = input.stats.misses;
    let output = policy.evaluate_cache(&input).unwrap();
    for (before, after) in input.classes.iter().zip(&output.classes) {
        assert!(
            after.ttl_seconds < before.ttl_seconds || after.ttl_seconds * 4 == before.spec_ttl_seconds,
            "{after:?}"
        );
    }
    let advice = output.memory.unwrap();
    assert!(advice.max_memory_bytes.unwrap() > input.stats.max_memory_bytes);
    assert_eq!(advice.eviction_policy.as_deref(), Some("allkeys-lfu"));
}

#[test]
fn ttl_holds_when_memory_is_full_and_respects_min_admit() {
    let host = host();
    let policy = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let mut input = cache_example();
    input.stats.used_memory_bytes = input.stats.max_memory_bytes;
    let output = policy.evaluate_cache(&input).unwrap();
    for (before, after) in input.classes.iter().zip(&output.classes) {
        assert_eq!(after.ttl_seconds, before.ttl_seconds);
        // The example sets minAdmitTtlSeconds = 10: every class is above it.
        assert!(after.admit);
    }
    input.settings = r#"{"minAdmitTtlSeconds": 100}"#.into();
    let output = policy.evaluate_cache(&input).unwrap();
    let position = input.classes.iter().position(|c| c.name == "searchResults").unwrap();
    let short = output.classes[position];
    assert!(!short.admit, "a 30 s class is below minAdmitTtlSeconds = 100");
}

#[test]
fn rate_limits_back_off_on_breach_recover_when_healthy_hold_without_data() {
    let host = host();
    let policy = host.load_builtin(World::RateLimit, "adaptive-rate-limit").unwrap();
    let input = rate_limit_example();
    let output = policy.evaluate_rate_limit(&input).unwrap();
    assert_eq!(output.routes.len(), 20);
    let slo = input.slo;
    let (mut backed_off, mut recovered, mut held) = (0, 0, 0);
    for (before, after) in input.routes.iter().zip(&output.routes) {
        assert!(after.burst >= after.requests_per_second);
        match before.traffic {
            Some(t) if t.p99_latency_ms > f64::from(slo.p99_latency_ms) || t.error_percent > slo.error_rate_percent => {
                assert!(after.requests_per_second < before.requests_per_second, "{after:?} should back off");
                backed_off += 1;
            }
            Some(t) if t.p99_latency_ms <= 0.8 * f64::from(slo.p99_latency_ms) && t.error_percent <= 0.4 => {
                assert!(after.requests_per_second >= before.requests_per_second, "{after:?} should recover");
                assert!(after.requests_per_second <= before.spec_requests_per_second);
                recovered += 1;
            }
            _ => {
                assert_eq!(after.requests_per_second, before.requests_per_second, "{after:?} should hold");
                held += 1;
            }
        }
    }
    assert!(backed_off >= 4 && recovered >= 8 && held >= 2, "{backed_off} {recovered} {held}");
    assert!(output.reason.contains("backed off"), "{}", output.reason);
}

#[test]
fn settings_are_validated_by_the_policy() {
    let host = host();
    let ttl = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    ttl.validate_settings(r#"{"growFactor": 1.5}"#).unwrap();
    let err = ttl.validate_settings(r#"{"growFactor": 0.5}"#).unwrap_err();
    assert_eq!(err.category(), "bad_settings");
    assert!(err.to_string().contains("settings.growFactor"), "{err}");
    let limits = host.load_builtin(World::RateLimit, "adaptive-rate-limit").unwrap();
    let err = limits.validate_settings(r#"{"unknown": 1}"#).unwrap_err();
    assert!(matches!(err, Error::BadSettings(ref m) if m.contains("unknown field")), "{err}");
    // Bad settings in an evaluation are the policy's own error.
    let mut input = rate_limit_example();
    input.settings = r#"{"decreaseFactor": 2}"#.into();
    assert_eq!(limits.evaluate_rate_limit(&input).unwrap_err().category(), "policy_error");
}

#[test]
fn warm_instance_is_reused_between_calls() {
    let host = host();
    let policy = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let input = cache_example();
    let first = policy.evaluate_cache(&input).unwrap();
    for _ in 0..100 {
        assert_eq!(policy.evaluate_cache(&input).unwrap(), first);
    }
    assert_eq!(policy.warm_instances(), 1);
}

#[test]
fn warm_instance_serves_many_calls_without_growing() {
    // The guests' arena allocator rewinds only when a call frees all it allocated; a leak would exhaust the 16 MiB
    // cap within a few thousand calls and show up here as out-of-memory.
    let host = host();
    let ttl = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let limits = host.load_builtin(World::RateLimit, "adaptive-rate-limit").unwrap();
    let (cache, routes) = (cache_example(), rate_limit_example());
    for _ in 0..20_000 {
        ttl.evaluate_cache(&cache).unwrap();
        limits.evaluate_rate_limit(&routes).unwrap();
    }
    assert_eq!((ttl.warm_instances(), limits.warm_instances()), (1, 1));
}

/// A small deterministic generator (xorshift), so the inputs below vary every field without a dependency.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u32 {
        (self.next() % n) as u32
    }

    fn real(&mut self, max: f64) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 * max
    }
}

/// The host lowers the classes and routes by hand (`lowering.rs`): if any field landed where the guest does not
/// read it, the WASM decisions would differ from the same algorithm run natively on the same values.
#[test]
fn wasm_decisions_equal_the_native_algorithm_on_varied_inputs() {
    use perf_policy_algorithms::{RateLimitSettings, Slo, TtlSettings, rate_limit, ttl};
    let host = host();
    let ttl_policy = host.load_builtin(World::Cache, "adaptive-ttl").unwrap();
    let rl_policy = host.load_builtin(World::RateLimit, "adaptive-rate-limit").unwrap();
    let mut n = Numbers(0x5eed_1234_abcd_9876);
    for case in 0..200 {
        let mut cache = cache_example();
        for class in &mut cache.classes {
            class.spec_ttl_seconds = 1 + n.below(100_000);
            class.ttl_seconds = 1 + n.below(400_000);
        }
        let s = &mut cache.stats;
        (s.hits, s.misses, s.evictions) = (n.next() % 10_000, n.next() % 10_000, n.next() % 200);
        (s.max_memory_bytes, s.used_memory_bytes) = (n.next() % 1_000_000, n.next() % 1_000_000);
        let wasm = ttl_policy.evaluate_cache(&cache).unwrap();
        let classes: Vec<ttl::TtlClass> = cache.classes.iter().map(Into::into).collect();
        let (stats, slo): (ttl::CacheStats, Slo) = (cache.stats.into(), cache.slo.into());
        let native: ttl::CacheDecision =
            ttl::decide(&classes, &stats, &slo, &TtlSettings::parse(&cache.settings).unwrap());
        let native_ttls: Vec<(u32, bool)> = native.classes.iter().map(|d| (d.ttl_seconds, d.admit)).collect();
        let wasm_ttls: Vec<(u32, bool)> = wasm.classes.iter().map(|d| (d.ttl_seconds, d.admit)).collect();
        assert_eq!(wasm_ttls, native_ttls, "case {case}: {cache:?}");
        assert_eq!(wasm.reason, native.reason, "case {case}");

        let mut limits = rate_limit_example();
        limits.slo = perf_policy_host::Slo { p99_latency_ms: 50 + n.below(500), error_rate_percent: n.real(5.0) };
        for route in &mut limits.routes {
            route.spec_requests_per_second = 1 + n.below(10_000);
            route.spec_burst = route.spec_requests_per_second + n.below(10_000);
            route.requests_per_second = 1 + n.below(10_000);
            route.burst = route.requests_per_second + n.below(100);
            route.traffic = (n.below(4) != 0).then(|| perf_policy_host::RouteTraffic {
                requests_per_second: n.real(20_000.0),
                p99_latency_ms: n.real(600.0),
                error_percent: n.real(6.0),
                rejected_per_second: n.real(100.0),
            });
        }
        let wasm = rl_policy.evaluate_rate_limit(&limits).unwrap();
        let routes: Vec<rate_limit::RouteState> = limits.routes.iter().map(Into::into).collect();
        let slo: Slo = limits.slo.into();
        let native: rate_limit::RateLimitDecision =
            rate_limit::decide(&routes, &slo, &RateLimitSettings::parse(&limits.settings).unwrap());
        let native_limits: Vec<(u32, u32)> = native.routes.iter().map(|l| (l.requests_per_second, l.burst)).collect();
        let wasm_limits: Vec<(u32, u32)> = wasm.routes.iter().map(|l| (l.requests_per_second, l.burst)).collect();
        assert_eq!(wasm_limits, native_limits, "case {case}: {limits:?}");
        assert_eq!(wasm.reason, native.reason, "case {case}");
    }
}
