//! The `rateLimit` section's rules: the CEL rules' twin, enforcement included.

use super::*;

pub(super) fn check_rate_limit(c: &mut Check, rl: &RateLimitSpec, canary: Option<&CanarySpec>) {
    c.ensure(!rl.routes.is_empty() && rl.routes.len() <= 256, "spec.rateLimit.routes", || {
        "must list 1 to 256 routes".into()
    });
    c.unique(rl.routes.iter().map(|r| r.route.as_str()), "spec.rateLimit.routes", "route");
    for (i, r) in rl.routes.iter().enumerate() {
        let f = format!("spec.rateLimit.routes[{i}]");
        c.len(&r.route, 1, 256, &format!("{f}.route"));
        c.range(r.requests_per_second, 1, 10_000_000, &format!("{f}.requestsPerSecond"));
        c.range(r.burst, 1, 100_000_000, &format!("{f}.burst"));
        c.ensure(r.burst >= r.requests_per_second, &f, || {
            format!("burst must be >= requestsPerSecond, got burst {} < {}", r.burst, r.requests_per_second)
        });
    }
    if let Some(p) = &rl.policy {
        check_policy(c, p, "spec.rateLimit.policy");
    }
    if let Some(candidate) = &rl.candidate {
        check_candidate(c, candidate, rl.policy.is_some(), "spec.rateLimit");
    }
    if let Some(url) = &rl.prometheus {
        let ok = is_url(url, HTTP) && !url.contains('@');
        c.pattern(ok, url, "spec.rateLimit.prometheus", "an http:// or https:// URL without credentials");
    }
    if let Some(access) = &rl.prometheus_access {
        check_prometheus_access(c, access, "spec.rateLimit.prometheusAccess");
    }
    if let Some(e) = &rl.enforcement {
        check_enforcement(c, rl, e, canary);
    }
}

/// What a gateway can enforce: the CEL rules on `rateLimit` and the spec's rule on the HTTPRoute.
fn check_enforcement(c: &mut Check, rl: &RateLimitSpec, e: &Enforcement, canary: Option<&CanarySpec>) {
    let field = "spec.rateLimit.enforcement";
    c.ensure(e.mode == EnforcementMode::EnvoyGateway || e.envoy_gateway.is_none(), field, || {
        "envoyGateway settings need mode envoyGateway".into()
    });
    if let Some(route) = e.envoy_gateway.as_ref().and_then(|g| g.http_route.as_ref()) {
        c.object_name(route, &format!("{field}.envoyGateway.httpRoute"));
    }
    if let Some(q) = &e.rejections_query {
        c.len(q, 1, 4096, &format!("{field}.rejectionsQuery"));
    }
    if e.mode == EnforcementMode::Contract {
        return;
    }
    let window = e.window();
    // The CEL rules are on `rateLimit`, reported at `routes` (fieldPath): each message names the route.
    let f = "spec.rateLimit.routes";
    for (i, r) in rl.routes.iter().enumerate() {
        let at = format!("routes[{i}] {:?}", r.route);
        c.ensure(r.burst == r.requests_per_second, f, || {
            format!(
                "{at}: with gateway enforcement a route's burst must equal its requestsPerSecond (a gateway has no \
                 separate burst), got burst {} and requestsPerSecond {}",
                r.burst, r.requests_per_second
            )
        });
        let requests = u64::from(r.requests_per_second) * window.seconds();
        c.ensure(requests <= MAX_WINDOW_REQUESTS, f, || {
            format!(
                "{at}: {requests} requests per {window:?} is above {MAX_WINDOW_REQUESTS}, the most a gateway counts"
            )
        });
        if e.mode == EnforcementMode::EnvoyGateway {
            c.ensure(r.route.starts_with('/'), f, || {
                format!("{at}: envoyGateway enforcement matches routes as path prefixes: each must start with /")
            });
        }
        if e.mode == EnforcementMode::RateLimitService {
            c.ensure(!r.route.contains('.'), f, || {
                format!("{at}: a route enforced by the rate-limit service may not contain '.' (its metrics split names at dots)")
            });
        }
    }
    if e.mode == EnforcementMode::EnvoyGateway {
        c.ensure(
            e.scope() == LimitScope::Global || rl.routes.len() <= MAX_LOCAL_RULES,
            "spec.rateLimit.routes",
            || {
                format!(
                    "Envoy Gateway takes at most {MAX_LOCAL_RULES} local rate-limit rules, got {} routes: use \
                 envoyGateway.scope Global for more",
                    rl.routes.len()
                )
            },
        );
        let canary_route = canary.and_then(|c| c.routing.http_route.as_ref());
        let own = e.envoy_gateway.as_ref().and_then(|g| g.http_route.as_ref());
        c.ensure(own.is_some() || canary_route.is_some(), field, || {
            "envoyGateway enforcement needs an HTTPRoute: set it, or spec.canary.routing.httpRoute".into()
        });
    }
}
