//! Analysis of a stage on Prometheus: the checks (built-in gates from the SLO plus custom metrics) and the verdict.
//! No data, too few requests and an unreachable Prometheus are never a pass. The HTTP client is `perf_prometheus`
//! (shared with the operator), re-exported here so `perf_canary::Prometheus` keeps working.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use perf_operator_api::{AnalysisRecord, CanarySpec, CheckRecord, CheckVerdict, NoDataPolicy, Slo};
use serde::Serialize;

pub use perf_prometheus::{MetricsSource, Prometheus, QueryError, QueryFuture};

/// What the query placeholders stand for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryContext {
    pub namespace: String,
    /// Target Deployment name.
    pub target: String,
}

/// Substitutes `{{namespace}}`, `{{target}}`, `{{canary}}` (the canary Deployment, whose pods are
/// `<target>-canary-*`) and `{{interval}}`.
pub fn render(template: &str, ctx: &QueryContext, interval: &str) -> String {
    template
        .replace("{{namespace}}", &ctx.namespace)
        .replace("{{target}}", &ctx.target)
        .replace("{{canary}}", &crate::objects::canary_name(&ctx.target))
        .replace("{{interval}}", interval)
}

/// Bounds of a check, in the unit shown (ms, %, requests or the metric's own).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub query: String,
    /// Lowest passing value (inclusive).
    pub min: Option<f64>,
    /// Passing values are below it (strictly when `strict_max`).
    pub max: Option<f64>,
    pub strict_max: bool,
    /// Multiplies the raw value into the shown unit (1000 for s -> ms, 100 for ratio -> %).
    pub scale: f64,
    pub unit: &'static str,
    pub on_no_data: NoDataPolicy,
    /// Gated by `minRequests`: too few requests makes it no data.
    pub needs_traffic: bool,
}

impl Check {
    /// e.g. `< 150 ms`, `>= 20 requests`, `in [0.5, 2]`.
    pub fn threshold(&self) -> String {
        let unit = if self.unit.is_empty() { String::new() } else { format!(" {}", self.unit) };
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("in [{min}, {max}]{unit}"),
            (Some(min), None) => format!(">= {min}{unit}"),
            (None, Some(max)) if self.strict_max => format!("< {max}{unit}"),
            (None, Some(max)) => format!("<= {max}{unit}"),
            (None, None) => "any".into(),
        }
    }

    fn passes(&self, value: f64) -> bool {
        let above_min = self.min.is_none_or(|min| value >= min);
        let below_max = self.max.is_none_or(|max| if self.strict_max { value < max } else { value <= max });
        above_min && below_max
    }
}

/// Name of the request-count check that gates the built-in ones.
pub const REQUESTS: &str = "requests";

/// The checks of a stage: requests, p99 latency and error rate (defaults from the SLO), then custom metrics.
pub fn checks(spec: &CanarySpec, slo: &Slo, ctx: &QueryContext) -> Vec<Check> {
    let a = &spec.analysis;
    let interval = spec.step_interval.as_str();
    let builtin = |name: &str, query: &str, min, max, scale, unit| Check {
        name: name.into(),
        query: render(query, ctx, interval),
        min,
        max,
        strict_max: true,
        scale,
        unit,
        on_no_data: a.on_no_data,
        needs_traffic: true,
    };
    let p99 = a.max_p99_latency_ms.unwrap_or(slo.p99_latency_ms);
    let errors = a.max_error_rate_percent.unwrap_or(slo.error_rate_percent);
    let mut all = vec![
        builtin(REQUESTS, &a.queries.requests, Some(f64::from(a.min_requests)), None, 1.0, "requests"),
        builtin("p99-latency", &a.queries.p99_latency_seconds, None, Some(f64::from(p99)), 1000.0, "ms"),
        builtin("error-rate", &a.queries.error_ratio, None, Some(errors), 100.0, "%"),
    ];
    all.extend(a.metrics.iter().map(|m| Check {
        name: m.name.clone(),
        query: render(&m.query, ctx, interval),
        min: m.min,
        max: m.max,
        strict_max: false,
        scale: 1.0,
        unit: "",
        on_no_data: m.on_no_data,
        needs_traffic: false,
    }));
    all
}

/// Outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub name: String,
    pub query: String,
    pub value: Option<f64>,
    pub threshold: String,
    pub verdict: CheckVerdict,
    pub reason: Option<String>,
    /// No data because Prometheus is down: holds whatever `onNoData` says.
    pub outage: bool,
    pub on_no_data: NoDataPolicy,
}

/// An analysis: every check's outcome and the verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    pub outcomes: Vec<Outcome>,
    pub verdict: CheckVerdict,
}

impl Analysis {
    /// The record kept in status.
    pub fn record(&self, stage_index: u32, weight: u32, at: Timestamp) -> AnalysisRecord {
        let checks = self
            .outcomes
            .iter()
            .map(|o| CheckRecord {
                name: o.name.clone(),
                value: o.value,
                threshold: o.threshold.clone(),
                verdict: o.verdict,
                reason: o.reason.clone(),
            })
            .collect();
        AnalysisRecord { at: Some(Time(at)), stage_index, weight, verdict: self.verdict, checks }
    }
}

/// Runs every check's query, then [`evaluate`]s the answers.
pub async fn analyse(source: &dyn MetricsSource, checks: &[Check]) -> Analysis {
    let mut answers = Vec::with_capacity(checks.len());
    for check in checks {
        answers.push(source.query(&check.query).await);
    }
    evaluate(checks, answers)
}

/// Judges the answers (one per check, same order): any fail fails; an outage holds; no data fails under
/// `onNoData: fail`, else holds. Too few requests turns the traffic-gated checks into no data.
pub fn evaluate(checks: &[Check], answers: Vec<Result<Option<f64>, QueryError>>) -> Analysis {
    let mut outcomes = Vec::with_capacity(checks.len());
    let mut thin_traffic: Option<String> = None;
    for (check, answer) in checks.iter().zip(answers) {
        let errored = answer.is_err();
        let mut outcome = outcome(check, answer);
        if check.needs_traffic
            && check.name != REQUESTS
            && !outcome.outage
            && let Some(reason) = &thin_traffic
        {
            outcome.verdict = CheckVerdict::NoData;
            outcome.reason = Some(reason.clone());
        }
        if check.name == REQUESTS && outcome.verdict != CheckVerdict::Pass {
            let need = check.min.unwrap_or(0.0);
            // An empty result means no series matched: no requests at all.
            let reason = match (&outcome.reason, outcome.value) {
                (Some(why), _) if errored => format!("request count unknown: {why}"),
                (_, value) => format!("too few requests: {} in the window, need {need}", value.unwrap_or(0.0).round()),
            };
            outcome.verdict = CheckVerdict::NoData;
            outcome.reason = Some(reason.clone());
            thin_traffic = Some(reason);
        }
        outcomes.push(outcome);
    }
    let verdict = judge(&outcomes);
    Analysis { outcomes, verdict }
}

fn outcome(check: &Check, answer: Result<Option<f64>, QueryError>) -> Outcome {
    let mut outcome = Outcome {
        name: check.name.clone(),
        query: check.query.clone(),
        value: None,
        threshold: check.threshold(),
        verdict: CheckVerdict::NoData,
        reason: None,
        outage: false,
        on_no_data: check.on_no_data,
    };
    match answer {
        Ok(Some(raw)) => {
            let value = raw * check.scale;
            outcome.value = Some(value);
            outcome.verdict = if check.passes(value) { CheckVerdict::Pass } else { CheckVerdict::Fail };
        }
        Ok(None) => outcome.reason = Some("query returned no value".into()),
        Err(e) => {
            outcome.outage = e.is_outage();
            outcome.reason = Some(e.to_string());
        }
    }
    outcome
}

fn judge(outcomes: &[Outcome]) -> CheckVerdict {
    if outcomes.iter().any(|o| o.verdict == CheckVerdict::Fail) {
        return CheckVerdict::Fail;
    }
    let missing: Vec<&Outcome> = outcomes.iter().filter(|o| o.verdict == CheckVerdict::NoData).collect();
    if missing.is_empty() {
        CheckVerdict::Pass
    } else if missing.iter().any(|o| o.outage) {
        CheckVerdict::NoData
    } else if missing.iter().any(|o| o.on_no_data == NoDataPolicy::Fail) {
        CheckVerdict::Fail
    } else {
        CheckVerdict::NoData
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perf_operator_api::MetricCheck;

    fn spec(on_no_data: NoDataPolicy) -> CanarySpec {
        let mut spec = CanarySpec::default();
        spec.analysis.on_no_data = on_no_data;
        spec
    }

    fn ctx() -> QueryContext {
        QueryContext { namespace: "shop".into(), target: "web".into() }
    }

    fn down() -> QueryError {
        QueryError::Unreachable { url: "http://127.0.0.1:1".into(), message: "connection refused".into() }
    }

    /// Answers for requests, p99 (s) and error ratio.
    fn verdict(on_no_data: NoDataPolicy, requests: Option<f64>, p99_s: Option<f64>, errors: Option<f64>) -> Analysis {
        let answers = vec![Ok(requests), Ok(p99_s), Ok(errors)];
        evaluate(&checks(&spec(on_no_data), &Slo::default(), &ctx()), answers)
    }

    #[test]
    fn healthy_canary_passes_and_thresholds_come_from_the_slo() {
        let a = verdict(NoDataPolicy::Wait, Some(500.0), Some(0.1), Some(0.0005));
        assert_eq!(a.verdict, CheckVerdict::Pass);
        assert_eq!(a.outcomes[1].threshold, "< 150 ms");
        assert_eq!(a.outcomes[2].threshold, "< 0.1 %");
    }

    #[test]
    fn slow_or_failing_canary_fails() {
        assert_eq!(verdict(NoDataPolicy::Wait, Some(500.0), Some(0.4), Some(0.0)).verdict, CheckVerdict::Fail);
        assert_eq!(verdict(NoDataPolicy::Wait, Some(500.0), Some(0.1), Some(0.05)).verdict, CheckVerdict::Fail);
    }

    #[test]
    fn too_few_requests_is_no_data_never_a_pass() {
        let a = verdict(NoDataPolicy::Wait, Some(3.0), Some(0.1), Some(0.0));
        assert_eq!(a.verdict, CheckVerdict::NoData);
        assert!(
            a.outcomes[1]
                .reason
                .as_deref()
                .unwrap_or_default()
                .starts_with("too few requests: 3 in the window, need 20")
        );
        assert_eq!(verdict(NoDataPolicy::Fail, Some(3.0), Some(0.1), Some(0.0)).verdict, CheckVerdict::Fail);
        assert_eq!(verdict(NoDataPolicy::Wait, None, None, None).verdict, CheckVerdict::NoData);
    }

    #[test]
    fn prometheus_down_holds_even_when_no_data_fails() {
        let all = checks(&spec(NoDataPolicy::Fail), &Slo::default(), &ctx());
        assert_eq!(evaluate(&all, vec![Err(down()), Err(down()), Err(down())]).verdict, CheckVerdict::NoData);
        let http = || Err(QueryError::Http { status: 503, body: "overloaded".into() });
        assert_eq!(evaluate(&all, vec![http(), http(), http()]).verdict, CheckVerdict::NoData);
    }

    #[test]
    fn custom_metric_bounds_are_inclusive() {
        let mut spec = spec(NoDataPolicy::Wait);
        let metric = |name: &str| MetricCheck {
            name: name.into(),
            query: "x".into(),
            min: Some(1.0),
            max: Some(2.0),
            ..Default::default()
        };
        spec.analysis.metrics = vec![metric("a"), metric("b")];
        let all = checks(&spec, &Slo::default(), &ctx());
        let base = || vec![Ok(Some(500.0)), Ok(Some(0.01)), Ok(Some(0.0))];
        let mut answers = base();
        answers.extend([Ok(Some(1.0)), Ok(Some(2.0))]);
        assert_eq!(evaluate(&all, answers).verdict, CheckVerdict::Pass);
        let mut answers = base();
        answers.extend([Ok(Some(1.0)), Ok(Some(2.5))]);
        assert_eq!(evaluate(&all, answers).verdict, CheckVerdict::Fail);
    }

    #[test]
    fn queries_select_canary_pods_only() {
        let all = checks(&CanarySpec::default(), &Slo::default(), &ctx());
        assert!(all[1].query.contains(r#"namespace="shop", pod=~"web-canary-.*""#), "{}", all[1].query);
        assert!(all[1].query.contains("[1m]"));
    }
}
