//! A cache policy's memory advice, applied live to the Redis the operator provisions, within the profile's bounds:
//! `maxmemory` between 1 MiB and the spec's `maxMemory`, `maxmemory-policy` one Redis knows. An external Redis is
//! not the operator's to configure: there the advice is only reported. Pure.

use perf_operator_api::validation::parse_memory;
use perf_operator_api::{EvictionPolicy, RedisProvision};
use perf_policy_host::MemoryAdvice;

/// Smallest `maxmemory` advice applied.
pub const MIN_MAX_MEMORY_BYTES: u64 = 1 << 20;

/// Settings to hold live on a provisioned Redis (`CONFIG SET`), and what was made of the advice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSettings {
    /// (parameter, value), in the order to set them.
    pub settings: Vec<(String, String)>,
    /// For `status.policies.cache.memoryAdviceApplied`.
    pub summary: String,
}

/// The live settings of a provisioned Redis: the advice within bounds, or the spec's values without advice (so
/// advice that is withdrawn is undone).
pub fn live_settings(spec: &RedisProvision, advice: Option<&MemoryAdvice>) -> LiveSettings {
    let spec_bytes = parse_memory(&spec.max_memory).unwrap_or(256 << 20);
    let mut notes = Vec::new();
    let bytes = match advice.and_then(|a| a.max_memory_bytes) {
        Some(advised) => {
            let bounded = advised.clamp(MIN_MAX_MEMORY_BYTES.min(spec_bytes), spec_bytes);
            if bounded != advised {
                notes.push(format!("maxmemory {advised} advised, bounded to {bounded} (spec maxMemory {spec_bytes})"));
            }
            bounded
        }
        None => spec_bytes,
    };
    let policy = match advice.and_then(|a| a.eviction_policy.as_deref()) {
        Some(name) => match eviction_policy(name) {
            Some(p) => p,
            None => {
                notes.push(format!("eviction policy {:?} is not one Redis knows; the spec's kept", sanitize(name)));
                spec.eviction_policy
            }
        },
        None => spec.eviction_policy,
    };
    // Everything a spec change may touch that Redis takes live: no restart, no emptied cache.
    let settings = vec![
        ("maxmemory".to_string(), bytes.to_string()),
        ("maxmemory-policy".into(), policy.as_redis().into()),
        ("maxclients".into(), spec.max_clients.to_string()),
    ];
    let applied = format!("maxmemory {bytes}, maxmemory-policy {}, maxclients {}", policy.as_redis(), spec.max_clients);
    let summary = match (advice.is_some(), notes.is_empty()) {
        (false, _) => format!("no advice: the spec's {applied}"),
        (true, true) => format!("applied: {applied}"),
        (true, false) => format!("applied within the profile's bounds: {applied} ({})", notes.join("; ")),
    };
    LiveSettings { settings, summary }
}

fn eviction_policy(name: &str) -> Option<EvictionPolicy> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

fn sanitize(text: &str) -> String {
    super::policy::sanitize(text).chars().take(64).collect()
}

/// What is said of advice for an external Redis.
pub const EXTERNAL_NOT_APPLIED: &str = "reported only: an external Redis is not the operator's to configure";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RedisProvision {
        RedisProvision { max_memory: "256Mi".into(), eviction_policy: EvictionPolicy::AllkeysLru, ..Default::default() }
    }

    fn advice(bytes: Option<u64>, policy: Option<&str>) -> MemoryAdvice {
        MemoryAdvice { max_memory_bytes: bytes, eviction_policy: policy.map(String::from) }
    }

    fn values(s: &LiveSettings) -> Vec<&str> {
        s.settings.iter().map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn advice_is_applied_within_the_spec_and_withdrawn_advice_is_undone() {
        let within = live_settings(&spec(), Some(&advice(Some(128 << 20), Some("allkeys-lfu"))));
        assert_eq!(values(&within)[..2], ["134217728", "allkeys-lfu"]);
        assert!(within.summary.starts_with("applied: "), "{}", within.summary);
        let none = live_settings(&spec(), None);
        assert_eq!(values(&none)[..2], ["268435456", "allkeys-lru"]);
        assert!(none.summary.starts_with("no advice"), "{}", none.summary);
    }

    #[test]
    fn out_of_bounds_and_unknown_advice_is_bounded_and_said() {
        for (advised, expected) in [(u64::MAX, "268435456"), (0, "1048576"), (1, "1048576"), (300 << 20, "268435456")] {
            let s = live_settings(&spec(), Some(&advice(Some(advised), None)));
            assert_eq!(values(&s)[0], expected, "{advised}");
            assert!(s.summary.contains("bounded"), "{}", s.summary);
        }
        for bad in ["evict-everything", "ALLKEYS-LRU", "allkeys-lru\n", "", "\u{202e}noeviction"] {
            let s = live_settings(&spec(), Some(&advice(None, Some(bad))));
            assert_eq!(values(&s)[1], "allkeys-lru", "{bad:?}");
            assert!(s.summary.contains("not one Redis knows") && !s.summary.contains('\n'), "{}", s.summary);
        }
    }
}
