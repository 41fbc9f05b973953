//! Builders of what the operator publishes, pure functions of the spec and of values decided in [`crate::decide`].
//! One module per component.

pub mod app_config;
pub mod cache;
pub mod labels;
pub mod pool_limits;
pub mod pools;
pub mod rate_limit;
pub mod redis_auth;
pub mod redis_exporter;
pub mod redis_persistence;
pub mod slo_rules;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde::Serialize;

/// The Kubernetes objects a profile owns.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OwnedObjects {
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub services: Vec<Service>,
    /// Workloads the profile may have owned before and must not any more (Redis changing kind when persistence is
    /// turned on or off): deleted if they exist and belong to the profile.
    #[serde(skip)]
    pub retired: Vec<Retired>,
}

/// A workload, by kind and name, that the profile no longer wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retired {
    Deployment(String),
    StatefulSet(String),
}

impl OwnedObjects {
    /// All objects as JSON values, in apply order (config before workloads).
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        out.extend(self.secrets.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.config_maps.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.services.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.deployments.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out.extend(self.stateful_sets.iter().filter_map(|o| serde_json::to_value(o).ok()));
        out
    }
}
