//! Shared analysis: `AnalysisTemplate` (namespaced, a team's) and `ClusterAnalysisTemplate` (cluster-scoped, the
//! administrator's), as Flagger's MetricTemplate and Argo Rollouts' (Cluster)AnalysisTemplate. A template is one
//! PromQL query with named arguments, optionally its own Prometheus and access, and default bounds; a profile's
//! `canary.analysis.metrics[]` names it with `templateRef` and passes `args`.
//!
//! A namespaced template is the tenant's own text: its query is held to the profile's namespace like an inline one.
//! A cluster template is the administrator's: its query may read beyond a namespace (a mesh's metrics), and a tenant
//! may use it but not change it; what a tenant passes as an argument is a plain token (see [`is_arg_value`]), so it
//! can never change the query's shape.

use crate::{NoDataPolicy, PrometheusAccess};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A PromQL check a profile's canary analysis can use by name, with arguments. Namespaced: profiles of this
/// namespace use it, and its query is held to their namespace as an inline query is.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "perf.operator.dev",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    doc = "A shared PromQL check that the canary analysis of a namespace's PerformanceProfiles names with `templateRef`, passing arguments.",
    namespaced,
    category = "perf",
    derive = "Default",
    derive = "PartialEq",
    cel,
    printcolumn(
        name = "Prometheus",
        type_ = "string",
        json_path = ".spec.prometheus",
        description = "the template's Prometheus (empty: the profile's, else the operator's default)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "time since the object was created"
    )
)]
#[serde(transparent)]
pub struct AnalysisTemplateSpec {
    pub template: TemplateBody,
}

/// The administrator's shared PromQL check: any profile in the cluster can use it by name, with arguments, and none
/// can change it. Its query may read beyond a namespace (a service mesh's metrics); its `prometheusAccess` names a
/// Secret or ConfigMap in the operator's own namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "perf.operator.dev",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    doc = "The administrator's shared PromQL check: any PerformanceProfile may name it with `templateRef` and pass arguments, none may change it.",
    category = "perf",
    derive = "Default",
    derive = "PartialEq",
    cel,
    printcolumn(
        name = "Prometheus",
        type_ = "string",
        json_path = ".spec.prometheus",
        description = "the template's Prometheus (empty: the profile's, else the operator's default)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "time since the object was created"
    )
)]
#[serde(transparent)]
pub struct ClusterAnalysisTemplateSpec {
    pub template: TemplateBody,
}

/// What both template kinds hold.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("template min must be <= max"))]
#[x_kube(validation = Rule::new("!has(self.prometheusAccess) || has(self.prometheus)").message("template prometheusAccess needs prometheus"))]
pub struct TemplateBody {
    /// PromQL returning one value. `{{args.NAME}}` stands for an argument; `{{namespace}}`, `{{target}}`,
    /// `{{canary}}` (pods of the canary) and `{{interval}}` for what they stand for in the profile's own queries.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// Arguments the query uses, each given by the profile (`args`) or taking its `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<TemplateArg>,
    /// Prometheus base URL for this query; default: the profile's `canary.analysis.prometheus` (and its access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s@]+$"))]
    pub prometheus: Option<String>,
    /// Credentials, CA and headers for `prometheus` (only with it). A namespaced template's Secret and ConfigMap are
    /// in its namespace; a cluster template's in the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_access: Option<PrometheusAccess>,
    /// Lowest value that passes, unless the profile's metric sets its own bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest value that passes, unless the profile's metric sets its own bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// What no data means, unless the profile's metric says (default: hold the stage, `wait`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<NoDataPolicy>,
}

/// One argument of a template.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateArg {
    /// Name, used as `{{args.NAME}}`.
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9_]{0,62}$"))]
    pub name: String,
    /// Value when the profile passes none; without it the profile must pass one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9_.:/-]+$"))]
    pub default: Option<String>,
}

/// The kind of template a metric names.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum TemplateKind {
    /// In the profile's namespace.
    #[default]
    AnalysisTemplate,
    /// Cluster-scoped, the administrator's.
    ClusterAnalysisTemplate,
}

impl std::fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TemplateKind::AnalysisTemplate => "AnalysisTemplate",
            TemplateKind::ClusterAnalysisTemplate => "ClusterAnalysisTemplate",
        })
    }
}

/// A template by kind and name (never another namespace's: a namespaced template is the profile's namespace's).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Template name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// `AnalysisTemplate` (the default, in the profile's namespace) or `ClusterAnalysisTemplate`.
    #[serde(default)]
    pub kind: TemplateKind,
}

/// True when `value` may be passed as an argument: 1 to 253 letters, digits, `_`, `.`, `:`, `/` and `-`. No quote,
/// brace, bracket, space, comma or regex operator, so a value stays inside the label value, range or name the
/// template puts it in and cannot reshape the query (a `.` in a `=~` matcher matches any one character).
pub fn is_arg_value(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.chars().all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
}

/// True for an argument name: a letter, then up to 62 letters, digits or `_`.
pub fn is_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
