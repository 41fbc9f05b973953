//! `adaptive-ttl`: the example cache policy (built-in default). Lengthens TTLs while the hit ratio is low and memory
//! allows, shortens them under eviction pressure. The algorithm lives in `perf-policy-algorithms`; this crate only
//! converts between the WIT types and it.

// The export glue wit-bindgen generates takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

use perf_policy_algorithms::{Slo, TtlSettings, ttl};

wit_bindgen::generate!({ path: "../../wit", world: "cache-policy" });

use perf::policy::types::{ClassDecision, MemoryAdvice};

struct AdaptiveTtl;

impl Guest for AdaptiveTtl {
    fn validate_settings(settings: String) -> Result<(), String> {
        TtlSettings::parse(&settings).map(|_| ())
    }

    fn evaluate(input: CacheInput) -> Result<CacheOutput, String> {
        let settings = TtlSettings::parse_cached(&input.settings)?;
        let classes: Vec<ttl::TtlClass> = input
            .classes
            .into_iter()
            .map(|c| ttl::TtlClass { name: c.name, ttl_seconds: c.ttl_seconds, spec_ttl_seconds: c.spec_ttl_seconds })
            .collect();
        let s = input.stats;
        let stats = ttl::CacheStats {
            hits: s.hits,
            misses: s.misses,
            evictions: s.evictions,
            used_memory_bytes: s.used_memory_bytes,
            max_memory_bytes: s.max_memory_bytes,
            keys: s.keys,
        };
        let slo = Slo { p99_latency_ms: input.slo.p99_latency_ms, error_rate_percent: input.slo.error_rate_percent };
        let d = ttl::decide(&classes, &stats, &slo, &settings);
        Ok(CacheOutput {
            classes: d
                .classes
                .into_iter()
                .map(|c| ClassDecision { ttl_seconds: c.ttl_seconds, admit: c.admit })
                .collect(),
            memory: d
                .memory
                .map(|m| MemoryAdvice { max_memory_bytes: m.max_memory_bytes, eviction_policy: m.eviction_policy }),
            reason: d.reason,
        })
    }
}

export!(AdaptiveTtl);
