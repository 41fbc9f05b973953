//! Building policy inputs from the profile's spec, what is published now and what was observed; and the spec
//! values as an output (the `UseSpec` fallback and the value before the first decision).

use std::collections::BTreeMap;

use perf_operator_api as api;

use crate::types::{
    CacheInput, CacheOutput, CacheStats, ClassDecision, RateLimitInput, RateLimitOutput, RouteLimit, RouteState,
    RouteTraffic, Slo, TtlClass,
};

impl From<&api::Slo> for Slo {
    fn from(slo: &api::Slo) -> Self {
        Self { p99_latency_ms: slo.p99_latency_ms, error_rate_percent: slo.error_rate_percent }
    }
}

/// The opaque settings as the JSON text the policies receive (`{}` when unset).
pub fn settings_text(settings: Option<&serde_json::Value>) -> String {
    settings.map_or_else(|| "{}".to_string(), serde_json::Value::to_string)
}

impl CacheInput {
    /// `published`: TTLs published now (e.g. `status.cache.ttlSeconds`); a class not there starts at its spec TTL.
    pub fn from_spec(
        classes: &[api::TtlClass],
        published: &BTreeMap<String, u32>,
        stats: CacheStats,
        slo: &api::Slo,
        settings: Option<&serde_json::Value>,
    ) -> Self {
        let classes = classes
            .iter()
            .map(|c| TtlClass {
                name: c.name.clone(),
                ttl_seconds: published.get(&c.name).copied().unwrap_or(c.ttl_seconds),
                spec_ttl_seconds: c.ttl_seconds,
            })
            .collect();
        Self { classes, stats, slo: slo.into(), settings: settings_text(settings) }
    }
}

impl CacheOutput {
    /// The spec TTLs, every class admitted.
    pub fn from_spec(classes: &[api::TtlClass]) -> Self {
        let classes = classes.iter().map(|c| ClassDecision { ttl_seconds: c.ttl_seconds, admit: true }).collect();
        Self { classes, memory: None, reason: "spec values".to_string() }
    }

    /// TTL per class name (outputs are positional), as published in the app contract and `status.cache.ttlSeconds`.
    pub fn ttl_seconds(&self, input: &CacheInput) -> BTreeMap<String, u32> {
        input.classes.iter().zip(&self.classes).map(|(c, d)| (c.name.clone(), d.ttl_seconds)).collect()
    }
}

impl RateLimitInput {
    /// `published`: limits published now by route; a route not there starts at its spec limits. `traffic`: what
    /// was observed by route; a route not there has no data.
    pub fn from_spec(
        routes: &[api::RouteLimit],
        published: &BTreeMap<String, RouteLimit>,
        traffic: &BTreeMap<String, RouteTraffic>,
        slo: &api::Slo,
        settings: Option<&serde_json::Value>,
    ) -> Self {
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
        Self { routes, slo: slo.into(), settings: settings_text(settings) }
    }
}

impl RateLimitOutput {
    /// The spec limits.
    pub fn from_spec(routes: &[api::RouteLimit]) -> Self {
        let routes =
            routes.iter().map(|r| RouteLimit { requests_per_second: r.requests_per_second, burst: r.burst }).collect();
        Self { routes, reason: "spec values".to_string() }
    }

    /// Limits per route (outputs are positional), as published in the app contract.
    pub fn by_route(&self, input: &RateLimitInput) -> BTreeMap<String, RouteLimit> {
        input.routes.iter().zip(&self.routes).map(|(r, l)| (r.route.clone(), *l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_input_starts_from_published_or_spec() {
        let classes = vec![
            api::TtlClass { name: "a".into(), ttl_seconds: 60 },
            api::TtlClass { name: "b".into(), ttl_seconds: 30 },
        ];
        let published = BTreeMap::from([("a".to_string(), 90)]);
        let settings = serde_json::json!({"growFactor": 2.0});
        let input =
            CacheInput::from_spec(&classes, &published, CacheStats::default(), &api::Slo::default(), Some(&settings));
        assert_eq!((input.classes[0].ttl_seconds, input.classes[0].spec_ttl_seconds), (90, 60));
        assert_eq!((input.classes[1].ttl_seconds, input.classes[1].spec_ttl_seconds), (30, 30));
        assert_eq!(input.settings, r#"{"growFactor":2.0}"#);
        assert_eq!(
            CacheOutput::from_spec(&classes).ttl_seconds(&input),
            BTreeMap::from([("a".into(), 60), ("b".into(), 30)])
        );
    }

    #[test]
    fn rate_limit_input_joins_published_and_traffic_by_route() {
        let routes = vec![api::RouteLimit { route: "/a".into(), requests_per_second: 100, burst: 200 }];
        let published = BTreeMap::from([("/a".to_string(), RouteLimit { requests_per_second: 70, burst: 140 })]);
        let traffic =
            BTreeMap::from([("/a".to_string(), RouteTraffic { requests_per_second: 50.0, ..Default::default() })]);
        let input = RateLimitInput::from_spec(&routes, &published, &traffic, &api::Slo::default(), None);
        let r = &input.routes[0];
        assert_eq!((r.requests_per_second, r.burst, r.spec_requests_per_second, r.spec_burst), (70, 140, 100, 200));
        assert_eq!(r.traffic.map(|t| t.requests_per_second), Some(50.0));
        assert_eq!(input.settings, "{}");
        let spec = RateLimitOutput::from_spec(&routes).by_route(&input);
        assert_eq!(spec["/a"], RouteLimit { requests_per_second: 100, burst: 200 });
    }
}
