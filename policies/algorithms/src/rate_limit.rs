//! `adaptive-rate-limit`: AIMD on token-bucket limits. A route that breaks the SLO (p99 or error rate) has its rate
//! multiplied by `decreaseFactor`; a healthy route (below `healthyHeadroom` of both objectives) gains
//! `increaseFraction` of its spec rate; in between, or without data, it keeps its limits. Rates stay within
//! `[minFactor, maxFactor]` times the spec rate; the burst keeps the spec's burst/rate ratio.

use crate::{RateLimitSettings, Slo, bound, scale_clamped};

/// Largest rate and burst the API accepts.
const MAX_RATE: u32 = 10_000_000;
const MAX_BURST: u32 = 100_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct RouteTraffic {
    pub requests_per_second: f64,
    pub p99_latency_ms: f64,
    pub error_percent: f64,
    pub rejected_per_second: f64,
}

/// One route: current and spec limits, and what was observed. No name, as in the WIT: routes are positional.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouteState {
    pub requests_per_second: u32,
    pub burst: u32,
    pub spec_requests_per_second: u32,
    pub spec_burst: u32,
    pub traffic: Option<RouteTraffic>,
}

/// What [`decide`] reads of a route. The guests implement it for their WIT records, so they hand their input to the
/// algorithm as it is, without copying it into [`RouteState`] first.
pub trait Route {
    fn requests_per_second(&self) -> u32;
    fn spec_requests_per_second(&self) -> u32;
    fn spec_burst(&self) -> u32;
    /// What was observed; `None` when there is no data yet.
    fn traffic(&self) -> Option<RouteTraffic>;
}

impl Route for RouteState {
    fn requests_per_second(&self) -> u32 {
        self.requests_per_second
    }

    fn spec_requests_per_second(&self) -> u32 {
        self.spec_requests_per_second
    }

    fn spec_burst(&self) -> u32 {
        self.spec_burst
    }

    fn traffic(&self) -> Option<RouteTraffic> {
        self.traffic
    }
}

/// Limits for the route at the same position in the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RouteLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

/// The decision; `D` is the caller's per-route limit type (the guests use their WIT record).
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitDecision<D = RouteLimit> {
    pub routes: Vec<D>,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Breaching,
    Healthy,
    Marginal,
    NoData,
}

pub fn health(traffic: Option<&RouteTraffic>, slo: &Slo, settings: &RateLimitSettings) -> Health {
    let Some(t) = traffic else { return Health::NoData };
    let p99_slo = f64::from(slo.p99_latency_ms);
    if t.p99_latency_ms > p99_slo || t.error_percent > slo.error_rate_percent {
        Health::Breaching
    } else if t.p99_latency_ms <= p99_slo * settings.healthy_headroom
        && t.error_percent <= slo.error_rate_percent * settings.healthy_headroom
    {
        Health::Healthy
    } else {
        Health::Marginal
    }
}

/// New limits of one route.
pub fn next_limit(state: &impl Route, health: Health, settings: &RateLimitSettings) -> RouteLimit {
    let spec = state.spec_requests_per_second().max(1);
    let low = bound(spec, settings.min_factor, MAX_RATE);
    let high = bound(spec, settings.max_factor, MAX_RATE);
    let current = state.requests_per_second().max(1);
    let requests_per_second = match health {
        Health::Breaching => scale_clamped(current, settings.decrease_factor, low, high),
        Health::Healthy => {
            let step = bound(spec, settings.increase_fraction, MAX_RATE);
            current.saturating_add(step).clamp(low, high)
        }
        Health::Marginal | Health::NoData => current.clamp(low, high),
    };
    let burst_ratio = f64::from(state.spec_burst().max(spec)) / f64::from(spec);
    let burst = scale_clamped(requests_per_second, burst_ratio, requests_per_second, MAX_BURST);
    RouteLimit { requests_per_second, burst }
}

pub fn decide<R: Route, D: From<RouteLimit>>(
    routes: &[R],
    slo: &Slo,
    settings: &RateLimitSettings,
) -> RateLimitDecision<D> {
    let mut counts = [0usize; 3];
    let routes = routes
        .iter()
        .map(|r| {
            let h = health(r.traffic().as_ref(), slo, settings);
            match h {
                Health::Breaching => counts[0] += 1,
                Health::Healthy => counts[1] += 1,
                Health::Marginal | Health::NoData => counts[2] += 1,
            }
            D::from(next_limit(r, h, settings))
        })
        .collect();
    RateLimitDecision { routes, reason: reason(counts) }
}

/// "3 routes backed off, 1 recovering, 16 held". Written with `itoa`: `format!` and its `core::fmt` machinery were
/// 4 % of a warm call of the WASM guest (perf profile).
fn reason([backed_off, recovering, held]: [usize; 3]) -> String {
    let mut digits = itoa::Buffer::new();
    let mut reason = String::with_capacity(48);
    reason.push_str(digits.format(backed_off));
    reason.push_str(" routes backed off, ");
    reason.push_str(digits.format(recovering));
    reason.push_str(" recovering, ");
    reason.push_str(digits.format(held));
    reason.push_str(" held");
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLO: Slo = Slo { p99_latency_ms: 100, error_rate_percent: 1.0 };

    fn route(rps: u32, p99: f64, errors: f64) -> RouteState {
        RouteState {
            requests_per_second: rps,
            burst: rps * 2,
            spec_requests_per_second: 1000,
            spec_burst: 2000,
            traffic: Some(RouteTraffic {
                requests_per_second: 500.0,
                p99_latency_ms: p99,
                error_percent: errors,
                rejected_per_second: 0.0,
            }),
        }
    }

    fn after(r: RouteState) -> RouteLimit {
        let d: RateLimitDecision = decide(&[r], &SLO, &RateLimitSettings::default());
        d.routes[0]
    }

    #[test]
    fn reason_counts_each_kind() {
        let routes =
            [route(1000, 250.0, 0.0), route(500, 10.0, 0.0), RouteState { traffic: None, ..route(500, 0.0, 0.0) }];
        let d: RateLimitDecision = decide(&routes, &SLO, &RateLimitSettings::default());
        assert_eq!(d.reason, "1 routes backed off, 1 recovering, 1 held");
    }

    #[test]
    fn slow_route_backs_off_multiplicatively() {
        assert_eq!(after(route(1000, 250.0, 0.0)), RouteLimit { requests_per_second: 700, burst: 1400 });
    }

    #[test]
    fn failing_route_backs_off() {
        assert_eq!(after(route(1000, 10.0, 5.0)).requests_per_second, 700);
    }

    #[test]
    fn healthy_route_recovers_additively_up_to_spec() {
        assert_eq!(after(route(500, 10.0, 0.0)).requests_per_second, 600);
        assert_eq!(after(route(950, 10.0, 0.0)).requests_per_second, 1000);
    }

    #[test]
    fn marginal_or_unobserved_route_holds() {
        assert_eq!(after(route(500, 90.0, 0.0)).requests_per_second, 500);
        assert_eq!(after(RouteState { traffic: None, ..route(500, 0.0, 0.0) }).requests_per_second, 500);
    }

    #[test]
    fn rate_never_falls_below_floor() {
        assert_eq!(after(route(100, 900.0, 50.0)).requests_per_second, 100);
    }
}
