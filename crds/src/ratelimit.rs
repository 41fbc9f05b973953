//! The `rateLimit` section: per-route token buckets.

use crate::PolicyRef;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Rate limits published to the app (token bucket per route), optionally adapted by a policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Limits by route. Routes are unique.
    #[schemars(length(min = 1, max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["route"]))]
    pub routes: Vec<RouteLimit>,
    /// Optional WASM policy that adapts limits to observed traffic and the SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// Prometheus base URL the policy's traffic observations come from, per route (label `route` on the standard
    /// `http_requests_total` counter and `http_request_duration_seconds` histogram, in the profile's namespace).
    /// Without it the policy sees no traffic and holds the limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s@]+$"))]
    pub prometheus: Option<String>,
    /// Credentials, CA and headers for `prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_access: Option<crate::PrometheusAccess>,
}

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
