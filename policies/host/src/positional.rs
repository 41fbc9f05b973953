//! Outputs are positional (one entry per input class or route, in input order): naming them, and the spec values as
//! an output (what a fallback publishes, and the value before the first decision). Settings as the policies see them.

use std::collections::BTreeMap;

use crate::types::{CacheInput, CacheOutput, ClassDecision, RateLimitInput, RateLimitOutput, RouteLimit};

/// The opaque settings as the JSON text the policies receive (`{}` when unset).
pub fn settings_text(settings: Option<&serde_json::Value>) -> String {
    settings.map_or_else(|| "{}".to_string(), serde_json::Value::to_string)
}

impl CacheInput {
    /// The spec TTLs, every class admitted, no memory advice.
    pub fn spec_output(&self) -> CacheOutput {
        let classes =
            self.classes.iter().map(|c| ClassDecision { ttl_seconds: c.spec_ttl_seconds, admit: true }).collect();
        CacheOutput { classes, memory: None, reason: "spec values".to_string() }
    }
}

impl CacheOutput {
    /// TTL per class name, as published in the app contract and `status.cache.ttlSeconds`.
    pub fn ttl_seconds(&self, input: &CacheInput) -> BTreeMap<String, u32> {
        self.by_class(input).into_iter().map(|(name, d)| (name, d.ttl_seconds)).collect()
    }

    /// Decision per class name.
    pub fn by_class(&self, input: &CacheInput) -> BTreeMap<String, ClassDecision> {
        input.classes.iter().zip(&self.classes).map(|(c, d)| (c.name.clone(), *d)).collect()
    }
}

impl RateLimitInput {
    /// The spec limits.
    pub fn spec_output(&self) -> RateLimitOutput {
        let routes = self
            .routes
            .iter()
            .map(|r| RouteLimit { requests_per_second: r.spec_requests_per_second, burst: r.spec_burst })
            .collect();
        RateLimitOutput { routes, reason: "spec values".to_string() }
    }
}

impl RateLimitOutput {
    /// Limits per route, as published in the app contract.
    pub fn by_route(&self, input: &RateLimitInput) -> BTreeMap<String, RouteLimit> {
        input.routes.iter().zip(&self.routes).map(|(r, l)| (r.route.clone(), *l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{CacheStats, RouteState, Slo, TtlClass};

    #[test]
    fn outputs_are_named_by_the_input_position_and_spec_outputs_use_spec_values() {
        let class = |name: &str, ttl, spec| TtlClass { name: name.into(), ttl_seconds: ttl, spec_ttl_seconds: spec };
        let input = CacheInput {
            classes: vec![class("a", 90, 60), class("b", 30, 30)],
            stats: CacheStats::default(),
            slo: Slo { p99_latency_ms: 150, error_rate_percent: 0.1 },
            settings: settings_text(None),
        };
        assert_eq!(input.settings, "{}");
        assert_eq!(input.spec_output().ttl_seconds(&input), BTreeMap::from([("a".into(), 60), ("b".into(), 30)]));
        assert!(input.spec_output().by_class(&input).values().all(|d| d.admit));

        let route = RouteState {
            route: "/a".into(),
            requests_per_second: 70,
            burst: 140,
            spec_requests_per_second: 100,
            spec_burst: 200,
            traffic: None,
        };
        let input = RateLimitInput {
            routes: vec![route],
            slo: Slo { p99_latency_ms: 150, error_rate_percent: 0.1 },
            settings: settings_text(None),
        };
        assert_eq!(input.spec_output().by_route(&input)["/a"], RouteLimit { requests_per_second: 100, burst: 200 });
    }
}
