//! The SLO's PrometheusRule, checked by Debian's `promtool` (PROMTOOL_BIN, else `promtool` on PATH): every generated
//! group passes `promtool check rules`, and `promtool test rules` feeds synthetic series and asserts which alerts
//! fire: a fast burn pages, a slow burn opens a ticket, a healthy service, a clean one that never exported a 5xx
//! series and one with no traffic stay silent, a slow p99 pages. Tenant templates that could read another namespace
//! are refused before any rule exists.

use perf_operator::components::slo_rules::{self, SloRule};
use perf_operator_api::PerformanceProfile;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const NS: &str = "risk";

fn profile(extra: &str) -> PerformanceProfile {
    let yaml = format!(
        "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata: {{name: risk-api, namespace: {NS}}}\n\
         spec:\n  targetRef: {{name: risk-api}}\n  slo:\n    p99LatencyMs: 150\n    errorRatePercent: 0.1\n    \
         alerts: {{alertLabels: {{team: risk}}, ruleLabels: {{release: prometheus}}}}\n{extra}"
    );
    serde_saphyr::from_str(&yaml).expect("test profile parses")
}

fn desired(p: &PerformanceProfile) -> slo_rules::RulePlan {
    match slo_rules::decide(p) {
        SloRule::Desired(plan) => plan,
        other => panic!("expected a rule, got {other:?}"),
    }
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let bin = std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".into());
    let out = Command::new(&bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin} (Debian package prometheus; tests/support/install.sh): {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slo-rules-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the profile's rule file into `dir` (JSON is YAML to promtool), returns its name.
fn rule_file(p: &PerformanceProfile, dir: &Path) -> String {
    let plan = desired(p);
    std::fs::write(dir.join("rules.json"), json!({ "groups": plan.groups }).to_string()).unwrap();
    "rules.json".into()
}

#[test]
fn every_generated_group_passes_promtool_check() {
    let canary = "  canary:\n    analysis:\n      prometheus: http://prometheus:9090\n      queries:\n        \
                  errorRatio: 'sum(rate(errors_total{namespace=\"{{namespace}}\", app=\"{{target}}\"}[{{interval}}])) / \
                  sum(rate(calls_total{namespace=\"{{namespace}}\"}[{{interval}}]))'\n";
    for (name, extra) in [("defaults", ""), ("custom-templates", canary)] {
        let dir = scratch(name);
        let file = rule_file(&profile(extra), &dir);
        let (ok, out) = promtool(&["check", "rules", &file], &dir);
        assert!(ok, "{name}: promtool check rules failed:\n{out}");
        assert!(out.contains("SUCCESS: 15 rules found"), "{name}: {out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A counter growing by `per_minute` for three hours, as promtool's expanding notation.
fn counter(labels: &str, per_minute: u32) -> Value {
    json!({ "series": format!("http_requests_total{{namespace=\"{NS}\", {labels}}}"), "values": format!("0+{per_minute}x240") })
}

fn bucket(pod: &str, le: &str, per_minute: u32) -> Value {
    json!({
        "series": format!("http_request_duration_seconds_bucket{{namespace=\"{NS}\", pod=\"{pod}\", le=\"{le}\"}}"),
        "values": format!("0+{per_minute}x240"),
    })
}

fn labels(severity: &str) -> Value {
    json!({ "namespace": NS, "perf_profile": "risk-api", "service": "risk-api", "team": "risk", "severity": severity })
}

/// The expected alert, with the annotations the rule sets.
fn firing(p: &PerformanceProfile, name: &str, severity: &str) -> Value {
    let plan = desired(p);
    let rule = plan.groups[0]["rules"].as_array().unwrap().iter().find(|r| r["alert"] == name).unwrap().clone();
    json!([{ "exp_labels": labels(severity), "exp_annotations": rule["annotations"] }])
}

#[test]
fn promtool_unit_tests_fire_what_they_should_and_nothing_else() {
    let p = profile("");
    let dir = scratch("unit");
    let file = rule_file(&p, &dir);
    let pod = "risk-api-7d9f8-x2x4q";
    let canary_pod = "risk-api-canary-5c6b7-k9m2p";
    let ok = |pod: &str, n: u32| counter(&format!("pod=\"{pod}\", code=\"200\""), n);
    let failed = |pod: &str, n: u32| counter(&format!("pod=\"{pod}\", code=\"500\""), n);
    let none = json!([]);
    let page = firing(&p, "PerfErrorBudgetFastBurn", "critical");
    let ticket = firing(&p, "PerfErrorBudgetSlowBurn", "warning");
    let slow = firing(&p, "PerfLatencyObjectiveMissed", "critical");
    let alerts = |at: &str, fast: &Value, slow_burn: &Value, latency: &Value| {
        json!([
            { "eval_time": at, "alertname": "PerfErrorBudgetFastBurn", "exp_alerts": fast },
            { "eval_time": at, "alertname": "PerfErrorBudgetSlowBurn", "exp_alerts": slow_burn },
            { "eval_time": at, "alertname": "PerfLatencyObjectiveMissed", "exp_alerts": latency },
        ])
    };
    let healthy_latency = || vec![bucket(pod, "0.1", 990), bucket(pod, "0.25", 1000), bucket(pod, "+Inf", 1000)];
    let cases = [
        // 10 % errors, primary and canary pods together: 100x the budget pages within the short window; the slow
        // pairs burn too and open a ticket (Alertmanager inhibits it under the page).
        (
            "fast burn",
            vec![ok(pod, 900), failed(pod, 50), failed(canary_pod, 50)],
            alerts("15m", &page, &ticket, &none),
        ),
        // 0.5 %: 5x the budget, under the page rates (14.4x, 6x), over the ticket's 3x once 2h of it is seen.
        ("slow burn", vec![ok(pod, 995), failed(pod, 5)], alerts("150m", &none, &ticket, &none)),
        // 0.05 %: inside the budget.
        ("healthy", vec![ok(pod, 9995), failed(pod, 5)], alerts("150m", &none, &none, &none)),
        // Never a 5xx series (apps export code="500" after the first one): a measured 0 %, not an error.
        ("clean", vec![ok(pod, 1000)], alerts("150m", &none, &none, &none)),
        // A counter that does not move: no traffic, no ratio, no alert.
        ("no traffic", vec![ok(pod, 0)], alerts("150m", &none, &none, &none)),
        // Another namespace's errors never count.
        (
            "foreign",
            vec![
                ok(pod, 1000),
                json!({ "series": format!("http_requests_total{{namespace=\"other\", pod=\"{pod}\", code=\"500\"}}"), "values": "0+1000x240" }),
            ],
            alerts("150m", &none, &none, &none),
        ),
        // p99 between 250 and 500 ms for an hour and more against a 150 ms objective.
        (
            "slow p99",
            vec![
                ok(pod, 1000),
                bucket(pod, "0.1", 500),
                bucket(pod, "0.25", 950),
                bucket(pod, "0.5", 1000),
                bucket(pod, "+Inf", 1000),
            ],
            alerts("75m", &none, &none, &slow),
        ),
        // p99 under 100 ms.
        ("fast p99", healthy_latency(), alerts("75m", &none, &none, &none)),
    ];
    let tests: Vec<Value> = cases
        .iter()
        .map(|(name, series, alerts)| {
            let mut input = series.clone();
            if !name.contains("p99") {
                input.extend(healthy_latency());
            }
            json!({ "name": name, "interval": "1m", "input_series": input, "alert_rule_test": alerts })
        })
        .chain([recorded_values(pod)])
        .collect();
    let test = json!({ "rule_files": [file], "evaluation_interval": "1m", "tests": tests });
    std::fs::write(dir.join("test.json"), test.to_string()).unwrap();
    let (ok, out) = promtool(&["test", "rules", "test.json"], &dir);
    assert!(ok, "promtool test rules failed:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The recorded series carry the profile's labels and the values a dashboard reads.
fn recorded_values(pod: &str) -> Value {
    let sel = format!("{{namespace=\"{NS}\", perf_profile=\"risk-api\", service=\"risk-api\"}}");
    let exp = |metric: &str, value: f64| json!({ "expr": metric, "eval_time": "30m", "exp_samples": [{ "labels": format!("{metric}{sel}"), "value": value }] });
    json!({
        "name": "recorded",
        "interval": "1m",
        "input_series": [
            counter(&format!("pod=\"{pod}\", code=\"200\""), 980),
            counter(&format!("pod=\"{pod}\", code=\"503\""), 20),
        ],
        "promql_expr_test": [
            exp("perf:slo_error_ratio:rate5m", 0.02),
            exp("perf:slo_objective_error_ratio", 0.001),
            exp("perf:slo_objective_latency_seconds", 0.15),
        ],
    })
}

#[test]
fn templates_that_could_read_another_namespace_are_refused() {
    let with = |field: &str, query: &str| {
        profile(&format!(
            "  canary:\n    analysis:\n      prometheus: http://prometheus:9090\n      queries:\n        {field}: '{query}'\n"
        ))
    };
    for (field, query, expected) in [
        ("errorRatio", "sum(rate(http_requests_total[{{interval}}]))", "http_requests_total"),
        (
            "errorRatio",
            "sum(rate(http_requests_total{namespace=~\"{{namespace}}|prod\"}[{{interval}}]))",
            "namespace=~",
        ),
        ("errorRatio", "sum(rate(http_requests_total{namespace!=\"x\"}[{{interval}}]))", "namespace!="),
        (
            "errorRatio",
            "sum(rate(a{namespace=\"{{namespace}}\"}[{{interval}}])) / sum(rate(b{job=\"x\"}[{{interval}}]))",
            "b{job=\"x\"}",
        ),
        ("errorRatio", "sum(rate(a{namespace=\"{{namespace}}\" or job=\"x\"}[{{interval}}]))", "or"),
        ("errorRatio", "vector(0)", "reads no series"),
        ("errorRatio", "sum(rate(a{namespace=\"{{namespace}}\"}[{{interval}}]) ", "not PromQL"),
        ("p99LatencySeconds", "histogram_quantile(0.99, rate({__name__=~\".+\"}[{{interval}}]))", "__name__"),
        ("errorRatio", "max_over_time(sum(rate(x[1m]))[{{interval}}:1m])", "x[1m]"),
    ] {
        match slo_rules::decide(&with(field, query)) {
            SloRule::Refused { reason, message, .. } => {
                assert_eq!(reason, "QueryRefused", "{query}");
                assert!(message.contains(&format!("queries.{field}")), "{query}: {message}");
                assert!(message.contains(expected), "{query}: {message}");
            }
            other => panic!("{query} was not refused: {other:?}"),
        }
    }
    // Scoped everywhere, with an `or` whose every branch is pinned: accepted.
    let fine = with(
        "errorRatio",
        "sum(rate(a{namespace=\"{{namespace}}\", code=~\"5..\" or namespace=\"{{namespace}}\", code=\"429\"}[{{interval}}])) / sum(rate(a{namespace=\"{{namespace}}\"}[{{interval}}]))",
    );
    assert!(matches!(slo_rules::decide(&fine), SloRule::Desired(_)));
}

#[test]
fn the_rule_object_is_owned_labelled_and_can_be_turned_off() {
    let mut p = profile("");
    p.metadata.uid = Some("uid-1".into());
    let plan = desired(&p);
    let object = slo_rules::object(&p, &plan);
    assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(object["kind"], "PrometheusRule");
    assert_eq!(object["metadata"]["name"], "risk-api-slo");
    assert_eq!(object["metadata"]["namespace"], NS);
    assert_eq!(object["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(object["metadata"]["labels"]["perf.operator.dev/profile"], "risk-api");
    assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    assert_eq!(plan.alerts, ["PerfErrorBudgetFastBurn", "PerfErrorBudgetSlowBurn", "PerfLatencyObjectiveMissed"]);
    // Recording rules and alerts all carry the profile's identity.
    for rule in plan.groups[0]["rules"].as_array().unwrap() {
        assert_eq!(rule["labels"]["perf_profile"], "risk-api", "{rule}");
        assert_eq!(rule["labels"]["namespace"], NS, "{rule}");
    }
    // Labels the API server cannot check (map keys): refused by the alerts alone, naming the field.
    let mut bad = p.clone();
    bad.spec.slo.alerts.alert_labels.insert("severity".into(), "low".into());
    bad.spec.slo.alerts.rule_labels.insert("-x".into(), "y".into());
    match slo_rules::decide(&bad) {
        SloRule::Refused { reason, message, .. } => {
            assert_eq!(reason, "InvalidLabels");
            assert!(message.contains("spec.slo.alerts.alertLabels.severity"), "{message}");
            assert!(message.contains("spec.slo.alerts.ruleLabels.-x"), "{message}");
        }
        other => panic!("bad labels were not refused: {other:?}"),
    }
    assert!(perf_operator_api::validation::validate_spec(&bad.spec).is_empty(), "the rest of the profile stays valid");
    p.spec.slo.alerts.enabled = false;
    assert_eq!(slo_rules::decide(&p), SloRule::Disabled { name: "risk-api-slo".into() });
}

/// With a rate limit a gateway enforces: the decided, enforced and rejected rates per route are recorded from the
/// operator's own series (one set per replica scraped: the max), and `PerfRateLimitNotEnforced` fires only after
/// the gateway has held another limit than the decided one for 15 minutes, on that route.
#[test]
fn rate_limit_rules_record_the_routes_and_alert_when_the_gateway_holds_another_limit() {
    let extra = "  rateLimit:\n    routes:\n      - {route: /a, requestsPerSecond: 10, burst: 10}\n      \
                 - {route: /b, requestsPerSecond: 5, burst: 5}\n    enforcement: {mode: rateLimitService}\n";
    let p = profile(extra);
    let dir = scratch("rate-limit");
    let file = rule_file(&p, &dir);
    let (ok, out) = promtool(&["check", "rules", &file], &dir);
    assert!(ok && out.contains("SUCCESS: 19 rules found"), "promtool check rules:\n{out}");
    let series = |metric: &str, route: &str, instance: &str, values: &str| json!({ "series": format!("perf_operator_rate_limit_{metric}{{namespace=\"{NS}\", profile=\"risk-api\", route=\"{route}\", instance=\"{instance}\"}}"), "values": values });
    let input = vec![
        series("decided_requests_per_second", "/a", "leader", "10x60"),
        series("enforced_requests_per_second", "/a", "leader", "10x60"),
        series("decided_requests_per_second", "/b", "leader", "3x60"),
        // /b: the gateway keeps 5/s while 3/s was decided (a refused policy, say).
        series("enforced_requests_per_second", "/b", "leader", "5x60"),
        series("rejected_per_second", "/a", "leader", "0.5x60"),
        series("rejected_per_second", "/a", "standby", "0x60"),
    ];
    let mut labels = labels("warning");
    labels["route"] = json!("/b");
    let rule = desired(&p).groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["alert"] == "PerfRateLimitNotEnforced")
        .cloned();
    let annotations = rule.expect("the alert")["annotations"].clone();
    let fired = json!([{ "exp_labels": labels, "exp_annotations": annotations }]);
    let sel = format!("namespace=\"{NS}\", perf_profile=\"risk-api\", service=\"risk-api\"");
    let test = json!({ "rule_files": [file], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": input,
        "alert_rule_test": [
            { "eval_time": "10m", "alertname": "PerfRateLimitNotEnforced", "exp_alerts": [] },
            { "eval_time": "20m", "alertname": "PerfRateLimitNotEnforced", "exp_alerts": fired },
        ],
        "promql_expr_test": [{ "expr": "perf:rate_limit_rejected_per_second", "eval_time": "5m",
            "exp_samples": [{ "labels": format!("perf:rate_limit_rejected_per_second{{{sel}, route=\"/a\"}}"), "value": 0.5 }] }]
    }]});
    std::fs::write(dir.join("test.json"), test.to_string()).unwrap();
    let (ok, out) = promtool(&["test", "rules", "test.json"], &dir);
    assert!(ok, "promtool test rules failed:\n{out}");
    // Contract mode: the series are recorded, there is no gateway to alert on.
    let contract = profile("  rateLimit:\n    routes:\n      - {route: /a, requestsPerSecond: 10, burst: 10}\n");
    let rules = desired(&contract).groups[0]["rules"].as_array().unwrap().clone();
    assert!(rules.iter().any(|r| r["record"] == "perf:rate_limit_decided_requests_per_second"));
    assert!(!rules.iter().any(|r| r["alert"] == "PerfRateLimitNotEnforced"));
    let _ = std::fs::remove_dir_all(&dir);
}
