//! `adaptive-rate-limit`: the example rate-limit policy (built-in default). AIMD on token-bucket limits: back off
//! when p99 or errors break the SLO, recover when healthy. The algorithm lives in `perf-policy-algorithms`; this
//! crate only converts between the WIT types and it.

// The export glue wit-bindgen generates takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

use perf_policy_algorithms::{RateLimitSettings, Slo, rate_limit};

wit_bindgen::generate!({ path: "../../wit", world: "rate-limit-policy" });

use perf::policy::types::RouteLimit;

struct AdaptiveRateLimit;

impl Guest for AdaptiveRateLimit {
    fn validate_settings(settings: String) -> Result<(), String> {
        RateLimitSettings::parse(&settings).map(|_| ())
    }

    fn evaluate(input: RateLimitInput) -> Result<RateLimitOutput, String> {
        let settings = RateLimitSettings::parse_cached(&input.settings)?;
        let routes: Vec<rate_limit::RouteState> = input
            .routes
            .into_iter()
            .map(|r| rate_limit::RouteState {
                route: r.route,
                requests_per_second: r.requests_per_second,
                burst: r.burst,
                spec_requests_per_second: r.spec_requests_per_second,
                spec_burst: r.spec_burst,
                traffic: r.traffic.map(|t| rate_limit::RouteTraffic {
                    requests_per_second: t.requests_per_second,
                    p99_latency_ms: t.p99_latency_ms,
                    error_percent: t.error_percent,
                    rejected_per_second: t.rejected_per_second,
                }),
            })
            .collect();
        let slo = Slo { p99_latency_ms: input.slo.p99_latency_ms, error_rate_percent: input.slo.error_rate_percent };
        let d = rate_limit::decide(&routes, &slo, &settings);
        Ok(RateLimitOutput {
            routes: d
                .routes
                .into_iter()
                .map(|r| RouteLimit { requests_per_second: r.requests_per_second, burst: r.burst })
                .collect(),
            reason: d.reason,
        })
    }
}

export!(AdaptiveRateLimit);
