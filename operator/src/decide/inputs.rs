//! Policy inputs from the profile's spec, what is published now and what was observed. The WIT promises the cache
//! policy the counters of the interval since its previous evaluation, so cumulative `INFO` counters become deltas
//! against the ones recorded in status last time.

use crate::redis_stats::RedisStats;
use perf_operator_api::{self as api, PublishedLimit, RedisCounters};
use perf_policy_host::positional::settings_text;
use perf_policy_host::{CacheInput, CacheStats, RateLimitInput, RouteState, RouteTraffic, Slo, TtlClass};
use std::collections::BTreeMap;

pub fn slo(slo: &api::Slo) -> Slo {
    Slo { p99_latency_ms: slo.p99_latency_ms, error_rate_percent: slo.error_rate_percent }
}

/// `published`: TTLs published now; a class not there starts at its spec TTL.
pub fn cache_input(
    classes: &[api::TtlClass],
    published: &BTreeMap<String, u32>,
    stats: CacheStats,
    profile_slo: &api::Slo,
    settings: Option<&serde_json::Value>,
) -> CacheInput {
    let classes = classes
        .iter()
        .map(|c| TtlClass {
            name: c.name.clone(),
            ttl_seconds: published.get(&c.name).copied().unwrap_or(c.ttl_seconds),
            spec_ttl_seconds: c.ttl_seconds,
        })
        .collect();
    CacheInput { classes, stats, slo: slo(profile_slo), settings: settings_text(settings) }
}

/// `published`: limits published now by route, a route not there starts at its spec limits; `traffic`: what was
/// observed by route, a route not there has no data.
pub fn rate_limit_input(
    routes: &[api::RouteLimit],
    published: &BTreeMap<String, PublishedLimit>,
    traffic: &BTreeMap<String, RouteTraffic>,
    profile_slo: &api::Slo,
    settings: Option<&serde_json::Value>,
) -> RateLimitInput {
    let routes = routes
        .iter()
        .map(|r| {
            let now = published.get(&r.route);
            RouteState {
                route: r.route.clone(),
                requests_per_second: now.map_or(r.requests_per_second, |p| p.requests_per_second),
                burst: now.map_or(r.burst, |p| p.burst),
                spec_requests_per_second: r.requests_per_second,
                spec_burst: r.burst,
                traffic: traffic.get(&r.route).copied(),
            }
        })
        .collect();
    RateLimitInput { routes, slo: slo(profile_slo), settings: settings_text(settings) }
}

/// The counters read now, to record for the next interval.
pub fn counters(stats: &RedisStats) -> RedisCounters {
    RedisCounters { hits: stats.hits, misses: stats.misses, evictions: stats.evicted_keys }
}

/// What the cache policy is given: counters since `previous` (zero on the first reading, when no interval exists
/// yet; the counter itself after a Redis restart reset it below the previous reading), gauges as read.
pub fn interval_stats(now: &RedisStats, previous: Option<RedisCounters>) -> CacheStats {
    let delta = |now: u64, before: Option<u64>| match before {
        None => 0,
        Some(before) if now >= before => now - before,
        Some(_) => now,
    };
    CacheStats {
        hits: delta(now.hits, previous.map(|p| p.hits)),
        misses: delta(now.misses, previous.map(|p| p.misses)),
        evictions: delta(now.evicted_keys, previous.map(|p| p.evictions)),
        used_memory_bytes: now.used_memory_bytes,
        max_memory_bytes: now.max_memory_bytes,
        keys: now.keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hits: u64, misses: u64, evictions: u64) -> RedisStats {
        RedisStats { hits, misses, evicted_keys: evictions, used_memory_bytes: 7, keys: 3, ..RedisStats::default() }
    }

    #[test]
    fn counters_are_deltas_of_the_interval_gauges_are_as_read() {
        let first = interval_stats(&stats(1_000, 400, 5), None);
        assert_eq!((first.hits, first.misses, first.evictions), (0, 0, 0), "no interval before the first reading");
        assert_eq!((first.used_memory_bytes, first.keys), (7, 3));
        let previous = Some(counters(&stats(1_000, 400, 5)));
        let next = interval_stats(&stats(1_900, 500, 5), previous);
        assert_eq!((next.hits, next.misses, next.evictions), (900, 100, 0));
        // Redis restarted: its counters start again from zero.
        let restarted = interval_stats(&stats(30, 10, 0), previous);
        assert_eq!((restarted.hits, restarted.misses, restarted.evictions), (30, 10, 0));
    }

    #[test]
    fn inputs_start_from_published_values_or_the_spec() {
        let classes = vec![
            api::TtlClass { name: "a".into(), ttl_seconds: 60 },
            api::TtlClass { name: "b".into(), ttl_seconds: 30 },
        ];
        let published = BTreeMap::from([("a".to_string(), 90)]);
        let settings = serde_json::json!({"growFactor": 2.0});
        let input = cache_input(&classes, &published, CacheStats::default(), &api::Slo::default(), Some(&settings));
        assert_eq!((input.classes[0].ttl_seconds, input.classes[0].spec_ttl_seconds), (90, 60));
        assert_eq!((input.classes[1].ttl_seconds, input.classes[1].spec_ttl_seconds), (30, 30));
        assert_eq!(input.settings, r#"{"growFactor":2.0}"#);

        let routes = vec![api::RouteLimit { route: "/a".into(), requests_per_second: 100, burst: 200 }];
        let published = BTreeMap::from([("/a".to_string(), PublishedLimit { requests_per_second: 70, burst: 140 })]);
        let traffic =
            BTreeMap::from([("/a".to_string(), RouteTraffic { requests_per_second: 50.0, ..Default::default() })]);
        let input = rate_limit_input(&routes, &published, &traffic, &api::Slo::default(), None);
        let r = &input.routes[0];
        assert_eq!((r.requests_per_second, r.burst, r.spec_requests_per_second, r.spec_burst), (70, 140, 100, 200));
        assert_eq!(r.traffic.map(|t| t.requests_per_second), Some(50.0));
    }
}
