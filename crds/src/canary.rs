//! The `canary` section: progressive delivery judged on Prometheus.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Canary rollout of new versions of the target (primary/canary, as in Flagger).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
// A stage is analysed one step interval after it starts, so a step as long as the deadline can never finish one.
// Absent fields are read as their defaults: the API server fills them in, client-side checks may not.
#[x_kube(validation = Rule::new(
    "duration(has(self.stepInterval) ? self.stepInterval : '1m') < duration(has(self.progressDeadline) ? self.progressDeadline : '10m')"
).message("canary.stepInterval must be shorter than canary.progressDeadline").field_path(".stepInterval"))]
// Rollout hooks run at every analysis, in order: together they must end before the next one is due.
#[x_kube(validation = Rule::new(
    "!has(self.analysis) || !has(self.analysis.webhooks) || self.analysis.webhooks.filter(h, (has(h.type) ? h.type : 'rollout') == 'rollout').map(h, (has(h.timeout) ? duration(h.timeout) : duration('10s')).getSeconds()).sum() < duration(has(self.stepInterval) ? self.stepInterval : '1m').getSeconds()"
).message("the rollout webhooks' timeouts must add up to less than canary.stepInterval").field_path(".analysis.webhooks"))]
pub struct CanarySpec {
    /// Traffic weights in percent, strictly increasing in (0, 100] and ending at 100.
    #[serde(default = "default_stages")]
    #[schemars(length(min = 1, max = 20), inner(range(min = 1, max = 100)))]
    #[x_kube(
        validation = Rule::new("self.isSorted() && self.all(x, self.exists_one(y, y == x))").message("canary.stages must be strictly increasing"),
        validation = Rule::new("self[self.size() - 1] == 100").message("canary.stages must end at 100")
    )]
    pub stages: Vec<u32>,
    /// How long each stage holds before it is analysed, e.g. `1m`; at least `2s` (each analysis is a batch of
    /// queries on a Prometheus other tenants share).
    #[serde(default = "default_step_interval")]
    #[schemars(schema_with = "crate::duration::duration_schema")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('2s')").message("canary.stepInterval must be at least 2s"))]
    pub step_interval: String,
    /// Longest a run may take in any phase (waiting for pods, analysis, promotion) before it fails.
    #[serde(default = "default_progress_deadline")]
    #[schemars(schema_with = "crate::duration::duration_schema")]
    pub progress_deadline: String,
    /// How each stage is judged.
    #[serde(default)]
    pub analysis: AnalysisSpec,
    /// How traffic reaches the canary.
    #[serde(default)]
    pub routing: RoutingSpec,
    /// Where the run's milestones are posted (started, stage advanced, check failed, rolled back, succeeded), with
    /// the reason and the values; besides the operator's cluster-wide receiver, if it has one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub notifications: Vec<crate::NotificationTarget>,
}

fn default_stages() -> Vec<u32> {
    vec![10, 25, 50, 100]
}
fn default_step_interval() -> String {
    "1m".into()
}
fn default_progress_deadline() -> String {
    "10m".into()
}

impl Default for CanarySpec {
    fn default() -> Self {
        Self {
            stages: default_stages(),
            step_interval: default_step_interval(),
            progress_deadline: default_progress_deadline(),
            analysis: AnalysisSpec::default(),
            routing: RoutingSpec::default(),
            notifications: Vec::new(),
        }
    }
}

/// Analysis of a stage on Prometheus. Latency and error-rate gates default to the profile's SLO.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Prometheus base URL, e.g. `http://prometheus.monitoring:9090`. Default: the operator's
    /// `--default-prometheus` (chart `controller.defaultPrometheus`), else `http://prometheus-operated.monitoring:9090`
    /// (the Prometheus Operator's Service). Left unset, an upgrade of the operator's default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s@]+$"))]
    pub prometheus: Option<String>,
    /// Credentials, CA and headers for `prometheus` (an open Prometheus needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_access: Option<crate::PrometheusAccess>,
    /// How often the gates are also checked within a stage, over the data gathered since the stage began holding (or
    /// was last analysed): a failure counts toward `failureLimit` at once, so a bad canary rolls back within a few
    /// scrapes of turning bad instead of at the end of its step. Promotion still needs the whole step to pass.
    /// Default: two scrape intervals of the Prometheus (its global `scrape_interval`; 30s when it cannot be read).
    /// `0s`, or a value not shorter than `stepInterval`, turns it off; otherwise at least `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::duration_schema")]
    #[x_kube(validation = Rule::new("duration(self) == duration('0s') || duration(self) >= duration('2s')").message("canary.analysis.checkInterval must be 0s (off) or at least 2s"))]
    pub check_interval: Option<String>,
    /// Failed checks in a run that roll it back: the run rolls back at the `failureLimit`-th failed check (Flagger's
    /// `threshold`), so 1 rolls back at the first.
    #[serde(default = "default_failure_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_limit: u32,
    /// Requests the canary must have served in the window for the built-in gates to count.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 0, max = 100000000))]
    pub min_requests: u32,
    /// What missing or thin data means for the built-in gates.
    #[serde(default)]
    pub on_no_data: NoDataPolicy,
    /// p99 latency gate in ms; default `slo.p99LatencyMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600000))]
    pub max_p99_latency_ms: Option<u32>,
    /// Error-rate gate in percent; default `slo.errorRatePercent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 100.0").message("maxErrorRatePercent must be in (0, 100]"))]
    pub max_error_rate_percent: Option<f64>,
    /// PromQL templates of the built-in gates. `{{namespace}}`, `{{target}}`, `{{canary}}` (pods of the canary)
    /// and `{{interval}}` are substituted. A query left out is the running operator's built-in one, never written
    /// into the stored profile: an upgrade that improves it reaches every profile that did not write its own.
    #[serde(default)]
    pub queries: GateQueries,
    /// Runs whose every analysis is kept, newest first, each in a ConfigMap `<profile>-run-<run id>` owned by the
    /// profile (status keeps only the last 5 analyses); older runs' ConfigMaps are deleted. Default 10; 0 keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub run_history_limit: Option<u32>,
    /// Webhooks called during the run, as Flagger's `analysis.webhooks` (same types and payload): load tests at
    /// every analysis, gates, and hooks before and after the run. Their results are in `status.canary.hooks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new(crate::hooks::HOOK_TYPE_BUDGET_RULE).message("the webhooks of one type must have timeouts adding up to at most 60s"))]
    pub webhooks: Vec<crate::Hook>,
    /// Extra metrics with bounds.
    #[serde(default)]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<MetricCheck>,
}

/// Prometheus of an analysis that names none, when the operator is given no `--default-prometheus`.
pub const DEFAULT_PROMETHEUS: &str = "http://prometheus-operated.monitoring:9090";

impl AnalysisSpec {
    /// The Prometheus this analysis asks: its own, else the cluster default, else [`DEFAULT_PROMETHEUS`].
    pub fn prometheus_url<'a>(&'a self, cluster_default: Option<&'a str>) -> &'a str {
        self.prometheus.as_deref().or(cluster_default).unwrap_or(DEFAULT_PROMETHEUS)
    }
}
/// Runs kept in history when `runHistoryLimit` is unset.
pub const DEFAULT_RUN_HISTORY: u32 = 10;

fn default_failure_limit() -> u32 {
    2
}
fn default_min_requests() -> u32 {
    20
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            prometheus: None,
            prometheus_access: None,
            check_interval: None,
            failure_limit: default_failure_limit(),
            min_requests: default_min_requests(),
            on_no_data: NoDataPolicy::default(),
            max_p99_latency_ms: None,
            max_error_rate_percent: None,
            queries: GateQueries::default(),
            run_history_limit: None,
            webhooks: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

/// PromQL of the built-in gates (for the standard `http_request_duration_seconds` histogram and
/// `http_requests_total` counter). A query left out is the running operator's built-in one, read at each analysis:
/// it is never written into the stored profile, so an upgrade that improves a built-in query reaches every profile
/// that did not write its own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GateQueries {
    /// p99 latency in seconds. Default: the 0.99 quantile of `http_request_duration_seconds_bucket` over the
    /// canary's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub p99_latency_seconds: Option<String>,
    /// Error ratio in [0, 1]. The default counts zero 5xx as 0 (apps export the 5xx series only after the first
    /// one) and gives no value when the canary served no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub error_ratio: Option<String>,
    /// Requests served in the window. Default: the increase of `http_requests_total` over the canary's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub requests: Option<String>,
}

/// The built-in p99 latency query.
pub const DEFAULT_LATENCY_QUERY: &str = r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}])))"#;
// Apps export `code="500"` only after their first 5xx: `or vector(0)` makes a clean canary a measured 0 %, while
// the denominator (every request of the canary's pods) still makes no traffic at all an empty answer: no data.
/// The built-in error ratio query.
pub const DEFAULT_ERROR_QUERY: &str = r#"(sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*", code=~"5.."}[{{interval}}])) or vector(0)) / sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}]))"#;
/// The built-in requests query.
pub const DEFAULT_REQUESTS_QUERY: &str =
    r#"sum(increase(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}]))"#;

/// Built-in queries of earlier versions, which their CRD wrote into every stored profile (`default:` in the
/// schema): such a value is read as unset, so those profiles follow the built-in query of the running version too.
/// Literal texts, never edited: a built-in query that changes adds its old text here.
const EARLIER_DEFAULTS: [&str; 3] = [
    // Written by the CRD of 0.1.0.
    r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}])))"#,
    r#"(sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*", code=~"5.."}[{{interval}}])) or vector(0)) / sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}]))"#,
    r#"sum(increase(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}]))"#,
];

impl GateQueries {
    /// The p99 latency query in force: the profile's own, else the built-in one.
    pub fn p99_latency_seconds(&self) -> &str {
        own(&self.p99_latency_seconds).unwrap_or(DEFAULT_LATENCY_QUERY)
    }
    /// The error ratio query in force.
    pub fn error_ratio(&self) -> &str {
        own(&self.error_ratio).unwrap_or(DEFAULT_ERROR_QUERY)
    }
    /// The requests query in force.
    pub fn requests(&self) -> &str {
        own(&self.requests).unwrap_or(DEFAULT_REQUESTS_QUERY)
    }
}

/// A query the user wrote: set, and not a built-in query an earlier CRD wrote for them.
fn own(query: &Option<String>) -> Option<&str> {
    query.as_deref().filter(|q| !EARLIER_DEFAULTS.contains(q))
}

/// What a check does when Prometheus returns no value or too few requests.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum NoDataPolicy {
    /// Hold the stage and check again (the progress deadline still applies).
    #[default]
    Wait,
    /// Count it as a failed check.
    Fail,
}

/// A custom metric with bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.query) != has(self.templateRef)").message("metric needs exactly one of query or templateRef"))]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max) || has(self.templateRef)").message("metric needs min or max"))]
#[x_kube(validation = Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("metric min must be <= max"))]
#[x_kube(validation = Rule::new("!has(self.args) || has(self.templateRef)").message("metric args need a templateRef"))]
pub struct MetricCheck {
    /// Metric name, used in status and events.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,62}$"))]
    pub name: String,
    /// PromQL returning one value; same placeholders as the built-in gates. Exactly one of `query` and
    /// `templateRef`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// A shared query instead of `query`: an `AnalysisTemplate` of the profile's namespace, or the administrator's
    /// `ClusterAnalysisTemplate`. Read at every analysis, so a change to the template applies at the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<crate::TemplateRef>,
    /// Values of the template's arguments, by name: 1 to 253 letters, digits, `_`, `.`, `:`, `/` and `-` only (a value can
    /// never change the query's shape).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "minLength": 1, "maxLength": 253, "pattern": "^[A-Za-z0-9_.:/-]+$"}))]
    pub args: BTreeMap<String, String>,
    /// Lowest value that passes. With a template, this metric's `min` and `max` replace the template's bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest value that passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// What no data means for this metric (default `wait`, or the template's `onNoData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<NoDataPolicy>,
}

/// Traffic routing: replica ratio behind the target's Service (default), or Gateway API HTTPRoute weights.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.canaryPort) || !has(self.httpRoute) || self.canaryPort == self.httpRoute.port").message("routing.canaryPort must be httpRoute.port when both are set"))]
pub struct RoutingSpec {
    /// HTTPRoute whose backend weights split traffic between `<target>-primary` and `<target>-canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteRef>,
    /// Port of `<target>-canary`, a Service reaching only the canary's pods whatever the weight: the address load
    /// and smoke tests aim at during the analysis (`<target>-canary.<namespace>.svc:<port>`). With `httpRoute` that
    /// Service exists anyway, on its port; by replica ratio it exists when this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub canary_port: Option<u32>,
}

/// An HTTPRoute in the profile's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRef {
    /// HTTPRoute name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Backend port of the primary and canary Services.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u32,
}
