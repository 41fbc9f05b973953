use super::*;
use crate::components::{OwnedObjects, cache, rate_limit};
use crate::decide::policy::{Decided, decide};
use crate::decide::{Observed, PolicyUnavailable};
use crate::redis_stats::RedisStats;
use perf_operator_api::PerformanceProfile;
use perf_policy_host::{HostConfig, PolicyHost, RouteTraffic, Source, World};
use serde_json::{Value, json};
use std::sync::OnceLock;

/// The host's test fixture: a cache policy whose settings choose its behaviour (`echo`, `trap`, `reject`, ...).
const HOSTILE: &[u8] = include_bytes!("../../../policies/host/tests/fixtures/hostile.wasm");

fn host() -> &'static PolicyHost {
    static HOST: OnceLock<PolicyHost> = OnceLock::new();
    HOST.get_or_init(|| PolicyHost::new(HostConfig::default()).expect("a WASM host"))
}

/// `builtin` (or the hostile fixture for `hostile`) loaded for `tenant`.
fn load(tenant: &str, world: World, builtin: &str) -> Read<Arc<Policy>> {
    let sha256 = perf_policy_host::source::sha256_hex(HOSTILE);
    let source = match builtin {
        "hostile" => Source::Pinned { bytes: HOSTILE, sha256: &sha256 },
        name => Source::Builtin(name),
    };
    Ok(host().load_for(tenant, world, source).expect("the component loads"))
}

/// A profile with both built-in policies, the candidates given (`null`: none) and `status`.
fn profile(cache_candidate: Value, rate_limit_candidate: Value, status: Value) -> PerformanceProfile {
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "shop", "namespace": "prod", "generation": 1},
        "spec": {
            "targetRef": {"name": "shop"},
            "cache": {"redis": {"external": {"address": "redis://cache:6379"}},
                      "ttlClasses": [{"name": "query", "ttlSeconds": 1800}, {"name": "metrics", "ttlSeconds": 300}],
                      "policy": {"builtin": "adaptive-ttl"}, "candidate": cache_candidate},
            "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
                          "policy": {"builtin": "adaptive-rate-limit"}, "candidate": rate_limit_candidate}
        },
        "status": status
    }))
    .expect("a profile")
}

/// A previous round whose counters make this round's interval 1 000 hits and 9 000 misses: a hit ratio of 0.1, so
/// `adaptive-ttl` lengthens its TTLs.
fn after_a_round() -> Value {
    json!({"observedGeneration": 1, "policies": {"cache": {"policy": "builtin:adaptive-ttl", "published": "Policy",
        "counters": {"hits": 0, "misses": 0, "evictions": 0}, "classes": {}}}})
}

/// The hostile fixture as a candidate from a ConfigMap, with `settings`.
fn hostile_candidate(settings: Value) -> Value {
    let sha256 = perf_policy_host::source::sha256_hex(HOSTILE);
    json!({"configMap": {"name": "policies", "key": "hostile.wasm", "sha256": sha256}, "settings": settings})
}

fn builtin(name: &str, settings: Value, bound: u32) -> Value {
    json!({"builtin": name, "settings": settings, "maxDifferencePercent": bound})
}

/// What `tenant`'s profile observes: the built-ins loaded, Redis's counters, `/api` breaching its SLO.
fn observed(
    tenant: &str,
    cache_candidate: Option<Read<Arc<Policy>>>,
    rate_limit_candidate: Option<Read<Arc<Policy>>>,
) -> Observed {
    let slow = RouteTraffic {
        requests_per_second: 90.0,
        p99_latency_ms: 5_000.0,
        error_percent: 0.0,
        rejected_per_second: 0.0,
    };
    Observed {
        cache_policy: Some(load(tenant, World::Cache, "adaptive-ttl")),
        rate_limit_policy: Some(load(tenant, World::RateLimit, "adaptive-rate-limit")),
        cache_candidate,
        rate_limit_candidate,
        redis: Some(Ok(RedisStats {
            hits: 1_000,
            misses: 9_000,
            used_memory_bytes: 10,
            max_memory_bytes: 100,
            ..Default::default()
        })),
        traffic: Some(Ok(BTreeMap::from([("/api".to_string(), slow)]))),
        ..Observed::default()
    }
}

/// The candidate of `tenant` (its own instances, as the operator loads it).
fn candidate(tenant: &str, world: World, name: &str) -> Option<Read<Arc<Policy>>> {
    Some(load(&format!("{tenant}#candidate"), world, name))
}

/// One round of the policies, with the plans they write.
fn round(
    p: &PerformanceProfile,
    observed: &Observed,
    now: Timestamp,
) -> (Decided, cache::CachePlan, rate_limit::RateLimitPlan) {
    let spec = p.spec.cache.as_ref().expect("a cache section");
    let mut cache = cache::build(p, spec, &Default::default(), &mut OwnedObjects::default());
    let mut limits = rate_limit::plan(p.spec.rate_limit.as_ref().expect("a rateLimit section"));
    let decided = decide(p, observed, now, Some(&mut cache), Some(&mut limits));
    (decided, cache, limits)
}

fn cache_candidate(d: &Decided) -> CacheCandidateStatus {
    d.status.as_ref().and_then(|s| s.cache.as_ref()?.candidate.clone()).expect("a cache candidate record")
}

fn rate_limit_candidate(d: &Decided) -> RateLimitCandidateStatus {
    d.status.as_ref().and_then(|s| s.rate_limit.as_ref()?.candidate.clone()).expect("a rate-limit candidate record")
}

#[test]
fn a_difference_is_in_percent_of_the_active_value_rounded_up() {
    // (active, candidate, percent)
    for (a, c, expected) in
        [(100, 110, 10), (100, 90, 10), (100, 111, 11), (3, 4, 34), (0, 0, 0), (0, 1, 100), (1, 0, 100)]
    {
        assert_eq!(percent(a, c), expected, "{a} -> {c}");
        // Rounded up: within a bound exactly when |c - a| * 100 <= bound * a.
        let (exact, of) = (u64::from(a.abs_diff(c)) * 100, u64::from(a.max(1)));
        assert!(exact <= expected * of, "{a} -> {c}");
        assert!(expected == 0 || exact > (expected - 1) * of, "{a} -> {c}: not the smallest such bound");
    }
    assert_eq!(percent(u32::MAX, 0), 100);
    assert_eq!(percent(1, u32::MAX), u64::from(u32::MAX - 1) * 100, "no overflow");
}

#[test]
fn classes_and_routes_differ_by_their_worst_part_and_one_sided_keys_wholly() {
    let class = |ttl_seconds, admit| ClassDecision { ttl_seconds, admit };
    // (case, active, candidate, difference)
    for (case, a, c, expected) in [
        ("same", class(600, true), class(600, true), 0),
        ("ttl only", class(600, true), class(660, true), 10),
        ("admit differs", class(600, true), class(600, false), 100),
        ("admit and a larger ttl difference", class(100, false), class(400, true), 300),
        ("neither caches: the ttl does not matter", class(100, false), class(900, false), 0),
    ] {
        assert_eq!(class_difference(&a, &c), expected, "{case}");
    }
    let limit = |requests_per_second, burst| RouteLimit { requests_per_second, burst };
    assert_eq!(limit_difference(&limit(100, 200), &limit(105, 260)), 30, "the burst's difference is the larger");
    assert_eq!(limit_difference(&limit(100, 200), &limit(50, 200)), 50, "the rate's difference is the larger");
    let active = BTreeMap::from([("a".to_string(), limit(10, 10)), ("b".to_string(), limit(10, 10))]);
    let candidate = BTreeMap::from([("b".to_string(), limit(11, 11)), ("c".to_string(), limit(10, 10))]);
    let differences = RateLimitUse::differences(&active, &candidate);
    assert_eq!(differences, BTreeMap::from([("a".into(), 100), ("b".into(), 10), ("c".into(), 100)]));
}

#[test]
fn a_candidate_that_decides_alike_agrees_and_counts_its_evaluations_in_a_row() {
    let same = || builtin("adaptive-ttl", json!({}), 10);
    let p = profile(same(), builtin("adaptive-rate-limit", json!({}), 0), after_a_round());
    let tenant = "prod/alike";
    let observed = observed(
        tenant,
        candidate(tenant, World::Cache, "adaptive-ttl"),
        candidate(tenant, World::RateLimit, "adaptive-rate-limit"),
    );
    let (first, ..) = round(&p, &observed, Timestamp::now());
    let cache = cache_candidate(&first);
    assert_eq!(
        (cache.evaluation.verdict, cache.evaluation.largest_difference_percent),
        (CandidateVerdict::Agrees, Some(0))
    );
    assert_eq!(cache.evaluation.agreeing_evaluations, 1);
    assert_eq!(cache.evaluation.compared_with, ComparedWith::Decision);
    assert_eq!(
        rate_limit_candidate(&first).evaluation.verdict,
        CandidateVerdict::Agrees,
        "the same decision within 0%"
    );
    let verdicts: Vec<_> = first.runs.iter().map(|r| r.candidate).collect();
    assert_eq!(verdicts, [Some(CandidateVerdict::Agrees); 2], "each judged candidate is counted");
    let report = first.candidate_report.clone().expect("PolicyCandidateAgrees");
    assert!(report.ok && report.advisory && report.reason == AGREES, "{report:?}");

    // The next evaluation of the same candidate counts on; another bound starts again.
    let status = |d: &Decided| json!({"observedGeneration": 1, "policies": d.status});
    let p = profile(same(), Value::Null, status(&first));
    let (second, ..) = round(&p, &observed, Timestamp::now());
    assert_eq!(cache_candidate(&second).evaluation.agreeing_evaluations, 2);
    let p = profile(builtin("adaptive-ttl", json!({}), 20), Value::Null, status(&second));
    let (third, ..) = round(&p, &observed, Timestamp::now());
    assert_eq!(cache_candidate(&third).evaluation.agreeing_evaluations, 1, "a new bound is a new candidate");
}

#[test]
fn the_verdict_turns_exactly_at_the_bound() {
    let tenant = "prod/bound";
    let observed = observed(tenant, candidate(tenant, World::Cache, "adaptive-ttl"), None);
    let faster =
        |bound| profile(builtin("adaptive-ttl", json!({"growFactor": 2.0}), bound), Value::Null, after_a_round());
    let (d, plan, _) = round(&faster(0), &observed, Timestamp::now());
    let c = cache_candidate(&d);
    let largest = c.evaluation.largest_difference_percent.expect("the candidate decided");
    assert!(largest > 0 && c.evaluation.verdict == CandidateVerdict::Differs, "{c:?}");
    // The difference is the TTL's, in percent of the published (active) one.
    let expected = percent(plan.ttl_seconds["query"], c.classes["query"].ttl_seconds);
    assert_eq!(c.evaluation.difference_percent["query"], expected, "{c:?}");
    for (bound, verdict) in [(largest, CandidateVerdict::Agrees), (largest - 1, CandidateVerdict::Differs)] {
        let bound = u32::try_from(bound).expect("a small percentage");
        let (d, ..) = round(&faster(bound), &observed, Timestamp::now());
        let e = cache_candidate(&d).evaluation;
        assert_eq!((e.verdict, e.max_difference_percent), (verdict, bound), "bound {bound}, largest {largest}");
        let report = d.candidate_report.expect("PolicyCandidateAgrees");
        assert_eq!(report.ok, verdict == CandidateVerdict::Agrees, "{report:?}");
        if !report.ok {
            assert!(report.reason == DIFFERS && report.message.contains(&format!("{largest}%")), "{report:?}");
        }
    }
}

#[test]
fn an_admit_decision_that_differs_counts_as_wholly_different() {
    let tenant = "prod/admit";
    let observed = observed(tenant, candidate(tenant, World::Cache, "adaptive-ttl"), None);
    // Same TTLs, but no class reaches the candidate's admission threshold.
    let p =
        profile(builtin("adaptive-ttl", json!({"minAdmitTtlSeconds": 1_000_000}), 99), Value::Null, after_a_round());
    let (d, plan, _) = round(&p, &observed, Timestamp::now());
    let c = cache_candidate(&d);
    assert!(plan.admit.values().all(|admit| *admit), "the active policy admits: {:?}", plan.admit);
    assert!(c.classes.values().all(|class| !class.admit), "{c:?}");
    assert_eq!(c.evaluation.difference_percent.values().copied().collect::<Vec<_>>(), [100, 100]);
    assert_eq!(c.evaluation.verdict, CandidateVerdict::Differs);
}

#[test]
fn a_failed_active_policy_is_compared_by_what_was_published_and_one_sided_classes_differ_wholly() {
    // The last good decision knows `query` only; the active policy cannot be had this round (KeepLastGood).
    let status = json!({"observedGeneration": 1, "policies": {"cache": {"policy": "builtin:adaptive-ttl",
        "published": "Policy", "counters": {"hits": 0, "misses": 0, "evictions": 0},
        "classes": {"query": {"ttlSeconds": 2250, "admit": true}}}}});
    let p = profile(builtin("adaptive-ttl", json!({}), 10), Value::Null, status);
    let tenant = "prod/active-failed";
    let mut observed = observed(tenant, candidate(tenant, World::Cache, "adaptive-ttl"), None);
    observed.cache_policy = Some(Err(Unread::Policy(PolicyUnavailable::Source { message: "gone".into() })));
    let (d, plan, _) = round(&p, &observed, Timestamp::now());
    assert_eq!(plan.ttl_seconds["query"], 2250, "the last good decision is published");
    let c = cache_candidate(&d);
    assert_eq!(c.evaluation.compared_with, ComparedWith::Published);
    assert_eq!(c.evaluation.difference_percent["metrics"], 100, "decided by the candidate alone: {c:?}");
    assert_eq!(c.evaluation.difference_percent["query"], percent(2250, c.classes["query"].ttl_seconds));
    let report = d.candidate_report.expect("PolicyCandidateAgrees");
    assert!(report.message.contains("compared with the published values"), "{report:?}");
}

#[test]
fn a_candidate_that_fails_is_reported_and_changes_nothing_else() {
    let tenant = "prod/failing";
    let without =
        round(&profile(Value::Null, Value::Null, after_a_round()), &observed(tenant, None, None), Timestamp::now());
    let hostile = |mode: &str| hostile_candidate(json!({"mode": mode}));
    let not_loaded = || Some(Err(Unread::Policy(PolicyUnavailable::Source { message: "ConfigMap gone".into() })));
    // (case, candidate spec, candidate loaded, in the error)
    for (case, spec, loaded, error) in [
        ("trap", hostile("trap"), candidate(tenant, World::Cache, "hostile"), "(trap)"),
        ("bad settings", hostile("reject"), candidate(tenant, World::Cache, "hostile"), "(bad_settings)"),
        ("not loaded", hostile("echo"), not_loaded(), "ConfigMap gone"),
        ("never loaded", hostile("echo"), None, "not loaded"),
    ] {
        let p = profile(spec, Value::Null, after_a_round());
        let (d, plan, limits) = round(&p, &observed(tenant, loaded, None), Timestamp::now());
        let e = cache_candidate(&d).evaluation;
        assert_eq!((e.verdict, e.largest_difference_percent), (CandidateVerdict::Failed, None), "{case}");
        assert!(e.error.as_deref().is_some_and(|m| m.contains(error)), "{case}: {e:?}");
        assert!(d.report.ok, "{case}: PoliciesReady is the active policy's: {:?}", d.report);
        assert_eq!(
            (plan.ttl_seconds, limits.routes),
            (without.1.ttl_seconds.clone(), without.2.routes.clone()),
            "{case}"
        );
        let report = d.candidate_report.expect("PolicyCandidateAgrees");
        assert!(!report.ok && report.reason == FAILED, "{case}: {report:?}");
        // Advisory: Ready stays as the components say.
        let at = Time(Timestamp::now());
        let conditions = crate::conditions::conditions(&[], &[d.report.clone(), report], Some(1), &at);
        let ready = conditions.iter().find(|c| c.type_ == condition::READY).expect("Ready");
        assert_eq!(ready.status, "True", "{case}: {conditions:?}");
    }
}

#[test]
fn a_held_round_keeps_the_candidates_record() {
    let every = Some(std::time::Duration::from_secs(60));
    let at = Timestamp::from_second(Timestamp::now().as_second()).expect("now");
    let later = at.checked_add(jiff::SignedDuration::from_secs(10)).expect("later");
    let tenant = "prod/held";
    let observed =
        Observed { policy_every: every, ..observed(tenant, candidate(tenant, World::Cache, "adaptive-ttl"), None) };
    let faster = || builtin("adaptive-ttl", json!({"growFactor": 2.0}), 10);
    let (first, ..) = round(&profile(faster(), Value::Null, after_a_round()), &observed, at);
    let first = first.status.expect("policies status");
    let held = profile(faster(), Value::Null, json!({"observedGeneration": 1, "policies": first}));
    let (again, ..) = round(&held, &observed, later);
    assert!(again.runs.is_empty(), "nothing evaluated: {:?}", again.runs);
    assert_eq!(again.status.as_ref(), Some(&first), "the records, the candidate's included, are kept as they were");
    let report = again.candidate_report.expect("PolicyCandidateAgrees, from the kept record");
    assert_eq!(report.reason, DIFFERS);
}

#[test]
fn the_contract_never_takes_the_candidates_values() {
    let tenant = "prod/contract";
    let with = profile(
        builtin("adaptive-ttl", json!({"growFactor": 3.0}), 10),
        builtin("adaptive-rate-limit", json!({"decreaseFactor": 0.2}), 10),
        after_a_round(),
    );
    let observed_with = observed(
        tenant,
        candidate(tenant, World::Cache, "adaptive-ttl"),
        candidate(tenant, World::RateLimit, "adaptive-rate-limit"),
    );
    let without = profile(Value::Null, Value::Null, after_a_round());
    let now = Timestamp::now();
    let decided = crate::decide::decide(&with, &observed_with, now);
    let alone = crate::decide::decide(&without, &observed(tenant, None, None), now);
    assert_eq!(decided.contract.data, alone.contract.data, "the contract is the active policies' alone");
    assert_eq!(decided.checksum, alone.checksum);
    let policies = decided.status.policies.as_ref().expect("policies status");
    let cache = policies.cache.as_ref().expect("cache");
    let candidate = cache.candidate.as_ref().expect("the cache candidate decided");
    assert_ne!(candidate.classes, cache.classes, "the candidate decided otherwise, and was not published");
    let rate_limit = policies.rate_limit.as_ref().expect("rate limit");
    let limits = &rate_limit.candidate.as_ref().expect("the rate-limit candidate decided").routes;
    assert_ne!(limits, &rate_limit.routes, "the candidate backed off further, and was not published");
    let types: Vec<&str> = decided.reports.iter().map(|r| r.type_).collect();
    assert_eq!(types.last(), Some(&condition::POLICY_CANDIDATE_AGREES), "{types:?}");
    assert!(alone.reports.iter().all(|r| r.type_ != condition::POLICY_CANDIDATE_AGREES), "only with a candidate");
}

#[test]
fn rate_limit_candidates_compare_the_larger_of_rate_and_burst() {
    let tenant = "prod/limits";
    let p = profile(Value::Null, builtin("adaptive-rate-limit", json!({"decreaseFactor": 0.5}), 10), Value::Null);
    let observed = observed(tenant, None, candidate(tenant, World::RateLimit, "adaptive-rate-limit"));
    let (d, _, limits) = round(&p, &observed, Timestamp::now());
    let c = rate_limit_candidate(&d);
    let (active, decided) = (&limits.routes[0], c.routes["/api"]);
    assert!(decided.requests_per_second < active.requests_per_second, "backed off further: {c:?} {active:?}");
    let expected =
        percent(active.requests_per_second, decided.requests_per_second).max(percent(active.burst, decided.burst));
    assert_eq!(c.evaluation.difference_percent["/api"], expected);
    assert_eq!(c.evaluation.verdict, CandidateVerdict::Differs);
}

#[test]
fn a_verdict_is_for_the_candidate_the_spec_has_now() {
    let spec: PolicyCandidate =
        serde_json::from_value(builtin("adaptive-ttl", json!({"growFactor": 2.0}), 10)).expect("a candidate");
    let record = CandidateEvaluation {
        policy: label(&spec.policy),
        settings_digest: settings_digest(&spec.policy),
        max_difference_percent: 10,
        ..CandidateEvaluation::default()
    };
    assert!(is_for(&record, &spec));
    let other_settings: PolicyCandidate =
        serde_json::from_value(builtin("adaptive-ttl", json!({"growFactor": 3.0}), 10)).expect("a candidate");
    let other_source: PolicyCandidate =
        serde_json::from_value(builtin("other", json!({"growFactor": 2.0}), 10)).expect("a candidate");
    let other_bound: PolicyCandidate =
        serde_json::from_value(builtin("adaptive-ttl", json!({"growFactor": 2.0}), 11)).expect("a candidate");
    for other in [other_settings, other_source, other_bound] {
        assert!(!is_for(&record, &other), "{other:?}");
    }
}
