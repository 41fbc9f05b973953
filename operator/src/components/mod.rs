//! Desired state, computed by pure functions from the profile and what was observed. One module per component.

pub mod app_config;
pub mod cache;
pub mod labels;
pub mod pools;
pub mod rate_limit;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use perf_operator_api::PerformanceProfile;
use serde::Serialize;

/// What the cluster looked like when the reconcile started; the input of the pure builders.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Replicas of the target Deployment (or its HPA's maximum), if the target exists.
    pub target_replicas: Option<u32>,
    /// Password already in the provisioned Redis Secret, kept so a reconcile never rotates it by accident.
    pub redis_password: Option<String>,
    /// What an external Redis answered this reconcile, read once for readiness, pool caps and cache policies;
    /// `None` when the profile has no external Redis.
    pub external_redis: Option<Result<crate::redis_stats::RedisStats, ExternalRedisFailure>>,
}

/// Why an external Redis could not be read: a reason for the `CacheReady` condition and a message.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalRedisFailure {
    pub reason: &'static str,
    pub message: String,
}

/// The Kubernetes objects a profile owns.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OwnedObjects {
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
}

impl OwnedObjects {
    /// All objects as JSON values, in apply order (config before workloads).
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        out.extend(self.secrets.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.config_maps.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.services.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.deployments.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out
    }
}

/// Everything the operator wants in the cluster for one profile, before external systems are consulted.
#[derive(Clone, Debug)]
pub struct Desired {
    pub objects: OwnedObjects,
    pub cache: Option<cache::CachePlan>,
    pub pools: Option<pools::PoolsPlan>,
    pub rate_limits: Option<rate_limit::RateLimitPlan>,
}

/// Builds the desired state. Pure: same inputs, same output (the Redis password is passed in through `observed` or
/// `new_password`).
pub fn desired(profile: &PerformanceProfile, observed: &Observed, new_password: &str) -> Desired {
    let mut objects = OwnedObjects::default();
    let cache = profile.spec.cache.as_ref().map(|spec| {
        let password = observed.redis_password.as_deref().unwrap_or(new_password);
        cache::build(profile, spec, password, &mut objects)
    });
    let pools = profile.spec.pools.as_ref().map(|spec| pools::plan(spec, profile.spec.cache.as_ref(), observed));
    let rate_limits = profile.spec.rate_limit.as_ref().map(rate_limit::plan);
    Desired { objects, cache, pools, rate_limits }
}
