//! `adaptive-ttl`: the example cache policy (built-in default). Lengthens TTLs while the hit ratio is low and memory
//! allows, shortens them under eviction pressure. The algorithm lives in `perf-policy-algorithms`; this crate only
//! connects the WIT types to it.

// The export glue wit-bindgen generates takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

use perf_policy_algorithms::{Slo, TtlSettings, ttl};

wit_bindgen::generate!({ path: "../../wit", world: "cache-policy" });

use perf::policy::types::{ClassDecision, MemoryAdvice, TtlClass};

// Every call frees all it allocates, so a rewinding arena replaces dlmalloc (see `call-arena`).
#[global_allocator]
static ARENA: call_arena::CallArena = call_arena::CallArena::new();

struct AdaptiveTtl;

impl Guest for AdaptiveTtl {
    fn validate_settings(settings: String) -> Result<(), String> {
        TtlSettings::parse(&settings).map(|_| ())
    }

    fn evaluate(input: CacheInput) -> Result<CacheOutput, String> {
        let settings = TtlSettings::parse_cached(&input.settings)?;
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
        let d = ttl::decide(&input.classes, &stats, &slo, &settings);
        Ok(CacheOutput {
            classes: d.classes,
            memory: d
                .memory
                .map(|m| MemoryAdvice { max_memory_bytes: m.max_memory_bytes, eviction_policy: m.eviction_policy }),
            reason: d.reason,
        })
    }
}

/// The algorithm reads the WIT records in place.
impl ttl::Class for TtlClass {
    fn ttl_seconds(&self) -> u32 {
        self.ttl_seconds
    }

    fn spec_ttl_seconds(&self) -> u32 {
        self.spec_ttl_seconds
    }
}

impl From<ttl::ClassDecision> for ClassDecision {
    fn from(d: ttl::ClassDecision) -> Self {
        Self { ttl_seconds: d.ttl_seconds, admit: d.admit }
    }
}

export!(AdaptiveTtl);
