//! The operator's records as the types of `perf-policy-algorithms`, so that the built-in policies' algorithms can
//! run natively on the same input the WASM guests get: the benchmark compares the two, and the conformance tests
//! check that they decide alike.

use perf_policy_algorithms::{rate_limit, ttl};

use crate::types::{CacheStats, RouteState, RouteTraffic, Slo, TtlClass};

impl From<&TtlClass> for ttl::TtlClass {
    fn from(c: &TtlClass) -> Self {
        Self { ttl_seconds: c.ttl_seconds, spec_ttl_seconds: c.spec_ttl_seconds }
    }
}

impl From<CacheStats> for ttl::CacheStats {
    fn from(s: CacheStats) -> Self {
        Self {
            hits: s.hits,
            misses: s.misses,
            evictions: s.evictions,
            used_memory_bytes: s.used_memory_bytes,
            max_memory_bytes: s.max_memory_bytes,
            keys: s.keys,
        }
    }
}

impl From<Slo> for perf_policy_algorithms::Slo {
    fn from(s: Slo) -> Self {
        Self { p99_latency_ms: s.p99_latency_ms, error_rate_percent: s.error_rate_percent }
    }
}

impl From<RouteTraffic> for rate_limit::RouteTraffic {
    fn from(t: RouteTraffic) -> Self {
        Self {
            requests_per_second: t.requests_per_second,
            p99_latency_ms: t.p99_latency_ms,
            error_percent: t.error_percent,
            rejected_per_second: t.rejected_per_second,
        }
    }
}

impl From<&RouteState> for rate_limit::RouteState {
    fn from(r: &RouteState) -> Self {
        Self {
            requests_per_second: r.requests_per_second,
            burst: r.burst,
            spec_requests_per_second: r.spec_requests_per_second,
            spec_burst: r.spec_burst,
            traffic: r.traffic.map(Into::into),
        }
    }
}
