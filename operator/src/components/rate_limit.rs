//! Rate-limit component: the token buckets published to the app (a policy may adapt them later).

use perf_operator_api::{RateLimitSpec, RouteLimit};
use serde::Serialize;

/// Limits to publish, in spec order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPlan {
    pub routes: Vec<RouteLimit>,
}

/// The spec's limits, as published when no policy changes them.
pub fn plan(spec: &RateLimitSpec) -> RateLimitPlan {
    RateLimitPlan { routes: spec.routes.clone() }
}
