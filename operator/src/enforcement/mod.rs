//! Where decided rate limits are enforced: the backend boundary. Each backend turns the limits of a round (the
//! policy's decision, or the spec's) into what it applies, and says where the rejections it makes can be read. The
//! app contract carries the limits whatever the backend; a new gateway (the Gateway API's own rate-limit policy,
//! GEP-5160, once it lands) is one more [`Backend`].

pub mod envoy_gateway;
pub mod ratelimit_service;
pub mod report;
pub mod round;

use perf_operator_api::{EnforcementMode, PerformanceProfile, RouteLimit, Window};
use serde::Serialize;
use serde_json::Value;

/// The limit a gateway enforces on one route: `requests` per `window`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enforced {
    pub route: String,
    pub requests: u64,
    pub window: Window,
}

/// What a backend applies for a round.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "type")]
pub enum Rendered {
    /// Nothing beyond the contract.
    Contract,
    /// An object of a type the cluster may or may not serve (Envoy Gateway's BackendTrafficPolicy).
    Policy { api_version: String, kind: String, plural: String, name: String, object: Value },
    /// A ConfigMap the profile owns (Envoy's rate-limit service configuration).
    ConfigMap { name: String, key: String, config: String, object: Value },
}

impl Rendered {
    /// The object to apply, if any.
    pub fn object(&self) -> Option<&Value> {
        match self {
            Rendered::Contract => None,
            Rendered::Policy { object, .. } | Rendered::ConfigMap { object, .. } => Some(object),
        }
    }
}

/// Why limits cannot be enforced as decided (nothing is applied; the reason is reported).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct NotExpressible {
    pub field: String,
    pub message: String,
}

/// A place limits are enforced.
pub trait Backend {
    /// What to apply for `limits`, or why they cannot be expressed there.
    fn render(&self, profile: &PerformanceProfile, limits: &[Enforced]) -> Result<Rendered, NotExpressible>;
    /// The PromQL of the requests per second this backend rejected on `route`, when it has one of its own.
    fn rejections(&self, profile: &PerformanceProfile, route: &str) -> Option<String>;
}

/// The contract only: the app enforces, its own 429 responses are the rejections.
pub struct Contract;

impl Backend for Contract {
    fn render(&self, _: &PerformanceProfile, _: &[Enforced]) -> Result<Rendered, NotExpressible> {
        Ok(Rendered::Contract)
    }
    fn rejections(&self, profile: &PerformanceProfile, route: &str) -> Option<String> {
        let namespace = kube::ResourceExt::namespace(profile).unwrap_or_else(|| "default".into());
        Some(format!(
            r#"sum(rate(http_requests_total{{namespace="{namespace}", route="{}", code="429"}}[1m])) or vector(0)"#,
            label_value(route)
        ))
    }
}

/// The backend a profile's spec names.
pub fn backend(profile: &PerformanceProfile, admin: &AdminDefaults) -> Box<dyn Backend + Send + Sync> {
    let enforcement = profile.spec.rate_limit.as_ref().and_then(|r| r.enforcement.as_ref());
    match enforcement.map(|e| e.mode) {
        None | Some(EnforcementMode::Contract) => Box::new(Contract),
        Some(EnforcementMode::EnvoyGateway) => {
            Box::new(envoy_gateway::EnvoyGateway { rejections_query: admin.envoy_gateway_rejections.clone() })
        }
        Some(EnforcementMode::RateLimitService) => Box::new(ratelimit_service::RateLimitService),
    }
}

/// The administrator's defaults (operator flags).
#[derive(Clone, Debug, Default)]
pub struct AdminDefaults {
    /// `--envoy-gateway-rejections-query`: PromQL template (`{{namespace}}`, `{{route}}`, `{{profile}}`) of an Envoy
    /// Gateway's rejections on one route; the administrator's, so it may read the gateway's own namespace.
    pub envoy_gateway_rejections: Option<String>,
}

/// The limits to enforce: each published route's requests per second times the window, in spec order.
pub fn enforced(profile: &PerformanceProfile, published: &[RouteLimit]) -> Vec<Enforced> {
    let window = profile.spec.rate_limit.as_ref().and_then(|r| r.enforcement.as_ref()).map(|e| e.window());
    let window = window.unwrap_or_default();
    published
        .iter()
        .map(|r| Enforced {
            route: r.route.clone(),
            requests: u64::from(r.requests_per_second) * window.seconds(),
            window,
        })
        .collect()
}

/// The rejections query of `route`: the profile's own (placeholders filled), else the backend's.
pub fn rejections_query(profile: &PerformanceProfile, backend: &dyn Backend, route: &str) -> Option<String> {
    let own =
        profile.spec.rate_limit.as_ref().and_then(|r| r.enforcement.as_ref()).and_then(|e| e.rejections_query.as_ref());
    match own {
        Some(template) => Some(fill(template, profile, route)),
        None => backend.rejections(profile, route),
    }
}

/// `{{namespace}}`, `{{route}}` and `{{profile}}` filled in (the route escaped for a PromQL string).
pub fn fill(template: &str, profile: &PerformanceProfile, route: &str) -> String {
    let namespace = kube::ResourceExt::namespace(profile).unwrap_or_else(|| "default".into());
    template
        .replace("{{namespace}}", &namespace)
        .replace("{{profile}}", &kube::ResourceExt::name_any(profile))
        .replace("{{route}}", &label_value(route))
}

/// `plan`'s `rateLimit` section: the mode, what a gateway would enforce, the rendered object (a rate-limit service
/// configuration as the file the service reads), why it cannot be expressed, and where rejections are read.
pub fn plan_section(profile: &PerformanceProfile, round: &round::Round) -> Value {
    let backend = backend(profile, &AdminDefaults::default());
    let rejections: std::collections::BTreeMap<&str, Option<String>> = round
        .enforced
        .iter()
        .map(|e| (e.route.as_str(), rejections_query(profile, backend.as_ref(), &e.route)))
        .collect();
    let mut section = serde_json::json!({ "mode": round.mode, "rejectionsQueries": rejections });
    if round.mode != EnforcementMode::Contract {
        section["enforced"] = serde_json::json!(round.enforced);
    }
    match round.apply.as_ref().map(|(r, _)| r) {
        Some(Rendered::ConfigMap { key, config, .. }) => {
            section["configFile"] = serde_json::json!({ "name": key, "content": config });
        }
        Some(Rendered::Policy { object, .. }) => section["policy"] = object.clone(),
        _ => {}
    }
    if let Some(e) = &round.not_expressible {
        section["notExpressible"] = serde_json::json!({ "field": e.field, "message": e.message });
    }
    section
}

/// What enforcing the spec's own limits would meet, offline (`validate`, `plan`): limits a backend cannot express,
/// and what Envoy Gateway's schema would refuse. Decided limits are checked again at each round.
pub fn offline_problems(profile: &PerformanceProfile) -> Vec<(String, String)> {
    let Some(spec) = &profile.spec.rate_limit else { return Vec::new() };
    match backend(profile, &AdminDefaults::default()).render(profile, &enforced(profile, &spec.routes)) {
        Err(e) => vec![(e.field, e.message)],
        Ok(Rendered::Policy { object, .. }) => envoy_gateway::schema_problems(&object),
        Ok(_) => Vec::new(),
    }
}

/// Why the profile's own rejections query may not run: it reads beyond the profile's namespace (a shared
/// Prometheus, values shown in status), is not PromQL, or names an unknown placeholder.
pub fn rejections_problem(profile: &PerformanceProfile) -> Option<(String, String)> {
    let enforcement = profile.spec.rate_limit.as_ref()?.enforcement.as_ref()?;
    let query = enforcement.rejections_query.as_ref()?;
    let field = "spec.rateLimit.enforcement.rejectionsQuery".to_string();
    if !route_only_in_strings(query) {
        return Some((field, ROUTE_OUTSIDE_STRING.into()));
    }
    let filled = fill(query, profile, "/");
    if let Some(start) = filled.find("{{") {
        let unknown: String = filled[start..].chars().take_while(|c| *c != '}').collect();
        return Some((
            field,
            format!("unknown placeholder {unknown}}}}}: use {{{{namespace}}}}, {{{{route}}}} or {{{{profile}}}}"),
        ));
    }
    let namespace = kube::ResourceExt::namespace(profile).unwrap_or_else(|| "default".into());
    match perf_canary::scope::check(&filled, &namespace) {
        Ok(0) => Some((field, "the query reads no series".into())),
        Ok(_) => None,
        Err(e) => Some((field, e.to_string())),
    }
}

/// Why a template's `{{route}}` must sit in a string: a route is the tenant's text, escaped for a double-quoted
/// PromQL string; anywhere else it would be PromQL of their choosing, read past the namespace check.
pub const ROUTE_OUTSIDE_STRING: &str =
    "{{route}} may only appear inside a double-quoted string, e.g. route=\"{{route}}\" (a route is the profile's text)";

/// Whether every `{{route}}` of `template` lies inside a double-quoted PromQL string.
pub fn route_only_in_strings(template: &str) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in template.char_indices() {
        if !in_string && template[i..].starts_with("{{route}}") {
            return false;
        }
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ => {}
        }
    }
    true
}

/// A value safe inside a PromQL double-quoted string.
pub fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The object's name: `<profile>-ratelimit` for every backend that applies one.
pub fn object_name(profile: &PerformanceProfile) -> String {
    format!("{}-ratelimit", kube::ResourceExt::name_any(profile))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
