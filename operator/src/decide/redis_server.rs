//! What a Redis reports about itself, for status and `CacheReady`: version, memory, clients, the hit ratio and
//! evictions over the last interval (deltas of its counters), and what could not be verified. Pure.

use crate::redis_stats::{RedisError, RedisStats};
use perf_operator_api::{RedisCounters, RedisServerStatus};

/// The server's status from this round's stats and the previous round's counters.
pub fn status(stats: &RedisStats, previous: Option<&RedisServerStatus>) -> RedisServerStatus {
    let counters = RedisCounters { hits: stats.hits, misses: stats.misses, evictions: stats.evicted_keys };
    // Counters that went down mean a restart: they count from zero again, so this round's values are the delta.
    let before = previous
        .map(|p| p.counters)
        .filter(|p| p.hits <= counters.hits && p.misses <= counters.misses && p.evictions <= counters.evictions)
        .unwrap_or_default();
    let hits = counters.hits - before.hits;
    let lookups = hits + (counters.misses - before.misses);
    let mut limitations = Vec::new();
    if let Some(reason) = &stats.config_refused {
        limitations.push(format!("CONFIG GET refused ({}): maxclients unknown, declare maxClients", short(reason)));
    }
    RedisServerStatus {
        version: stats.version.clone(),
        used_memory_bytes: stats.used_memory_bytes,
        max_memory_bytes: stats.max_memory_bytes,
        eviction_policy: stats.eviction_policy.clone(),
        connected_clients: stats.connected_clients,
        max_clients: stats.config_refused.is_none().then_some(stats.max_clients),
        hit_ratio_percent: (lookups > 0).then(|| (hits as f64 * 1000.0 / lookups as f64).round() / 10.0),
        evicted_keys: counters.evictions - before.evictions,
        counters,
        limitations,
    }
}

/// Full, with a `noeviction` policy: Redis refuses writes.
pub fn over_memory(stats: &RedisStats) -> bool {
    stats.max_memory_bytes > 0
        && stats.used_memory_bytes >= stats.max_memory_bytes
        && stats.eviction_policy == "noeviction"
}

/// `CacheReady` reason for a Redis that could not be read.
pub fn reason(e: &RedisError) -> &'static str {
    match e {
        RedisError::Auth { .. } => "WrongPassword",
        RedisError::Unreachable { .. } | RedisError::Timeout { .. } => "Unreachable",
        RedisError::Refused { .. } => "EndpointRefused",
        RedisError::TooLarge { .. } => "AnswerTooLarge",
    }
}

fn short(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hits: u64, misses: u64, evicted: u64) -> RedisStats {
        RedisStats { hits, misses, evicted_keys: evicted, version: "7.0.15".into(), ..Default::default() }
    }

    #[test]
    fn ratios_and_evictions_are_over_the_last_interval_and_survive_a_restart() {
        let first = status(&stats(90, 10, 5), None);
        assert_eq!((first.hit_ratio_percent, first.evicted_keys), (Some(90.0), 5));
        let second = status(&stats(100, 40, 6), Some(&first));
        assert_eq!((second.hit_ratio_percent, second.evicted_keys), (Some(25.0), 1));
        let idle = status(&stats(100, 40, 6), Some(&second));
        assert_eq!((idle.hit_ratio_percent, idle.evicted_keys), (None, 0));
        let restarted = status(&stats(3, 1, 0), Some(&second));
        assert_eq!(restarted.hit_ratio_percent, Some(75.0));
    }

    #[test]
    fn a_refused_config_is_a_limitation_not_a_failure() {
        let mut s = stats(0, 0, 0);
        s.config_refused = Some("ERR unknown command 'CONFIG'".into());
        let st = status(&s, None);
        assert_eq!(st.max_clients, None);
        assert!(st.limitations[0].contains("maxclients unknown"), "{:?}", st.limitations);
        s.max_memory_bytes = 100;
        s.used_memory_bytes = 100;
        s.eviction_policy = "noeviction".into();
        assert!(over_memory(&s));
        s.eviction_policy = "allkeys-lru".into();
        assert!(!over_memory(&s));
    }
}
