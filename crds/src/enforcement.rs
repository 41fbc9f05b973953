//! `rateLimit.enforcement`: where the decided limits are enforced. The app contract always carries them; a gateway
//! can enforce them too, so rejected requests never reach the app.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most requests a gateway counts in one window (Envoy Gateway's `limit.requests` is a uint32).
pub const MAX_WINDOW_REQUESTS: u64 = 4_294_967_295;
/// Envoy Gateway takes at most this many local rate-limit rules per policy.
pub const MAX_LOCAL_RULES: usize = 16;

/// Where the decided limits are enforced (default: only published in the app contract, for apps that enforce them
/// in-process).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'envoyGateway' || !has(self.envoyGateway)").message("envoyGateway settings need mode envoyGateway"))]
pub struct Enforcement {
    /// `contract`: only the app contract. `envoyGateway`: also a BackendTrafficPolicy (gateway.envoyproxy.io) on the
    /// service's HTTPRoute. `rateLimitService`: also a ConfigMap `<profile>-ratelimit` holding a configuration of
    /// Envoy's rate-limit service (envoyproxy/ratelimit), for proxies that ask it (Istio, Contour, plain Envoy).
    pub mode: EnforcementMode,
    /// The window a gateway counts requests in: `Second` (default), `Minute` or `Hour`. A route may pass
    /// `requestsPerSecond` times the window's seconds requests per window, all at once if they come so: a gateway
    /// has no separate burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Envoy Gateway's settings (mode `envoyGateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_gateway: Option<EnvoyGatewayEnforcement>,
    /// PromQL giving the requests per second the enforcer rejected on one route, read as the rate-limit policy's
    /// rejections (placeholders `{{namespace}}` and `{{route}}`); held to the profile's namespace like every query a
    /// profile writes. Default by mode: `contract`, the app's 429 responses; `rateLimitService`, the service's
    /// over-limit counter for the profile's domain; `envoyGateway`, the operator's `--envoy-gateway-rejections-query`
    /// (Envoy's local rate-limit counters do not tell routes apart), else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub rejections_query: Option<String>,
}

/// Where limits are enforced.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum EnforcementMode {
    #[default]
    Contract,
    EnvoyGateway,
    RateLimitService,
}

/// A gateway's counting window.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Window {
    #[default]
    Second,
    Minute,
    Hour,
}

impl Window {
    pub fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
        }
    }
}

/// How Envoy Gateway enforces the limits.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyGatewayEnforcement {
    /// The HTTPRoute (in the profile's namespace) the policy targets; default: `spec.canary.routing.httpRoute.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub http_route: Option<String>,
    /// `Local` (default): each Envoy proxy counts alone, at most 16 routes. `Global`: counted across proxies by
    /// Envoy Gateway's rate-limit service, which its administrator must have enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<LimitScope>,
}

/// Envoy Gateway's rate-limit scope.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LimitScope {
    #[default]
    Local,
    Global,
}

impl Enforcement {
    /// The mode's gateway window (`Second` when unset).
    pub fn window(&self) -> Window {
        self.window.unwrap_or_default()
    }

    /// Envoy Gateway's scope (`Local` when unset).
    pub fn scope(&self) -> LimitScope {
        self.envoy_gateway.as_ref().and_then(|e| e.scope).unwrap_or_default()
    }
}
