//! The `rateLimit` section: per-route token buckets.

use crate::PolicyRef;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Rate limits published to the app (token bucket per route), optionally adapted by a policy, and enforced by a
/// gateway when `enforcement` says so.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(GATEWAY_BURST_RULE).message("with gateway enforcement a route's burst must equal its requestsPerSecond (a gateway has no separate burst)").field_path(".routes"))]
#[x_kube(validation = Rule::new("!has(self.enforcement) || self.enforcement.mode != 'envoyGateway' || self.routes.all(r, r.route.startsWith('/'))").message("envoyGateway enforcement matches routes as path prefixes: each route must start with /").field_path(".routes"))]
#[x_kube(validation = Rule::new("!has(self.enforcement) || self.enforcement.mode != 'rateLimitService' || self.routes.all(r, !r.route.contains('.'))").message("rateLimitService enforcement: a route may not contain '.' (the service's metrics split names at dots)").field_path(".routes"))]
#[x_kube(validation = Rule::new(LOCAL_RULES_RULE).message("Envoy Gateway takes at most 16 local rate-limit rules: use envoyGateway.scope Global for more routes").field_path(".routes"))]
#[x_kube(validation = Rule::new(crate::policy_candidate::NEEDS_POLICY_RULE).message("rateLimit.candidate: a candidate is compared with the active policy: set spec.rateLimit.policy beside it").field_path(".candidate"))]
#[x_kube(validation = Rule::new(WINDOW_RULE).message("a route's requestsPerSecond times the window's seconds must be at most 4294967295").field_path(".routes"))]
pub struct RateLimitSpec {
    /// Limits by route. Routes are unique.
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["route"]))]
    pub routes: Vec<RouteLimit>,
    /// Optional WASM policy that adapts limits to observed traffic and the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// A policy run in the shadow of `policy` on the same input: compared with it each round, never published
    /// (`kubectl perf policy promote` makes it the policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<crate::PolicyCandidate>,
    /// Prometheus base URL the policy's traffic observations come from, per route (label `route` on the standard
    /// `http_requests_total` counter and `http_request_duration_seconds` histogram, in the profile's namespace).
    /// Without it the policy sees no traffic and holds the limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s@]+$"))]
    pub prometheus: Option<String>,
    /// Credentials, CA and headers for `prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_access: Option<crate::PrometheusAccess>,
    /// Where the limits are enforced beyond the app contract (default: the contract only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<crate::Enforcement>,
}

const GATEWAY_BURST_RULE: &str = "!has(self.enforcement) || self.enforcement.mode == 'contract' || self.routes.all(r, r.burst == r.requestsPerSecond)";
const LOCAL_RULES_RULE: &str = "!has(self.enforcement) || self.enforcement.mode != 'envoyGateway' || (has(self.enforcement.envoyGateway) && has(self.enforcement.envoyGateway.scope) && self.enforcement.envoyGateway.scope == 'Global') || size(self.routes) <= 16";
const WINDOW_RULE: &str = "!has(self.enforcement) || self.enforcement.mode == 'contract' || self.routes.all(r, r.requestsPerSecond * (!has(self.enforcement.window) ? 1 : self.enforcement.window == 'Hour' ? 3600 : self.enforcement.window == 'Minute' ? 60 : 1) <= 4294967295)";

/// Token bucket of one route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.burst >= self.requestsPerSecond").message("burst must be >= requestsPerSecond"))]
pub struct RouteLimit {
    /// Route the app matches, e.g. `/api/v1/risk` or a route name.
    #[schemars(length(min = 1, max = 256))]
    pub route: String,
    /// Sustained rate (bucket refill) in requests per second.
    #[schemars(range(min = 1, max = 10000000))]
    pub requests_per_second: u32,
    /// Bucket size: the most requests accepted at once.
    #[schemars(range(min = 1, max = 100000000))]
    pub burst: u32,
}
