//! `adaptive-rate-limit`: the example rate-limit policy (built-in default). AIMD on token-bucket limits: back off
//! when p99 or errors break the SLO, recover when healthy. The algorithm lives in `perf-policy-algorithms`; this
//! crate only connects the WIT types to it.

// The export glue wit-bindgen generates takes one argument per flattened field.
#![allow(clippy::too_many_arguments)]

use perf_policy_algorithms::{RateLimitSettings, Slo, rate_limit};

wit_bindgen::generate!({ path: "../../wit", world: "rate-limit-policy" });

use perf::policy::types::{RouteLimit, RouteState};

// Every call frees all it allocates, so a rewinding arena replaces dlmalloc (see `call-arena`).
#[global_allocator]
static ARENA: call_arena::CallArena = call_arena::CallArena::new();

struct AdaptiveRateLimit;

impl Guest for AdaptiveRateLimit {
    fn validate_settings(settings: String) -> Result<(), String> {
        RateLimitSettings::parse(&settings).map(|_| ())
    }

    fn evaluate(input: RateLimitInput) -> Result<RateLimitOutput, String> {
        let settings = RateLimitSettings::parse_cached(&input.settings)?;
        let slo = Slo { p99_latency_ms: input.slo.p99_latency_ms, error_rate_percent: input.slo.error_rate_percent };
        let d = rate_limit::decide(&input.routes, &slo, &settings);
        Ok(RateLimitOutput { routes: d.routes, reason: d.reason })
    }
}

/// The algorithm reads the WIT records in place.
impl rate_limit::Route for RouteState {
    fn requests_per_second(&self) -> u32 {
        self.requests_per_second
    }

    fn spec_requests_per_second(&self) -> u32 {
        self.spec_requests_per_second
    }

    fn spec_burst(&self) -> u32 {
        self.spec_burst
    }

    fn traffic(&self) -> Option<rate_limit::RouteTraffic> {
        self.traffic.map(|t| rate_limit::RouteTraffic {
            requests_per_second: t.requests_per_second,
            p99_latency_ms: t.p99_latency_ms,
            error_percent: t.error_percent,
            rejected_per_second: t.rejected_per_second,
        })
    }
}

impl From<rate_limit::RouteLimit> for RouteLimit {
    fn from(l: rate_limit::RouteLimit) -> Self {
        Self { requests_per_second: l.requests_per_second, burst: l.burst }
    }
}

export!(AdaptiveRateLimit);
