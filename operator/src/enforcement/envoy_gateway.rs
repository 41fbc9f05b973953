//! Envoy Gateway: a BackendTrafficPolicy (`gateway.envoyproxy.io/v1alpha1`) on the service's HTTPRoute, one
//! rate-limit rule per route. A rule matches its route as a path prefix and leaves out the routes nested under it,
//! so a request counts against the longest route it falls under, as the app contract's routes do (a rule's client
//! selectors are ANDed; Envoy Gateway's schema takes 8, so a route with more than 7 routes under it is refused by
//! the API server and reported). Envoy Gateway's bucket holds `requests` tokens refilled each window: there is no
//! separate burst.

use super::{Backend, Enforced, NotExpressible, Rendered, fill, object_name};
use crate::components::labels;
use perf_operator_api::{LimitScope, MAX_LOCAL_RULES, MAX_WINDOW_REQUESTS, PerformanceProfile, Window};
use serde_json::{Value, json};

pub const API_VERSION: &str = "gateway.envoyproxy.io/v1alpha1";
pub const KIND: &str = "BackendTrafficPolicy";
pub const PLURAL: &str = "backendtrafficpolicies";

/// Envoy Gateway, with the administrator's rejections query if any.
pub struct EnvoyGateway {
    pub rejections_query: Option<String>,
}

impl Backend for EnvoyGateway {
    fn render(&self, profile: &PerformanceProfile, limits: &[Enforced]) -> Result<Rendered, NotExpressible> {
        let field = "spec.rateLimit.enforcement.envoyGateway";
        let enforcement = profile.spec.rate_limit.as_ref().and_then(|r| r.enforcement.as_ref());
        let route = http_route(profile).ok_or_else(|| NotExpressible {
            field: format!("{field}.httpRoute"),
            message: "no HTTPRoute to attach the policy to: set it, or spec.canary.routing.httpRoute".into(),
        })?;
        let scope = enforcement.map(|e| e.scope()).unwrap_or_default();
        if scope == LimitScope::Local && limits.len() > MAX_LOCAL_RULES {
            return Err(NotExpressible {
                field: "spec.rateLimit.routes".into(),
                message: format!(
                    "Envoy Gateway takes at most {MAX_LOCAL_RULES} local rules, got {} routes: use scope Global",
                    limits.len()
                ),
            });
        }
        let rules = limits.iter().enumerate().map(|(i, l)| rule(i, l, limits)).collect::<Result<Vec<_>, _>>()?;
        let key = if scope == LimitScope::Global { "global" } else { "local" };
        let name = object_name(profile);
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": labels::meta(profile, name.clone(), "rate-limit"),
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route}],
                "rateLimit": { key: { "rules": rules } },
            },
        });
        Ok(Rendered::Policy { api_version: API_VERSION.into(), kind: KIND.into(), plural: PLURAL.into(), name, object })
    }

    fn rejections(&self, profile: &PerformanceProfile, route: &str) -> Option<String> {
        self.rejections_query.as_deref().map(|t| fill(t, profile, route))
    }
}

/// Envoy Gateway's schema takes at most this many client selectors in a rule.
pub const MAX_SELECTORS: usize = 8;

/// What Envoy Gateway's schema would refuse in a rendered policy, by route: for `validate` and `plan`, before an
/// API server says it (the controller sends it and reports the API server's answer).
pub fn schema_problems(object: &Value) -> Vec<(String, String)> {
    let rules = ["local", "global"].iter().find_map(|k| object["spec"]["rateLimit"][k]["rules"].as_array());
    let mut problems = Vec::new();
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let selectors = rule["clientSelectors"].as_array().map_or(0, Vec::len);
        if selectors > MAX_SELECTORS {
            problems.push((
                format!("spec.rateLimit.routes[{i}]"),
                format!(
                    "{} routes lie right under this route: Envoy Gateway's schema takes {MAX_SELECTORS} client selectors \
                     in a rule (the route and {} left out), so the API server would refuse the policy",
                    selectors - 1,
                    MAX_SELECTORS - 1
                ),
            ));
        }
    }
    problems
}

/// The HTTPRoute the policy targets: the enforcement's, else the canary's.
pub fn http_route(profile: &PerformanceProfile) -> Option<String> {
    let enforcement = profile.spec.rate_limit.as_ref().and_then(|r| r.enforcement.as_ref());
    let own = enforcement.and_then(|e| e.envoy_gateway.as_ref()).and_then(|g| g.http_route.clone());
    let canary = || profile.spec.canary.as_ref()?.routing.http_route.as_ref().map(|r| r.name.clone());
    own.or_else(canary)
}

/// The rule of limit `i`: its path prefix, minus the routes nested under it.
fn rule(i: usize, limit: &Enforced, all: &[Enforced]) -> Result<Value, NotExpressible> {
    let field = format!("spec.rateLimit.routes[{i}]");
    if limit.requests > MAX_WINDOW_REQUESTS {
        return Err(NotExpressible {
            field,
            message: format!(
                "{} requests per {:?} is above Envoy Gateway's {MAX_WINDOW_REQUESTS}",
                limit.requests, limit.window
            ),
        });
    }
    let prefix = prefix_of(&limit.route);
    let under: Vec<&str> =
        all.iter().map(|o| prefix_of(&o.route)).filter(|other| *other != prefix && is_under(other, prefix)).collect();
    // Only the routes right under it: one left out takes the routes under it along.
    let nested: Vec<&str> = under.iter().copied().filter(|n| !under.iter().any(|m| m != n && is_under(n, m))).collect();
    let mut selectors = vec![json!({"path": {"type": "PathPrefix", "value": prefix}})];
    selectors.extend(nested.iter().map(|n| json!({"path": {"type": "PathPrefix", "value": n, "invert": true}})));
    Ok(json!({"clientSelectors": selectors, "limit": {"requests": limit.requests, "unit": unit(limit.window)}}))
}

/// A route as a path prefix: without a trailing `/` (Envoy Gateway matches `/api` as `/api` and `/api/...`).
fn prefix_of(route: &str) -> &str {
    match route.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

/// Whether path prefix `inner` falls under `outer` at a `/` boundary.
fn is_under(inner: &str, outer: &str) -> bool {
    outer == "/" || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
}

fn unit(window: Window) -> &'static str {
    match window {
        Window::Second => "Second",
        Window::Minute => "Minute",
        Window::Hour => "Hour",
    }
}
