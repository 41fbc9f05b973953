use super::*;
use crate::telemetry::Metrics;
use perf_operator_api::{
    AnalysisRecord, CacheStatus, CanaryStatus, CheckRecord, CheckVerdict, PoolSize, PoolsStatus, RedisServerStatus,
};
use serde_json::json;

fn profile(namespace: &str, name: &str) -> PerformanceProfile {
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"name": name},
            "slo": {"p99LatencyMs": 200, "errorRatePercent": 0.5},
            "canary": {"stages": [10, 50, 100], "analysis": {"minRequests": 30, "metrics": [
                {"name": "saturation", "query": "vector(0.5)", "min": 0.1, "max": 0.8}
            ]}}
        }
    }))
    .unwrap()
}

fn check(name: &str, value: f64) -> CheckRecord {
    CheckRecord {
        name: name.into(),
        value: Some(value),
        threshold: String::new(),
        verdict: CheckVerdict::Pass,
        reason: None,
    }
}

/// A profile at stage 2 of 3 with one analysis recorded, a Redis read and a pool.
fn status() -> PerformanceProfileStatus {
    let analysis = AnalysisRecord {
        at: None,
        stage_index: 1,
        weight: 50,
        verdict: CheckVerdict::Pass,
        checks: vec![check("requests", 120.0), check("p99-latency", 42.5), check("error-rate", 0.0)],
    };
    let older = AnalysisRecord { checks: vec![check("p99-latency", 999.0)], ..analysis.clone() };
    let server = RedisServerStatus {
        used_memory_bytes: 1_000_000,
        max_memory_bytes: 33_554_432,
        connected_clients: 3,
        hit_ratio_percent: Some(87.5),
        evicted_keys: 4,
        ..Default::default()
    };
    let size = PoolSize { min: 5, max: 12, reason: "ServerCap".into(), limit: Some("37 minus 3".into()) };
    PerformanceProfileStatus {
        canary: Some(CanaryStatus {
            phase: CanaryPhase::Progressing,
            stage_index: Some(1),
            weight: 50,
            achieved_weight: Some(47),
            analyses: vec![analysis, older],
            ..Default::default()
        }),
        cache: Some(CacheStatus { server: Some(server), ..Default::default() }),
        pools: Some(PoolsStatus { sizes: [("postgres".to_string(), size)].into(), ..Default::default() }),
        phase: Some("Progressing".into()),
        ..Default::default()
    }
}

/// The exposition line of `name` for shop/web with `labels` too (the encoder sorts labels by name).
fn line(name: &str, labels: &[(&str, &str)], value: &str) -> String {
    let mut all = vec![("namespace", "shop"), ("profile", "web")];
    all.extend_from_slice(labels);
    all.sort();
    let labels: Vec<String> = all.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}} {value}", labels.join(","))
}

/// The exposition lines of the per-profile families, without comments.
fn samples(metrics: &Metrics) -> Vec<String> {
    let text = metrics.render();
    let families = [
        "perf_operator_profile_phase",
        "perf_operator_canary_",
        "perf_operator_cache_",
        "perf_operator_pool_",
        "perf_operator_policy_published",
        "perf_operator_rate_limit_",
    ];
    text.lines().filter(|l| families.iter().any(|f| l.starts_with(f))).map(String::from).collect()
}

#[test]
fn a_profile_status_renders_as_series_labelled_with_the_profile() {
    let metrics = Metrics::new().unwrap();
    let p = profile("shop", "web");
    metrics.profiles.set(&p, &status());
    let lines = samples(&metrics);
    for expected in [
        line("perf_operator_profile_phase", &[("phase", "Progressing")], "1"),
        line("perf_operator_profile_phase", &[("phase", "Ready")], "0"),
        line("perf_operator_canary_stage", &[], "2"),
        line("perf_operator_canary_stages", &[], "3"),
        line("perf_operator_canary_weight_percent", &[], "50"),
        line("perf_operator_canary_achieved_weight_percent", &[], "47"),
        line("perf_operator_canary_phase", &[("phase", "Progressing")], "1"),
        line("perf_operator_canary_phase", &[("phase", "Idle")], "0"),
        // The latest analysis only, in the threshold's unit.
        line("perf_operator_canary_analysis_value", &[("metric", "p99-latency")], "42.5"),
        line("perf_operator_canary_analysis_value", &[("metric", "requests")], "120"),
        // Bounds from the SLO (ms, %), the spec's minRequests and the custom metric's own.
        line("perf_operator_canary_analysis_threshold", &[("metric", "p99-latency"), ("bound", "max")], "200"),
        line("perf_operator_canary_analysis_threshold", &[("metric", "error-rate"), ("bound", "max")], "0.5"),
        line("perf_operator_canary_analysis_threshold", &[("metric", "requests"), ("bound", "min")], "30"),
        line("perf_operator_canary_analysis_threshold", &[("metric", "saturation"), ("bound", "min")], "0.1"),
        line("perf_operator_canary_analysis_threshold", &[("metric", "saturation"), ("bound", "max")], "0.8"),
        line("perf_operator_cache_hit_ratio", &[], "0.875"),
        line("perf_operator_cache_used_memory_bytes", &[], "1000000"),
        line("perf_operator_cache_max_memory_bytes", &[], "33554432"),
        line("perf_operator_cache_evicted_keys", &[], "4"),
        line("perf_operator_cache_connected_clients", &[], "3"),
        line("perf_operator_pool_size", &[("pool", "postgres"), ("bound", "min"), ("rule", "ServerCap")], "5"),
        line("perf_operator_pool_size", &[("pool", "postgres"), ("bound", "max"), ("rule", "ServerCap")], "12"),
    ] {
        assert!(lines.contains(&expected), "{expected} missing from:\n{}", lines.join("\n"));
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("perf_operator_canary_phase{")).count(), 9, "{lines:?}");
    // No threshold a check does not have (requests has no max, the SLO gates no min).
    assert!(!lines.iter().any(|l| l.contains(r#"bound="max",metric="requests""#)), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("999")), "an older analysis is shown: {lines:?}");
}

#[test]
fn a_removed_or_vanished_profile_has_no_series_and_others_keep_theirs() {
    let metrics = Metrics::new().unwrap();
    let (web, api) = (profile("shop", "web"), profile("shop", "api"));
    metrics.profiles.set(&web, &status());
    metrics.profiles.set(&api, &status());
    metrics.profiles.canary_event(&web, "RolledBack");
    metrics.profiles.canary_event(&web, "StageAdvanced");
    metrics.profiles.canary_event(&web, "Aborted");
    metrics.profiles.canary_event(&web, "RolledBack");
    let text = metrics.render();
    assert!(text.contains(&line("perf_operator_canary_rollbacks_total", &[("reason", "RolledBack")], "2")), "{text}");
    assert!(text.contains(&line("perf_operator_canary_rollbacks_total", &[("reason", "Aborted")], "1")), "{text}");
    assert!(text.contains(&line("perf_operator_canary_rollbacks_total", &[("reason", "DeadlineExceeded")], "0")));

    metrics.profiles.remove(&web);
    let lines = samples(&metrics);
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l.contains(r#"profile="api""#)), "series of a removed profile: {lines:?}");

    // Deleted without a finalizer: gone from the controller's cache, gone at the next scrape.
    metrics.profiles.set(&web, &status());
    metrics.profiles.follow(|(_, name)| name != "api");
    let lines = samples(&metrics);
    assert!(lines.iter().all(|l| l.contains(r#"profile="web""#)) && !lines.is_empty(), "{lines:?}");
    assert_eq!(metrics.profiles.keys(), [("shop".to_string(), "web".to_string())]);
    // The rollbacks of a removed profile went with it: counted from 0 again.
    let text = metrics.render();
    assert!(text.contains(&line("perf_operator_canary_rollbacks_total", &[("reason", "RolledBack")], "0")), "{text}");
    assert!(!text.contains(r#"profile="api""#), "{text}");
}

#[test]
fn sections_a_profile_does_not_have_give_no_series() {
    let metrics = Metrics::new().unwrap();
    let mut p = profile("shop", "web");
    p.spec.canary = None;
    let idle = PerformanceProfileStatus::default();
    metrics.profiles.set(&p, &idle);
    assert_eq!(samples(&metrics), Vec::<String>::new());
    // A canary that never ran: Idle, stage 0, and the thresholds it will be judged on.
    let p = profile("shop", "web");
    metrics.profiles.set(&p, &idle);
    let lines = samples(&metrics);
    assert!(lines.contains(&line("perf_operator_canary_phase", &[("phase", "Idle")], "1")), "{lines:?}");
    assert!(lines.contains(&line("perf_operator_canary_stage", &[], "0")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("perf_operator_canary_analysis_value")), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("perf_operator_canary_achieved")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("perf_operator_canary_analysis_threshold")), "{lines:?}");
}

#[test]
fn policy_sources_and_evaluation_time_are_exported() {
    let metrics = Metrics::new().unwrap();
    let mut status = PerformanceProfileStatus::default();
    let evaluation = perf_operator_api::PolicyEvaluation {
        policy: "builtin:adaptive-ttl".into(),
        published: PublishedFrom::LastGood,
        ..Default::default()
    };
    let cache = perf_operator_api::CachePolicyStatus { evaluation, ..Default::default() };
    let policies = perf_operator_api::PoliciesStatus { cache: Some(cache), rate_limit: None };
    status.policies = Some(policies);
    metrics.profiles.set(&profile("shop", "web"), &status);
    metrics.policy_duration.with_label_values(&["cache-policy"]).observe(0.002);
    let text = metrics.render();
    for expected in [
        line("perf_operator_policy_published", &[("world", "cache-policy"), ("source", "LastGood")], "1"),
        line("perf_operator_policy_published", &[("world", "cache-policy"), ("source", "Policy")], "0"),
        r#"perf_operator_policy_evaluation_seconds_bucket{world="cache-policy",le="0.0025"} 1"#.into(),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
}

#[test]
fn a_candidates_largest_difference_and_its_verdicts_are_exported() {
    let metrics = Metrics::new().unwrap();
    let mut status = PerformanceProfileStatus::default();
    let judged = |verdict, largest| perf_operator_api::CandidateEvaluation {
        verdict,
        largest_difference_percent: largest,
        ..Default::default()
    };
    let cache = perf_operator_api::CachePolicyStatus {
        candidate: Some(perf_operator_api::CacheCandidateStatus {
            evaluation: judged(perf_operator_api::CandidateVerdict::Differs, Some(37)),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A candidate that failed has no difference: no series for its world.
    let rate_limit = perf_operator_api::RateLimitPolicyStatus {
        candidate: Some(perf_operator_api::RateLimitCandidateStatus {
            evaluation: judged(perf_operator_api::CandidateVerdict::Failed, None),
            ..Default::default()
        }),
        ..Default::default()
    };
    status.policies = Some(perf_operator_api::PoliciesStatus { cache: Some(cache), rate_limit: Some(rate_limit) });
    metrics.profiles.set(&profile("shop", "web"), &status);
    metrics.candidate_evaluations.with_label_values(&["cache-policy", "Differs"]).inc();
    let text = metrics.render();
    let gauge = line("perf_operator_policy_candidate_difference_percent", &[("world", "cache-policy")], "37");
    assert!(text.contains(&gauge), "{gauge} missing from:\n{text}");
    assert!(!text.contains(r#"perf_operator_policy_candidate_difference_percent{namespace="shop",profile="web",world="rate-limit-policy""#), "{text}");
    let counter = r#"perf_operator_policy_candidate_evaluations_total{verdict="Differs",world="cache-policy"} 1"#;
    assert!(text.contains(counter), "{counter} missing from:\n{text}");
}

#[test]
fn turned_off_no_profile_has_series_and_the_operators_own_stay() {
    let metrics = Metrics::new().unwrap();
    let p = profile("shop", "web");
    metrics.profiles.set(&p, &status());
    metrics.profiles.turn_off();
    metrics.profiles.set(&p, &status());
    metrics.profiles.canary_event(&p, "RolledBack");
    metrics.reconciles.with_label_values(&["profile"]).inc();
    assert!(samples(&metrics).is_empty(), "series per profile while off: {:?}", samples(&metrics));
    let text = metrics.render();
    assert!(!text.contains("profile=\"web\""), "{text}");
    assert!(text.contains("perf_operator_reconciles_total{component=\"profile\"} 1"), "{text}");
}

#[test]
fn rate_limits_decided_enforced_and_rejected_are_series_per_route() {
    let metrics = Metrics::new().unwrap();
    let profile: PerformanceProfile = serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "ledger", "namespace": "fin"},
        "spec": {"targetRef": {"name": "ledger"}, "rateLimit": {
            "routes": [{"route": "/a", "requestsPerSecond": 10, "burst": 10}, {"route": "/b", "requestsPerSecond": 4, "burst": 4}],
            "policy": {"builtin": "adaptive-rate-limit"},
            "enforcement": {"mode": "rateLimitService", "window": "Minute"}}}
    }))
    .unwrap();
    let status: PerformanceProfileStatus = serde_json::from_value(json!({
        "policies": {"rateLimit": {"policy": "builtin:adaptive-rate-limit", "published": "Policy", "routes": {"/a": {"requestsPerSecond": 5, "burst": 5}},
            "observed": {"/a": {"requestsPerSecond": 9.0, "p99LatencyMs": 20.0, "errorPercent": 0.0, "rejectedPerSecond": 1.5}}}},
        "rateLimit": {"mode": "rateLimitService", "object": "ConfigMap/ledger-ratelimit",
            "enforced": {"/a": {"requests": 300, "window": "Minute"}}}
    }))
    .unwrap();
    metrics.profiles.set(&profile, &status);
    let lines = samples(&metrics);
    let at = |name: &str, route: &str, value: &str| {
        format!(r#"{name}{{namespace="fin",profile="ledger",route="{route}"}} {value}"#)
    };
    for expected in [
        // The policy's decision where it has one, the spec's elsewhere.
        at("perf_operator_rate_limit_decided_requests_per_second", "/a", "5"),
        at("perf_operator_rate_limit_decided_requests_per_second", "/b", "4"),
        // 300 a minute.
        at("perf_operator_rate_limit_enforced_requests_per_second", "/a", "5"),
        at("perf_operator_rate_limit_rejected_per_second", "/a", "1.5"),
    ] {
        assert!(lines.contains(&expected), "{expected} missing from:\n{}", lines.join("\n"));
    }
    assert!(!lines.iter().any(|l| l.contains("enforced") && l.contains(r#"route="/b""#)), "{lines:?}");
}
