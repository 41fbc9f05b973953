//! SLO alerts: the `PrometheusRule` generated from `spec.slo`, in the style of Sloth and Pyrra. The service's error
//! ratio and p99 latency are recorded over several windows, from the same query templates the canary judges on
//! (`spec.canary.analysis.queries`, or their defaults), with `{{canary}}` standing for every pod of the target; the
//! alerts are the SRE workbook's multi-window, multi-burn-rate pairs on the error budget.
//!
//! The templates are a tenant's PromQL, evaluated by a shared Prometheus for as long as the rule exists: every
//! selector of every expression must be pinned to the profile's namespace (`namespace="<ns>"`), checked on the
//! parsed query, or no rule is generated.

use super::labels;
use perf_canary::scope::Unscoped;
use perf_operator_api::PerformanceProfile;
use serde_json::{Value, json};

pub const API_VERSION: &str = "monitoring.coreos.com/v1";
pub const KIND: &str = "PrometheusRule";

/// Windows the error ratio is recorded over: every window an alert below reads.
const ERROR_WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
/// Windows the p99 latency is recorded over.
const LATENCY_WINDOWS: [&str; 3] = ["5m", "30m", "1h"];

/// One burn-rate alert: both windows must burn the budget at `factor` times the sustainable rate.
struct Burn {
    long: &'static str,
    short: &'static str,
    factor: f64,
}

/// Page: 2 % of a 30-day budget in an hour, or 5 % in six hours. Ticket: 10 % in a day, or 10 % in three days.
const PAGE: [Burn; 2] =
    [Burn { long: "1h", short: "5m", factor: 14.4 }, Burn { long: "6h", short: "30m", factor: 6.0 }];
const TICKET: [Burn; 2] =
    [Burn { long: "1d", short: "2h", factor: 3.0 }, Burn { long: "3d", short: "6h", factor: 1.0 }];

/// The rule group of a profile, ready to apply or to hand to `promtool`.
#[derive(Clone, Debug, PartialEq)]
pub struct RulePlan {
    /// Name of the PrometheusRule, `<profile>-slo`.
    pub name: String,
    /// `spec.groups` of the PrometheusRule (and the `groups` of a Prometheus rule file).
    pub groups: Value,
    /// Names of the alerts, for status.
    pub alerts: Vec<String>,
}

/// What the profile asks of its SLO rule.
#[derive(Clone, Debug, PartialEq)]
pub enum SloRule {
    /// `spec.slo.alerts.enabled: false`: a rule applied before is deleted.
    Disabled {
        name: String,
    },
    /// A template is not a query that can be scoped to the profile's namespace, or a label is not one Prometheus or
    /// Kubernetes takes.
    Refused {
        /// `AlertsReady` reason: `InvalidLabels` or `QueryRefused`.
        reason: &'static str,
        name: String,
        message: String,
    },
    Desired(RulePlan),
}

impl SloRule {
    pub fn name(&self) -> &str {
        match self {
            SloRule::Disabled { name } | SloRule::Refused { name, .. } => name,
            SloRule::Desired(plan) => &plan.name,
        }
    }
}

/// Name of a profile's PrometheusRule.
pub fn rule_name(profile: &PerformanceProfile) -> String {
    format!("{}-slo", kube::ResourceExt::name_any(profile))
}

/// Decides the rule of a profile. Pure.
pub fn decide(profile: &PerformanceProfile) -> SloRule {
    let name = rule_name(profile);
    if !profile.spec.slo.alerts.enabled {
        return SloRule::Disabled { name };
    }
    let problems = profile.spec.slo.alerts.label_problems();
    if !problems.is_empty() {
        let message = problems.iter().map(|(f, m)| format!("spec.slo.alerts.{f}: {m}")).collect::<Vec<_>>().join("; ");
        return SloRule::Refused { name, reason: "InvalidLabels", message };
    }
    match plan(profile) {
        Ok(plan) => SloRule::Desired(plan),
        Err(message) => SloRule::Refused { name, reason: "QueryRefused", message },
    }
}

/// Identity of the profile's series: the labels every recorded series and alert carries.
struct Scope {
    namespace: String,
    profile: String,
    service: String,
}

impl Scope {
    fn labels(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("namespace".into(), json!(self.namespace));
        m.insert("perf_profile".into(), json!(self.profile));
        m.insert("service".into(), json!(self.service));
        m
    }
    /// Selector of the profile's recorded series.
    fn selector(&self) -> String {
        format!("{{namespace=\"{}\", perf_profile=\"{}\"}}", self.namespace, self.profile)
    }
}

fn plan(profile: &PerformanceProfile) -> Result<RulePlan, String> {
    let scope = Scope {
        namespace: kube::ResourceExt::namespace(profile).unwrap_or_else(|| "default".into()),
        profile: kube::ResourceExt::name_any(profile),
        service: profile.spec.target_ref.name.clone(),
    };
    let queries = profile.spec.canary.as_ref().map(|c| c.analysis.queries.clone()).unwrap_or_default();
    let mut records = Vec::new();
    for window in ERROR_WINDOWS {
        let expr = render(queries.error_ratio(), &scope, window, "errorRatio")?;
        records.push(record(&format!("perf:slo_error_ratio:rate{window}"), &expr, &scope));
    }
    for window in LATENCY_WINDOWS {
        let expr = render(queries.p99_latency_seconds(), &scope, window, "p99LatencySeconds")?;
        records.push(record(&format!("perf:slo_latency_p99_seconds:{window}"), &expr, &scope));
    }
    let budget = profile.spec.slo.error_rate_percent / 100.0;
    let objective_s = f64::from(profile.spec.slo.p99_latency_ms) / 1000.0;
    // The objectives as series, so a dashboard can draw burn rates and thresholds from Prometheus alone.
    records.push(record("perf:slo_objective_error_ratio", &format!("vector({budget})"), &scope));
    records.push(record("perf:slo_objective_latency_seconds", &format!("vector({objective_s})"), &scope));
    let mut alerts = vec![
        burn_alert("PerfErrorBudgetFastBurn", "critical", &PAGE, budget, &scope, &profile.spec.slo.alerts),
        burn_alert("PerfErrorBudgetSlowBurn", "warning", &TICKET, budget, &scope, &profile.spec.slo.alerts),
        latency_alert(objective_s, profile.spec.slo.p99_latency_ms, &scope, &profile.spec.slo.alerts),
    ];
    if let Some(rl) = &profile.spec.rate_limit {
        let (more, alert) = rate_limit_rules(rl, &scope, &profile.spec.slo.alerts);
        records.extend(more);
        alerts.extend(alert);
    }
    let names = alerts.iter().filter_map(|a| a["alert"].as_str().map(String::from)).collect();
    let group_name = format!("perf-operator.{}.{}.slo", scope.namespace, scope.profile);
    let rules: Vec<Value> = records.into_iter().chain(alerts).collect();
    Ok(RulePlan { name: rule_name(profile), groups: json!([{ "name": group_name, "rules": rules }]), alerts: names })
}

/// The rate limits per route from the operator's own series: decided, enforced by a gateway, rejected; and, with
/// a gateway, an alert when it holds something else than what was decided for 15 minutes (a refused or
/// unexpressible policy, a gateway that has not taken it).
fn rate_limit_rules(
    rl: &perf_operator_api::RateLimitSpec,
    scope: &Scope,
    spec: &perf_operator_api::SloAlerts,
) -> (Vec<Value>, Option<Value>) {
    let sel = format!("{{namespace=\"{}\", profile=\"{}\"}}", scope.namespace, scope.profile);
    let series = [
        ("perf:rate_limit_decided_requests_per_second", "perf_operator_rate_limit_decided_requests_per_second"),
        ("perf:rate_limit_enforced_requests_per_second", "perf_operator_rate_limit_enforced_requests_per_second"),
        ("perf:rate_limit_rejected_per_second", "perf_operator_rate_limit_rejected_per_second"),
    ];
    let records = series.iter().map(|(name, metric)| record(name, &format!("max by (route) ({metric}{sel})"), scope));
    let gateway = rl.enforcement.as_ref().is_some_and(|e| e.mode != perf_operator_api::EnforcementMode::Contract);
    let own = scope.selector();
    let expr = format!(
        "perf:rate_limit_enforced_requests_per_second{own} != on (namespace, perf_profile, service, route) \
         perf:rate_limit_decided_requests_per_second{own}"
    );
    let summary = format!("{} enforces other rate limits than decided", scope.service);
    let detail = "the gateway holds a limit other than the one decided for a route; its RateLimitReady says why";
    let alert = gateway.then(|| {
        let mut a = alert("PerfRateLimitNotEnforced", &expr, "warning", &summary, detail, scope, spec);
        a["for"] = json!("15m");
        a
    });
    (records.collect(), alert)
}

/// The PrometheusRule object of a plan, owned by the profile.
pub fn object(profile: &PerformanceProfile, plan: &RulePlan) -> Value {
    let mut meta = labels::meta(profile, plan.name.clone(), "slo-alerts");
    if let Some(labels) = meta.labels.as_mut() {
        // The operator's own labels win: they tie the object to its profile.
        for (k, v) in &profile.spec.slo.alerts.rule_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    json!({ "apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": { "groups": plan.groups } })
}

fn record(name: &str, expr: &str, scope: &Scope) -> Value {
    json!({ "record": name, "expr": expr, "labels": scope.labels() })
}

fn burn_alert(
    name: &str,
    severity: &str,
    burns: &[Burn],
    budget: f64,
    scope: &Scope,
    spec: &perf_operator_api::SloAlerts,
) -> Value {
    let sel = scope.selector();
    let expr = burns
        .iter()
        .map(|b| {
            format!(
                "(perf:slo_error_ratio:rate{long}{sel} > ({f} * {budget}) and perf:slo_error_ratio:rate{short}{sel} > ({f} * {budget}))",
                long = b.long,
                short = b.short,
                f = b.factor,
            )
        })
        .collect::<Vec<_>>()
        .join("\nor\n");
    let windows = burns.iter().map(|b| format!("{}/{} at {}x", b.long, b.short, b.factor)).collect::<Vec<_>>();
    let summary = format!("{} is burning its error budget", scope.service);
    let detail = format!(
        "error ratio above the burn rate over both windows of {} (budget {}% of requests); see perf:slo_error_ratio",
        windows.join(" or "),
        budget * 100.0
    );
    alert(name, &expr, severity, &summary, &detail, scope, spec)
}

fn latency_alert(objective_s: f64, objective_ms: u32, scope: &Scope, spec: &perf_operator_api::SloAlerts) -> Value {
    let sel = scope.selector();
    let expr = format!(
        "perf:slo_latency_p99_seconds:1h{sel} > {objective_s} and perf:slo_latency_p99_seconds:5m{sel} > {objective_s}"
    );
    let summary = format!("{} p99 latency is above its objective", scope.service);
    let detail = format!("p99 above {objective_ms} ms over both 1h and 5m; see perf:slo_latency_p99_seconds");
    alert("PerfLatencyObjectiveMissed", &expr, "critical", &summary, &detail, scope, spec)
}

fn alert(
    name: &str,
    expr: &str,
    severity: &str,
    summary: &str,
    detail: &str,
    scope: &Scope,
    spec: &perf_operator_api::SloAlerts,
) -> Value {
    let mut labels = scope.labels();
    for (k, v) in &spec.alert_labels {
        labels.insert(k.clone(), json!(v));
    }
    labels.insert("severity".into(), json!(severity));
    // No `$value` templating: the text stays the same from one evaluation to the next (and in promtool's tests).
    let description = format!("PerformanceProfile {}/{}: {detail}.", scope.namespace, scope.profile);
    json!({
        "alert": name,
        "expr": expr,
        "labels": labels,
        "annotations": { "summary": summary, "description": description },
    })
}

/// A gate template for the whole service over `window`, checked to be PromQL scoped to the namespace.
fn render(template: &str, scope: &Scope, window: &str, field: &str) -> Result<String, String> {
    let ctx = perf_canary::QueryContext { namespace: scope.namespace.clone(), target: scope.service.clone() };
    // The canary's pods are `<target>-canary-*`; the service's are every `<target>-*`, both tracks together.
    let query = perf_canary::analysis::render(&template.replace("{{canary}}", &scope.service), &ctx, window);
    let at = format!("spec.canary.analysis.queries.{field}");
    match perf_canary::scope::check(&query, &scope.namespace) {
        Ok(0) => Err(format!("{at}: reads no series")),
        Ok(_) => Ok(query),
        Err(Unscoped::Selector { selector, namespace }) => Err(format!(
            "{at}: selector {selector} is not limited to namespace=\"{namespace}\": a rule may only read the profile's own namespace"
        )),
        Err(e) => Err(format!("{at}: {e}")),
    }
}
