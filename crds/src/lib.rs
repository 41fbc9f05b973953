//! The `PerformanceProfile` custom resource (`perf.operator.dev/v1alpha1`).
//!
//! This crate holds only the API: types, their OpenAPI schema with the validation the API server enforces (schema
//! bounds and CEL rules), and the same rules in Rust ([`validation`]) for `perf-operator validate` and `plan`.
//! Field doc comments become `kubectl explain` text.

pub mod alerts;
pub mod analysis_template;
pub mod cache;
pub mod canary;
pub mod clickhouse;
pub mod definition;
pub mod duration;
pub mod enforcement;
pub mod hooks;
pub mod notifications;
pub mod policy;
pub mod policy_candidate;
pub mod policy_status;
pub mod pools;
pub mod prometheus_access;
pub mod quantity;
pub mod ratelimit;
pub mod ssa;
pub mod status;
pub mod validation;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use alerts::*;
pub use analysis_template::*;
pub use cache::*;
pub use canary::*;
pub use clickhouse::*;
pub use definition::{crd, template_crds};
pub use enforcement::*;
pub use hooks::*;
pub use notifications::*;
pub use policy::*;
pub use policy_candidate::*;
pub use policy_status::*;
pub use pools::*;
pub use prometheus_access::*;
pub use ratelimit::*;
pub use status::*;

/// API group of every resource in this crate.
pub const GROUP: &str = "perf.operator.dev";
/// Annotation on a pod template carrying the app contract's checksum (`appConfig.rolloutOnChange`): a change rolls the
/// pods, and the canary's run id ignores it (a contract change is not a new version of the app).
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "perf.operator.dev/config-checksum";
/// Field manager used for every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "perf-operator";

/// Desired performance set-up for one service: its SLO, cache, connection pools, ClickHouse tuning, rate limits,
/// canary rollout and WASM policies. Every section but `targetRef` is optional; a section left out is not managed.
// kube's derive takes one `printcolumn(...)` per column; clippy reads them as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "perf.operator.dev",
    version = "v1alpha1",
    kind = "PerformanceProfile",
    doc = "Desired performance set-up for one service: SLO, cache, connection pools, ClickHouse tuning, rate limits, canary rollout and WASM policies.",
    namespaced,
    shortname = "perfprofile",
    shortname = "pp",
    category = "perf",
    status = "PerformanceProfileStatus",
    derive = "Default",
    derive = "PartialEq",
    cel,
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "the Deployment the profile is for"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "the Ready condition: True, False or Unknown"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Ready, Progressing, Degraded or Suspended"
    ),
    printcolumn(
        name = "Stage",
        type_ = "string",
        json_path = ".status.canary.stage",
        description = "the canary run's stage, from 1 (0 without a run)"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canary.weight",
        description = "the canary traffic percentage the stage asks for"
    ),
    printcolumn(
        name = "Achieved",
        type_ = "integer",
        json_path = ".status.canary.achievedWeight",
        description = "the canary traffic percentage in place (by route weights or by replica ratio)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "time since the object was created"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.rateLimit) || !has(self.rateLimit.enforcement) || self.rateLimit.enforcement.mode != 'envoyGateway' || (has(self.rateLimit.enforcement.envoyGateway) && has(self.rateLimit.enforcement.envoyGateway.httpRoute)) || (has(self.canary) && has(self.canary.routing) && has(self.canary.routing.httpRoute))").message("rateLimit.enforcement: envoyGateway needs envoyGateway.httpRoute or canary.routing.httpRoute").field_path(".rateLimit.enforcement"))]
pub struct PerformanceProfileSpec {
    /// The workload this profile is for.
    pub target_ref: TargetRef,
    /// Service-level objective; the default gate for canary analysis and the input of policies.
    #[serde(default)]
    pub slo: Slo,
    /// Redis cache for the service: provisioned by the operator or external, and the TTL classes the app uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Connection pool sizes for ClickHouse, PostgreSQL and Redis, fixed or derived from declared load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pools: Option<PoolsSpec>,
    /// ClickHouse tables to tune: projections, data-skipping indexes and column codecs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickHouseSpec>,
    /// Per-route token-bucket rate limits published to the app, optionally adapted by a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Progressive delivery of new versions of the target, judged on Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// How the app contract ConfigMap reaches the app.
    #[serde(default)]
    pub app_config: AppConfigSpec,
    /// Stop acting on this profile: nothing is applied, a canary run is frozen where it is (its progress deadline
    /// stops), status says `Suspended`. Deleting a suspended profile still cleans up. Set back to false to resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Reference to the workload a profile is for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the target, as Flagger's and Argo's references write it; only `apps/v1` (a Deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self == 'apps/v1'").message("targetRef.apiVersion must be apps/v1 (a Deployment)"))]
    pub api_version: Option<String>,
    /// Kind of the target; only `Deployment` is supported.
    #[serde(default)]
    pub kind: TargetKind,
    /// Name of the target in the profile's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

/// Kinds of workload a profile can target.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TargetKind {
    #[default]
    Deployment,
}

/// Service-level objective of the target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Slo {
    /// 99th percentile latency objective in milliseconds.
    #[serde(default = "default_p99_ms")]
    #[schemars(range(min = 1, max = 600000))]
    pub p99_latency_ms: u32,
    /// Error-rate objective in percent of requests, in (0, 100].
    #[serde(default = "default_error_rate")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 100.0").message("errorRatePercent must be in (0, 100]"))]
    pub error_rate_percent: f64,
    /// Prometheus alerts on this objective.
    #[serde(default)]
    pub alerts: SloAlerts,
}

fn default_p99_ms() -> u32 {
    150
}
fn default_error_rate() -> f64 {
    0.1
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            p99_latency_ms: default_p99_ms(),
            error_rate_percent: default_error_rate(),
            alerts: SloAlerts::default(),
        }
    }
}

/// Delivery of the app contract ConfigMap `<profile>-perf`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppConfigSpec {
    /// When true, a change of the ConfigMap's content rolls the target out, through a checksum annotation on its
    /// pod template (`perf.operator.dev/config-checksum`).
    #[serde(default)]
    pub rollout_on_change: bool,
}

/// Reference to a key of a Secret in the profile's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret in the profile's namespace holding a user name and a password (as CloudNativePG's `<cluster>-app` and
/// most database operators write them: keys `username` and `password`); never logged or put in status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Secret name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key of the user name.
    #[serde(default = "default_user_key")]
    pub user_key: String,
    /// Key of the password.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_user_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}

impl CredentialsSecretRef {
    /// The user-name key as a [`SecretKeyRef`].
    pub fn user(&self) -> SecretKeyRef {
        SecretKeyRef { name: self.name.clone(), key: self.user_key.clone() }
    }
    /// The password key as a [`SecretKeyRef`].
    pub fn password(&self) -> SecretKeyRef {
        SecretKeyRef { name: self.name.clone(), key: self.password_key.clone() }
    }
}

impl PerformanceProfile {
    /// Name of the app contract ConfigMap of this profile.
    pub fn app_config_name(&self) -> String {
        format!("{}-perf", kube::ResourceExt::name_any(self))
    }
}
