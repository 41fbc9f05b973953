use super::*;
use crate::components::{OwnedObjects, cache, rate_limit};
use crate::redis_stats::RedisStats;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use perf_policy_host::{HostConfig, PolicyHost};
use serde_json::json;

fn profile(on_failure: &str, status: serde_json::Value) -> PerformanceProfile {
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "shop", "namespace": "prod"},
        "spec": {
            "targetRef": {"name": "shop"},
            "cache": {"redis": {"external": {"address": "redis://cache:6379"}},
                      "ttlClasses": [{"name": "query", "ttlSeconds": 1800}, {"name": "metrics", "ttlSeconds": 300}],
                      "policy": {"builtin": "adaptive-ttl", "onFailure": on_failure}},
            "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
                          "policy": {"builtin": "adaptive-rate-limit", "onFailure": on_failure}}
        },
        "status": status
    }))
    .unwrap()
}

fn plans(p: &PerformanceProfile) -> (CachePlan, RateLimitPlan) {
    let cache = cache::build(p, p.spec.cache.as_ref().unwrap(), &Default::default(), &mut OwnedObjects::default());
    (cache, rate_limit::plan(p.spec.rate_limit.as_ref().unwrap()))
}

fn unavailable() -> Observed {
    let missing = || Some(Err(Unread::Policy(PolicyUnavailable::Source { message: "ConfigMap gone".into() })));
    Observed { cache_policy: missing(), rate_limit_policy: missing(), ..Observed::default() }
}

fn loaded(hits: u64, misses: u64) -> Observed {
    let host = PolicyHost::new(HostConfig::default()).unwrap();
    Observed {
        cache_policy: Some(Ok(host.load_builtin(World::Cache, "adaptive-ttl").unwrap())),
        rate_limit_policy: Some(Ok(host.load_builtin(World::RateLimit, "adaptive-rate-limit").unwrap())),
        redis: Some(Ok(RedisStats {
            hits,
            misses,
            used_memory_bytes: 10,
            max_memory_bytes: 100,
            ..Default::default()
        })),
        traffic: Some(Ok(BTreeMap::new())),
        ..Observed::default()
    }
}

#[test]
fn fail_closed_before_any_decision_publishes_closed_values_never_nothing() {
    let p = profile("FailClosed", serde_json::Value::Null);
    let (mut cache, mut limits) = plans(&p);
    let Decided { status, report, runs, .. } =
        decide(&p, &unavailable(), Timestamp::now(), Some(&mut cache), Some(&mut limits));
    assert!(cache.admit.values().all(|admit| !admit) && cache.admit.len() == 2, "{:?}", cache.admit);
    assert_eq!(cache.ttl_seconds["query"], 1800, "TTLs stay at the spec's");
    assert_eq!((limits.routes[0].requests_per_second, limits.routes[0].burst), (0, 0));
    let status = status.unwrap();
    assert_eq!(status.rate_limit.unwrap().evaluation.published, PublishedFrom::Closed);
    assert!(!report.ok && report.reason == "Unavailable", "{report:?}");
    assert!(report.message.contains("FailClosed"), "{}", report.message);
    assert_eq!(runs.iter().map(|r| r.failure).collect::<Vec<_>>(), [Some("source"), Some("source")]);
}

#[test]
fn failures_fall_back_to_the_last_decision_whatever_was_published_since() {
    let decided = json!({"policies": {
        "cache": {"policy": "builtin:adaptive-ttl", "published": "Policy",
                  "classes": {"query": {"ttlSeconds": 2400, "admit": true}, "metrics": {"ttlSeconds": 120, "admit": false}}},
        "rateLimit": {"policy": "builtin:adaptive-rate-limit", "published": "LastGood",
                      "routes": {"/api": {"requestsPerSecond": 70, "burst": 140}}}}});
    for mode in ["KeepLastGood", "FailClosed"] {
        let p = profile(mode, decided.clone());
        let (mut cache, mut limits) = plans(&p);
        decide(&p, &unavailable(), Timestamp::now(), Some(&mut cache), Some(&mut limits));
        assert_eq!((cache.ttl_seconds["query"], cache.admit["metrics"]), (2400, false), "{mode}");
        assert_eq!(limits.routes[0].requests_per_second, 70, "{mode}");
    }
    let p = profile("UseSpec", decided);
    let (mut cache, mut limits) = plans(&p);
    decide(&p, &unavailable(), Timestamp::now(), Some(&mut cache), Some(&mut limits));
    assert_eq!((cache.ttl_seconds["query"], limits.routes[0].requests_per_second), (1800, 100));
}

#[test]
fn the_cache_policy_is_given_the_counters_of_the_interval() {
    let p = profile("KeepLastGood", serde_json::Value::Null);
    let (mut cache, mut limits) = plans(&p);
    let Decided { status, report, .. } =
        decide(&p, &loaded(5_000, 1_000), Timestamp::now(), Some(&mut cache), Some(&mut limits));
    assert!(report.ok, "{report:?}");
    let first = status.unwrap().cache.unwrap();
    assert_eq!(first.observed.map(|o| (o.hits, o.misses)), Some((0, 0)), "no interval before the first reading");
    assert_eq!(first.counters.map(|c| (c.hits, c.misses)), Some((5_000, 1_000)));

    let p = profile("KeepLastGood", json!({"policies": {"cache": first}}));
    let (mut cache, mut limits) = plans(&p);
    let Decided { status, .. } =
        decide(&p, &loaded(5_900, 1_100), Timestamp::now(), Some(&mut cache), Some(&mut limits));
    let second = status.unwrap().cache.unwrap();
    assert_eq!(second.observed.map(|o| (o.hits, o.misses)), Some((900, 100)));
    assert_eq!(second.counters.map(|c| (c.hits, c.misses)), Some((5_900, 1_100)));
}

/// A profile at `generation` whose status (written for `observed_generation`) holds `policies`.
fn with_generation(generation: i64, observed_generation: i64, policies: serde_json::Value) -> PerformanceProfile {
    let mut p = profile("KeepLastGood", json!({"observedGeneration": observed_generation, "policies": policies}));
    p.metadata.generation = Some(generation);
    p
}

#[test]
fn a_decision_holds_until_the_interval_passes_the_spec_changes_or_it_failed() {
    let every = Some(std::time::Duration::from_secs(60));
    // Whole seconds, as the API server stores a time.
    let at = Timestamp::from_second(Timestamp::now().as_second()).unwrap();
    let later = |secs: i64| at.checked_add(jiff::SignedDuration::from_secs(secs)).unwrap();
    // The first evaluation, with counters 5000/1000.
    let p = with_generation(3, 3, serde_json::Value::Null);
    let (mut cache, mut limits) = plans(&p);
    let first =
        decide(&p, &Observed { policy_every: every, ..loaded(5_000, 1_000) }, at, Some(&mut cache), Some(&mut limits));
    let first = first.status.unwrap();
    assert_eq!(first.cache.as_ref().unwrap().evaluation.evaluated_at, Some(Time(at)));

    // Ten seconds later (a round some event started): nothing is evaluated, the decision and its baseline stay.
    let p = with_generation(3, 3, serde_json::to_value(&first).unwrap());
    let (mut cache, mut limits) = plans(&p);
    let observed = Observed { policy_every: every, ..loaded(5_900, 1_100) };
    let held = decide(&p, &observed, later(10), Some(&mut cache), Some(&mut limits));
    assert!(held.runs.is_empty(), "a policy was evaluated within its interval: {:?}", held.runs);
    assert!(held.report.ok, "{:?}", held.report);
    assert_eq!(held.status.as_ref(), Some(&first), "the status moved without an evaluation");
    let published = &first.cache.as_ref().unwrap().classes;
    assert_eq!(cache.ttl_seconds["query"], published["query"].ttl_seconds, "the held decision is published");
    assert_eq!(limits.routes.len(), 1, "the held rate limits are published");

    // Past the interval, with the spec changed, or after a failure: evaluated, over the whole interval.
    let mut failed = first.clone();
    if let Some(c) = failed.cache.as_mut() {
        c.evaluation.published = PublishedFrom::LastGood;
        c.evaluation.error = Some("trapped".into());
    }
    // (case, profile, now, policies evaluated: the rate-limit policy's decision held when only the cache's failed)
    for (case, p, now, evaluated) in [
        ("interval passed", with_generation(3, 3, serde_json::to_value(&first).unwrap()), later(61), 2),
        ("spec changed", with_generation(4, 3, serde_json::to_value(&first).unwrap()), later(10), 2),
        ("failed before", with_generation(3, 3, serde_json::to_value(&failed).unwrap()), later(10), 1),
        ("clock went back", with_generation(3, 3, serde_json::to_value(&first).unwrap()), later(-5), 2),
    ] {
        let (mut cache, mut limits) = plans(&p);
        let again = decide(&p, &observed, now, Some(&mut cache), Some(&mut limits));
        let entry = again.status.unwrap().cache.unwrap();
        assert_eq!(entry.evaluation.evaluated_at, Some(Time(now)), "{case}");
        assert_eq!(entry.observed.map(|o| (o.hits, o.misses)), Some((900, 100)), "{case}: the whole interval");
        assert_eq!(again.runs.len(), evaluated, "{case}");
    }
    // A component that no longer loads (a ConfigMap edited under its pin) or a Redis not read this round: the
    // round evaluates, and reports the failure, within the interval too.
    let p = with_generation(3, 3, serde_json::to_value(&first).unwrap());
    for (case, broken) in [
        (
            "component refused",
            Observed { cache_policy: unavailable().cache_policy, policy_every: every, ..loaded(5_900, 1_100) },
        ),
        (
            "Redis unread",
            Observed { redis: Some(Err(Unread::NotObserved("down"))), policy_every: every, ..loaded(5_900, 1_100) },
        ),
    ] {
        let (mut cache, mut limits) = plans(&p);
        let again = decide(&p, &broken, later(10), Some(&mut cache), Some(&mut limits));
        assert!(again.runs.iter().any(|r| r.world == World::Cache), "{case}: not evaluated");
        assert!(!again.report.ok, "{case}: {:?}", again.report);
    }
    // Without an interval (plan), every round evaluates.
    let p = with_generation(3, 3, serde_json::to_value(&first).unwrap());
    let (mut cache, mut limits) = plans(&p);
    let plan = decide(&p, &loaded(5_900, 1_100), later(1), Some(&mut cache), Some(&mut limits));
    assert_eq!(plan.runs.len(), 2, "plan evaluates every time");
}

#[test]
fn without_a_reading_of_redis_the_cache_policy_is_not_called_on_zeros() {
    let decided = json!({"policies": {"cache": {"policy": "builtin:adaptive-ttl", "published": "Policy",
        "classes": {"query": {"ttlSeconds": 2400, "admit": true}, "metrics": {"ttlSeconds": 120, "admit": true}}}}});
    let p = profile("KeepLastGood", decided);
    let (mut cache, mut limits) = plans(&p);
    let mut observed = loaded(0, 0);
    observed.redis = Some(Err(Unread::Timeout { what: "Redis", after: std::time::Duration::from_secs(3) }));
    let Decided { status, report, runs, redis_live, .. } =
        decide(&p, &observed, Timestamp::now(), Some(&mut cache), Some(&mut limits));
    assert_eq!(cache.ttl_seconds["query"], 2400, "the last decision is kept");
    assert!(redis_live.is_none(), "no memory advice from an unread Redis");
    let cache_run = runs.iter().find(|r| r.world == World::Cache).unwrap();
    assert_eq!(cache_run.elapsed, None, "the component was not called");
    assert!(!report.ok && report.message.contains("Redis was not read"), "{report:?}");
    assert_eq!(status.unwrap().cache.unwrap().evaluation.published, PublishedFrom::LastGood);
}

#[test]
fn policy_text_is_sanitised() {
    let text = "ok\u{202e}evil\nnext\u{2028}\u{1b}[31m";
    assert_eq!(sanitize(text), "ok evil next  [31m");
    assert_eq!(sanitize(&"x".repeat(1000)).len(), 256);
}

fn refused_by_host(sha256: &str) -> Observed {
    let error = perf_policy_host::Error::Load { sha256: sha256.into(), detail: "too costly".into() };
    let host = || Some(Err(Unread::Policy(PolicyUnavailable::Host(error.clone()))));
    Observed { cache_policy: host(), rate_limit_policy: host(), ..Observed::default() }
}

#[test]
fn a_component_refused_for_what_it_is_is_recorded_in_status_with_its_first_refusal() {
    let p = profile("UseSpec", serde_json::Value::Null);
    let (mut cache, mut limits) = plans(&p);
    let first = Timestamp::from_second(1_800_000_000).unwrap();
    let decided = decide(&p, &refused_by_host("d1"), first, Some(&mut cache), Some(&mut limits));
    let status = decided.status.unwrap();
    let refused = status.cache.as_ref().and_then(|c| c.evaluation.refused.clone()).unwrap();
    assert_eq!((refused.sha256.as_str(), refused.category.as_str(), refused.at.0), ("d1", "load", first));
    assert!(refused.message.contains("too costly"), "{}", refused.message);
    assert!(status.rate_limit.as_ref().and_then(|r| r.evaluation.refused.as_ref()).is_some());
    // Read back from status by the next process: the record keeps its first date.
    let remembered = |r: &RefusedComponent| {
        let refused = PolicyUnavailable::Refused { refused: r.clone(), category: "load" };
        Some(Err(Unread::Policy(refused)))
    };
    let again =
        Observed { cache_policy: remembered(&refused), rate_limit_policy: remembered(&refused), ..Observed::default() };
    let later = Timestamp::from_second(1_800_000_600).unwrap();
    let decided = decide(&p, &again, later, Some(&mut cache), Some(&mut limits));
    let kept = decided.status.unwrap().cache.and_then(|c| c.evaluation.refused).unwrap();
    assert_eq!(kept, refused, "a remembered refusal is the same record");
    assert!(decided.report.message.contains("remembered in status"), "{}", decided.report.message);
}

#[test]
fn failures_that_are_not_the_components_record_no_refusal() {
    let p = profile("UseSpec", serde_json::Value::Null);
    let (mut cache, mut limits) = plans(&p);
    let busy = perf_policy_host::Error::Busy("compiling".into());
    let internal = perf_policy_host::Error::Internal("mmap failed".into());
    for error in [busy, internal] {
        let host = || Some(Err(Unread::Policy(PolicyUnavailable::Host(error.clone()))));
        let observed = Observed { cache_policy: host(), rate_limit_policy: host(), ..Observed::default() };
        let status = decide(&p, &observed, Timestamp::now(), Some(&mut cache), Some(&mut limits)).status.unwrap();
        assert!(status.cache.and_then(|c| c.evaluation.refused).is_none(), "{error}");
    }
    for observed in [unavailable(), loaded(10, 10)] {
        let status = decide(&p, &observed, Timestamp::now(), Some(&mut cache), Some(&mut limits)).status.unwrap();
        assert!(status.cache.and_then(|c| c.evaluation.refused).is_none());
    }
}
