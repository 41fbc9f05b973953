//! Analysis of a stage on Prometheus: the checks (built-in gates from the SLO plus custom metrics) and the verdict.
//! No data, too few requests and an unreachable Prometheus are never a pass; a query Prometheus rejects is a
//! failed check (it can never pass as written). The HTTP client is `perf_prometheus` (shared with the operator),
//! re-exported here so `perf_canary::Prometheus` keeps working; the queries are asked in [`crate::gather`].

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use perf_operator_api::{AnalysisRecord, CanarySpec, CheckRecord, CheckVerdict, NoDataPolicy, Slo};
use serde::Serialize;
use std::time::Duration;

pub use crate::gather::{Answer, Asking};
pub use perf_prometheus::{MetricsSource, Prometheus, QueryError, QueryFuture, Trouble};

/// Longest an analysis may take in the operator, whatever the step interval: its read of the canary (workloads
/// and analysis) is bounded at 30 s by the controller, and the workloads need time too.
pub const MAX_DEADLINE: Duration = Duration::from_secs(20);

/// Deadline of the operator's analysis for a step interval: never longer than the step, so a slow Prometheus
/// never holds back the next analysis or a rollback by more than one step.
pub fn deadline(step_interval: Duration) -> Duration {
    step_interval.min(MAX_DEADLINE)
}

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
    /// Which Prometheus asks it: 0 the analysis's own, else a template's (see [`crate::templates::Resolved`]).
    #[serde(skip)]
    pub source: usize,
    /// Why it cannot be asked (its template could not be resolved): it is not asked, and fails with this reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
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

    /// Judged on the raw value against the bounds brought to its unit, not on the value scaled up: `0.29 * 100` is
    /// `28.999999999999996`, which would pass a `< 29 %` gate that `0.29` is exactly at. A bound divided by the scale
    /// is the nearest number to the exact quotient, as the raw value parsed from its decimal text is.
    fn passes(&self, raw: f64) -> bool {
        let scale = if self.scale > 0.0 { self.scale } else { 1.0 };
        let above_min = self.min.is_none_or(|min| raw >= min / scale);
        let below_max = self.max.is_none_or(|max| if self.strict_max { raw < max / scale } else { raw <= max / scale });
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
        source: 0,
        broken: None,
    };
    let p99 = a.max_p99_latency_ms.unwrap_or(slo.p99_latency_ms);
    let errors = a.max_error_rate_percent.unwrap_or(slo.error_rate_percent);
    let mut all = vec![
        builtin(REQUESTS, a.queries.requests(), Some(f64::from(a.min_requests)), None, 1.0, "requests"),
        builtin("p99-latency", a.queries.p99_latency_seconds(), None, Some(f64::from(p99)), 1000.0, "ms"),
        builtin("error-rate", a.queries.error_ratio(), None, Some(errors), 100.0, "%"),
    ];
    all.extend(a.metrics.iter().map(|m| Check {
        name: m.name.clone(),
        query: render(&m.query, ctx, interval),
        min: m.min,
        max: m.max,
        strict_max: false,
        scale: 1.0,
        unit: "",
        on_no_data: m.on_no_data.unwrap_or_default(),
        needs_traffic: false,
        source: 0,
        broken: None,
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
    /// Why the query gave no value, when it failed: unreachable and wrong-endpoint hold whatever `onNoData` says;
    /// a rejected query fails.
    #[serde(skip)]
    pub trouble: Option<Trouble>,
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
                // JSON has no NaN or infinity: the reason says what the value was.
                value: o.value.filter(|v| v.is_finite()),
                threshold: o.threshold.clone(),
                verdict: o.verdict,
                reason: o.reason.clone(),
            })
            .collect();
        AnalysisRecord { at: Some(Time(at)), stage_index, weight, verdict: self.verdict, checks }
    }

    /// The analysis with the round's `rollout` webhooks as checks (`webhook/<name>`, passing on a 2xx answer).
    pub fn with_hooks(mut self, records: &[perf_operator_api::HookRecord]) -> Self {
        for r in records {
            self.outcomes.push(Outcome {
                name: format!("webhook/{}", r.name),
                query: String::new(),
                value: None,
                threshold: "2xx".into(),
                verdict: if r.succeeded { CheckVerdict::Pass } else { CheckVerdict::Fail },
                reason: r.message.clone(),
                trouble: None,
                on_no_data: NoDataPolicy::Fail,
            });
        }
        self.verdict = judge(&self.outcomes);
        self
    }

    /// The checks that failed the analysis: those that failed, or, when none did, those without data under
    /// `onNoData: fail`.
    pub fn failing(&self) -> Vec<&str> {
        let failed: Vec<&str> =
            self.outcomes.iter().filter(|o| o.verdict == CheckVerdict::Fail).map(|o| o.name.as_str()).collect();
        if !failed.is_empty() || self.verdict != CheckVerdict::Fail {
            return failed;
        }
        let no_data = |o: &&Outcome| o.verdict == CheckVerdict::NoData && o.on_no_data == NoDataPolicy::Fail;
        self.outcomes.iter().filter(no_data).map(|o| o.name.as_str()).collect()
    }

    /// What holds a no-data verdict when Prometheus could not be read: a wrong endpoint or credentials before
    /// an unreachable Prometheus (fixing it is the first thing to do); None for a pass, a fail or plain no data.
    pub fn held_by(&self) -> Option<Trouble> {
        if self.verdict != CheckVerdict::NoData {
            return None;
        }
        let troubles: Vec<Trouble> = self.outcomes.iter().filter_map(|o| o.trouble).collect();
        [Trouble::Endpoint, Trouble::Unreachable].into_iter().find(|t| troubles.contains(t))
    }
}

/// Asks every check's query concurrently on its source (`sources[check.source]`), all within `asking.deadline`
/// (see [`crate::gather`]), then [`evaluate`]s the answers.
pub async fn analyse(sources: &[&dyn MetricsSource], checks: &[Check], asking: Asking<'_>) -> Analysis {
    evaluate(checks, crate::gather::gather(sources, checks, asking).await)
}

/// Judges the answers (one per check, same order): any fail fails (a rejected query included); Prometheus
/// unreachable or a wrong endpoint holds; no data fails under `onNoData: fail`, else holds. Too few requests turns
/// the traffic-gated checks into no data.
pub fn evaluate<A: Into<Answer>>(checks: &[Check], answers: impl IntoIterator<Item = A>) -> Analysis {
    let mut outcomes = Vec::with_capacity(checks.len());
    let mut thin_traffic: Option<String> = None;
    for (check, answer) in checks.iter().zip(answers) {
        let mut outcome = outcome(check, answer.into());
        if check.needs_traffic
            && check.name != REQUESTS
            && outcome.trouble.is_none()
            && let Some(reason) = &thin_traffic
        {
            outcome.verdict = CheckVerdict::NoData;
            outcome.reason = Some(reason.clone());
        }
        if check.name == REQUESTS && outcome.verdict != CheckVerdict::Pass {
            let reason = thin_reason(check, &outcome);
            if outcome.trouble.is_none() {
                outcome.verdict = CheckVerdict::NoData;
                outcome.reason = Some(reason.clone());
            }
            thin_traffic = Some(reason);
        }
        outcomes.push(outcome);
    }
    let verdict = judge(&outcomes);
    Analysis { outcomes, verdict }
}

/// Why the traffic-gated checks cannot be judged when the request count did not pass.
fn thin_reason(check: &Check, outcome: &Outcome) -> String {
    let why = outcome.reason.clone().unwrap_or_default();
    match outcome.value {
        _ if outcome.trouble.is_some() => format!("request count unknown: {why}"),
        Some(count) if !count.is_nan() => {
            format!("too few requests: {} in the window, need {}", count.round(), check.min.unwrap_or(0.0))
        }
        _ => format!("no requests counted: {why}"),
    }
}

fn outcome(check: &Check, answer: Answer) -> Outcome {
    let mut outcome = Outcome {
        name: check.name.clone(),
        query: check.query.clone(),
        value: None,
        threshold: check.threshold(),
        verdict: CheckVerdict::NoData,
        reason: None,
        trouble: None,
        on_no_data: check.on_no_data,
    };
    if let Some(why) = &check.broken {
        outcome.verdict = CheckVerdict::Fail;
        outcome.reason = Some(why.clone());
        return outcome;
    }
    match answer.result {
        Ok(Some(raw)) if raw.is_nan() => {
            outcome.value = Some(raw);
            outcome.reason = Some("value is NaN: 0/0, nothing was counted in the window".into());
        }
        Ok(Some(raw)) => {
            let value = raw * check.scale;
            outcome.value = Some(value);
            outcome.verdict = if check.passes(raw) { CheckVerdict::Pass } else { CheckVerdict::Fail };
            if value.is_infinite() && outcome.verdict == CheckVerdict::Fail {
                outcome.reason = Some(infinite_reason(value));
            }
        }
        Ok(None) => {
            outcome.reason = Some(answer.unmatched.unwrap_or_else(|| "the query returned no series".into()));
        }
        Err(e) => {
            let trouble = e.trouble();
            outcome.trouble = Some(trouble);
            outcome.reason = Some(e.to_string());
            if trouble == Trouble::Query {
                outcome.verdict = CheckVerdict::Fail;
            }
        }
    }
    outcome
}

fn infinite_reason(value: f64) -> String {
    if value > 0.0 { "value is +Inf: a division by zero (x/0)".into() } else { "value is -Inf".into() }
}

fn judge(outcomes: &[Outcome]) -> CheckVerdict {
    if outcomes.iter().any(|o| o.verdict == CheckVerdict::Fail) {
        return CheckVerdict::Fail;
    }
    let missing: Vec<&Outcome> = outcomes.iter().filter(|o| o.verdict == CheckVerdict::NoData).collect();
    if missing.is_empty() {
        CheckVerdict::Pass
    } else if missing.iter().any(|o| o.trouble.is_some()) {
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
        QueryError::Refused { at: "127.0.0.1:1".into() }
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
        let http = || Err(QueryError::Server { at: "p:9090".into(), status: 503, message: "overloaded".into() });
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

    fn all(on_no_data: NoDataPolicy) -> Vec<Check> {
        checks(&spec(on_no_data), &Slo::default(), &ctx())
    }

    fn rejected() -> QueryError {
        QueryError::Rejected { error_type: "bad_data".into(), message: "1:4: parse error: unexpected \"(\"".into() }
    }

    #[test]
    fn a_rejected_query_fails_even_with_thin_traffic_and_names_the_metric_and_why() {
        let a = evaluate(&all(NoDataPolicy::Wait), [Ok(Some(3.0)), Err(rejected()), Ok(Some(0.0))]);
        assert_eq!((a.verdict, a.outcomes[1].verdict), (CheckVerdict::Fail, CheckVerdict::Fail));
        let summary = crate::machine::summarize(&a.record(0, 10, Timestamp::UNIX_EPOCH));
        assert!(
            summary.contains("; p99-latency: Prometheus rejected the query (bad_data): 1:4: parse error"),
            "{summary}"
        );
    }

    #[test]
    fn a_value_exactly_at_a_builtin_bound_fails_and_at_a_custom_bound_passes() {
        let a = evaluate(&all(NoDataPolicy::Wait), [Ok(Some(500.0)), Ok(Some(0.125)), Ok(Some(0.0))]);
        let mut spec = spec(NoDataPolicy::Wait);
        spec.analysis.max_p99_latency_ms = Some(125);
        let strict =
            evaluate(&checks(&spec, &Slo::default(), &ctx()), [Ok(Some(500.0)), Ok(Some(0.125)), Ok(Some(0.0))]);
        assert_eq!((a.verdict, strict.outcomes[1].verdict), (CheckVerdict::Pass, CheckVerdict::Fail));
        assert_eq!(strict.outcomes[1].value, Some(125.0));
    }

    #[test]
    fn nan_is_no_data_and_infinity_fails_each_saying_what_the_value_was() {
        let a = evaluate(&all(NoDataPolicy::Wait), [Ok(Some(500.0)), Ok(Some(f64::INFINITY)), Ok(Some(f64::NAN))]);
        assert_eq!(a.verdict, CheckVerdict::Fail);
        assert_eq!((a.outcomes[1].verdict, a.outcomes[2].verdict), (CheckVerdict::Fail, CheckVerdict::NoData));
        assert!(a.outcomes[1].reason.as_deref().unwrap_or_default().starts_with("value is +Inf"), "{a:?}");
        assert!(a.outcomes[2].reason.as_deref().unwrap_or_default().starts_with("value is NaN"), "{a:?}");
        let record = a.record(0, 10, Timestamp::UNIX_EPOCH);
        assert_eq!((record.checks[1].value, record.checks[2].value), (None, None), "JSON has no NaN or Inf");
    }

    #[test]
    fn an_empty_request_count_says_which_selector_matched_nothing() {
        let unmatched = "no series match http_requests_total{namespace=\"shop\"} in the last 1m (namespace shop)";
        let empty = Answer { result: Ok(None), unmatched: Some(unmatched.into()) };
        let a = evaluate(&all(NoDataPolicy::Wait), [empty, Ok(None).into(), Ok(None).into()]);
        assert_eq!(a.verdict, CheckVerdict::NoData);
        assert_eq!(a.outcomes[1].reason.as_deref(), Some(format!("no requests counted: {unmatched}").as_str()));
    }

    #[test]
    fn a_wrong_endpoint_holds_like_an_outage_and_is_named_first() {
        let denied = || Err(QueryError::Unauthorized { at: "p:9090".into(), status: 401 });
        let a = evaluate(&all(NoDataPolicy::Fail), [denied(), Err(down()), denied()]);
        assert_eq!((a.verdict, a.held_by()), (CheckVerdict::NoData, Some(Trouble::Endpoint)));
        let down = evaluate(&all(NoDataPolicy::Fail), [Err(down()), Err(down()), Err(down())]);
        assert_eq!(down.held_by(), Some(Trouble::Unreachable));
        assert_eq!(verdict(NoDataPolicy::Wait, None, None, None).held_by(), None);
    }

    #[test]
    fn the_operators_deadline_never_exceeds_the_step() {
        assert_eq!(deadline(Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(deadline(Duration::from_secs(300)), MAX_DEADLINE);
    }

    fn gate(min: Option<f64>, max: Option<f64>, strict_max: bool, scale: f64) -> Check {
        Check {
            name: "g".into(),
            query: "q".into(),
            min,
            max,
            strict_max,
            scale,
            unit: "",
            on_no_data: NoDataPolicy::Wait,
            needs_traffic: false,
            source: 0,
            broken: None,
        }
    }

    /// Raw answers exactly at a built-in bound (after the ratio-to-percent or seconds-to-milliseconds conversion)
    /// fail, as the rule says; a hair under passes. `0.29 * 100` is `28.999999999999996`: judged scaled, it passed.
    #[test]
    fn a_value_exactly_at_a_bound_is_judged_in_its_own_unit() {
        let at_bound = [
            (0.29, 29.0, 100.0),
            (0.57, 57.0, 100.0),
            (0.035, 3.5, 100.0),
            (0.001, 0.1, 100.0),
            (0.15, 150.0, 1000.0),
            (0.3, 300.0, 1000.0),
            (1.005, 1005.0, 1000.0),
            (0.07, 70.0, 1000.0),
        ];
        for (raw, bound, scale) in at_bound {
            let strict = gate(None, Some(bound), true, scale);
            assert!(!strict.passes(raw), "{raw} x {scale} is at < {bound}: a fail");
            assert!(strict.passes(raw * (1.0 - 1e-9)), "just under {bound} passes");
            // Custom metrics: inclusive bounds, also at the bound exactly.
            assert!(gate(None, Some(bound), false, scale).passes(raw), "{raw} at <= {bound} passes");
            assert!(gate(Some(bound), None, false, scale).passes(raw), "{raw} at >= {bound} passes");
            assert!(!gate(Some(bound), None, false, scale).passes(raw * (1.0 - 1e-9)), "just under the min fails");
        }
        let a = evaluate(&[gate(None, Some(29.0), true, 100.0)], [Ok::<_, QueryError>(Some(0.29))]);
        assert_eq!(a.verdict, CheckVerdict::Fail, "{:?}", a.outcomes);
    }

    #[test]
    fn the_checks_that_failed_a_run_are_named_also_when_no_data_failed_it() {
        let failed = verdict(NoDataPolicy::Wait, Some(500.0), Some(0.4), Some(0.0));
        assert_eq!(failed.failing(), ["p99-latency"]);
        let no_data = verdict(NoDataPolicy::Fail, Some(500.0), None, Some(0.0));
        assert_eq!((no_data.verdict, no_data.failing()), (CheckVerdict::Fail, vec!["p99-latency"]));
        assert!(verdict(NoDataPolicy::Wait, Some(500.0), None, Some(0.0)).failing().is_empty(), "holding");
    }
}
