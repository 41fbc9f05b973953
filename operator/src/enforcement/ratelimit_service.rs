//! Envoy's rate-limit service (envoyproxy/ratelimit): a ConfigMap `<profile>-ratelimit` holding one configuration
//! file, domain `<namespace>_<profile>`, one descriptor `route` per route. Proxies ask the service with that domain
//! and a `route` descriptor (Istio's EnvoyFilter or Contour's rate-limit policy, see the user guide); the service
//! counts in fixed windows, so there is no separate burst. Its over-limit counter, scraped by Prometheus, is where
//! the rejections are read.

use super::{Backend, Enforced, NotExpressible, Rendered, label_value, object_name};
use crate::components::labels;
use perf_operator_api::{MAX_WINDOW_REQUESTS, PerformanceProfile, Window};
use serde::Serialize;
use serde_json::json;

/// The descriptor key of a route.
pub const ROUTE_KEY: &str = "route";

pub struct RateLimitService;

/// The service's configuration file.
#[derive(Serialize)]
struct Config<'a> {
    domain: String,
    descriptors: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
struct Descriptor<'a> {
    key: &'static str,
    value: &'a str,
    rate_limit: Limit,
}

#[derive(Serialize)]
struct Limit {
    unit: &'static str,
    requests_per_unit: u64,
}

impl Backend for RateLimitService {
    fn render(&self, profile: &PerformanceProfile, limits: &[Enforced]) -> Result<Rendered, NotExpressible> {
        let mut descriptors = Vec::with_capacity(limits.len());
        for (i, l) in limits.iter().enumerate() {
            let field = format!("spec.rateLimit.routes[{i}]");
            if l.requests > MAX_WINDOW_REQUESTS {
                let message =
                    format!("{} requests per {:?} is above the service's {MAX_WINDOW_REQUESTS}", l.requests, l.window);
                return Err(NotExpressible { field, message });
            }
            if l.route.contains('.') {
                let message = "a route enforced by the rate-limit service may not contain '.' (its metrics split names \
                               at dots, so the rejections could not be read)";
                return Err(NotExpressible { field: format!("{field}.route"), message: message.into() });
            }
            let rate_limit = Limit { unit: unit(l.window), requests_per_unit: l.requests };
            descriptors.push(Descriptor { key: ROUTE_KEY, value: &l.route, rate_limit });
        }
        let domain = domain(profile);
        let config =
            serde_saphyr::to_string(&Config { domain: domain.clone(), descriptors }).map_err(|e| NotExpressible {
                field: "spec.rateLimit".into(),
                message: format!("the configuration did not serialise: {e}"),
            })?;
        let name = object_name(profile);
        let key = format!("{domain}.yaml");
        let object = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": labels::meta(profile, name.clone(), "rate-limit"),
            "data": { key.clone(): config.clone() },
        });
        Ok(Rendered::ConfigMap { name, key, config, object })
    }

    fn rejections(&self, profile: &PerformanceProfile, route: &str) -> Option<String> {
        // The service names a stat `<domain>.<key>_<value>` and writes `:` and `|` as `_` (statsd's separators).
        let key = format!("{ROUTE_KEY}_{}", route.replace([':', '|'], "_"));
        Some(format!(
            r#"sum(rate(ratelimit_service_rate_limit_over_limit{{domain="{}", key1="{}"}}[1m])) or vector(0)"#,
            label_value(&domain(profile)),
            label_value(&key)
        ))
    }
}

/// `<namespace>_<profile>`, the profile's dots written `_`: one per profile (names have no `_`), and without the
/// dots the service's metric names split at.
pub fn domain(profile: &PerformanceProfile) -> String {
    let namespace = kube::ResourceExt::namespace(profile).unwrap_or_else(|| "default".into());
    format!("{namespace}_{}", kube::ResourceExt::name_any(profile).replace('.', "_"))
}

fn unit(window: Window) -> &'static str {
    match window {
        Window::Second => "second",
        Window::Minute => "minute",
        Window::Hour => "hour",
    }
}
