use super::*;
use crate::exit_codes;
use crate::promote::Error;
use perf_operator_api::CandidateVerdict::{Agrees, Differs, Failed};
use serde_json::{Value, json};

/// The candidate `adaptive-ttl` with `growFactor` 2 in `spec.cache` (and one in `spec.rateLimit` when `both`),
/// beside active policies that fall back with `UseSpec`.
fn profile(both: bool, status: Value) -> PerformanceProfile {
    let rate_limit_candidate = if both { json!({"builtin": "adaptive-rate-limit"}) } else { Value::Null };
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "shop", "namespace": "prod", "generation": 4, "resourceVersion": "812"},
        "spec": {
            "targetRef": {"name": "shop"},
            "cache": {"redis": {"external": {"address": "redis://cache:6379"}},
                      "ttlClasses": [{"name": "query", "ttlSeconds": 1800}],
                      "policy": {"configMap": {"name": "policies", "key": "ttl.wasm", "sha256": "a".repeat(64)},
                                 "onFailure": "UseSpec"},
                      "candidate": {"builtin": "adaptive-ttl", "settings": {"growFactor": 2.0},
                                    "maxDifferencePercent": 20}},
            "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
                          "policy": {"builtin": "adaptive-rate-limit", "onFailure": "FailClosed"},
                          "candidate": rate_limit_candidate}
        },
        "status": status
    }))
    .expect("a profile")
}

/// Status written for `generation` with the cache candidate's record: `verdict`, for `settings` and `bound`.
fn judged(generation: i64, verdict: CandidateVerdict, settings: Value, bound: u32) -> Value {
    let candidate: PolicyCandidate =
        serde_json::from_value(json!({"builtin": "adaptive-ttl", "settings": settings, "maxDifferencePercent": bound}))
            .expect("a candidate");
    let record = CandidateEvaluation {
        policy: label(&candidate.policy),
        settings_digest: shadow::settings_digest(&candidate.policy),
        verdict,
        max_difference_percent: bound,
        largest_difference_percent: (verdict != Failed).then_some(if verdict == Agrees { 4 } else { 60 }),
        error: (verdict == Failed).then(|| "wasm trap: unreachable (trap)".into()),
        ..CandidateEvaluation::default()
    };
    json!({"observedGeneration": generation, "policies": {"cache": {"policy": "configMap:policies/ttl.wasm@aaaaaaaaaaaa",
        "published": "Policy", "candidate": record}}})
}

fn agreed() -> Value {
    judged(4, Agrees, json!({"growFactor": 2.0}), 20)
}

#[test]
fn an_agreeing_candidate_is_promoted_in_one_guarded_patch_keeping_the_policys_on_failure() {
    let p = profile(false, agreed());
    let promotion = promotion(&p, None, false).expect("promoted");
    assert_eq!((promotion.world, promotion.verdict, promotion.forced), (World::Cache, Some(Agrees), false));
    assert_eq!(promotion.replaced, format!("configMap:policies/ttl.wasm@{}", "a".repeat(12)));
    assert_eq!(promotion.promoted, "builtin:adaptive-ttl");
    let ops = promotion.patch.as_array().expect("RFC 6902 operations");
    assert_eq!(ops[0], json!({"op": "replace", "path": "/metadata/resourceVersion", "value": "812"}));
    // Applied as the API server would: the candidate is the policy, with the active policy's onFailure.
    let patch: json_patch::Patch = serde_json::from_value(promotion.patch.clone()).expect("a JSON patch");
    let mut object = serde_json::to_value(&p).expect("JSON");
    json_patch::patch(&mut object, &patch).expect("the patch applies");
    assert_eq!(
        object["spec"]["cache"]["policy"],
        json!({"builtin": "adaptive-ttl", "settings": {"growFactor": 2.0}, "onFailure": "UseSpec"}),
        "the whole policy replaced: no configMap left beside the builtin"
    );
    assert!(object["spec"]["cache"].get("candidate").is_none(), "{object}");
    assert_eq!(object["spec"]["rateLimit"], serde_json::to_value(&p.spec.rate_limit).expect("JSON"), "untouched");
    let promoted: PerformanceProfile = serde_json::from_value(object).expect("still a profile");
    let problems = perf_operator_api::validation::validate_spec(&promoted.spec);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_candidate_without_an_agreeing_verdict_for_the_spec_as_it_is_is_refused_unless_forced() {
    let settings = || json!({"growFactor": 2.0});
    // (case, status, verdict when forced)
    for (case, status, forced) in [
        ("differs", judged(4, Differs, settings(), 20), Some(Differs)),
        ("failed", judged(4, Failed, settings(), 20), Some(Failed)),
        ("never judged", json!({"observedGeneration": 4}), None),
        ("judged with other settings", judged(4, Agrees, json!({"growFactor": 3.0}), 20), None),
        ("judged under another bound", judged(4, Agrees, settings(), 10), None),
        ("status of an older spec", judged(3, Agrees, settings(), 20), None),
    ] {
        let p = profile(false, status);
        let refusal = promotion(&p, None, false).expect_err(case);
        assert!(matches!(refusal, Refusal::NotJudged { .. } | Refusal::Verdict { .. }), "{case}: {refusal:?}");
        let message = refusal.to_string();
        assert!(
            message.starts_with("spec.cache.candidate builtin:adaptive-ttl") && message.contains("--force"),
            "{case}: {message}"
        );
        assert_eq!(Error::Refused(refusal).exit_code(), exit_codes::NOT_AGREED, "{case}");
        let promotion = promotion(&p, None, true).expect(case);
        assert_eq!((promotion.verdict, promotion.forced), (forced, true), "{case}");
    }
    let message = promotion(&profile(false, judged(4, Differs, settings(), 20)), None, false).unwrap_err().to_string();
    assert!(message.contains("differs beyond its bound: largest difference 60% > 20%"), "{message}");
    let message = promotion(&profile(false, judged(4, Failed, settings(), 20)), None, false).unwrap_err().to_string();
    assert!(message.contains("failed: wasm trap: unreachable (trap)"), "{message}");
}

#[test]
fn the_world_must_be_named_when_both_have_a_candidate_and_must_have_one() {
    let both = profile(true, agreed());
    let refusal = promotion(&both, None, false).expect_err("ambiguous");
    assert!(refusal.to_string().contains("say which with --world"), "{refusal}");
    assert_eq!(Error::Refused(refusal).exit_code(), exit_codes::NO_CANDIDATE);
    assert_eq!(promotion(&both, Some(World::Cache), false).map(|p| p.world), Ok(World::Cache));
    // The rate-limit candidate has no record: refused, forced it keeps FailClosed.
    assert!(matches!(promotion(&both, Some(World::RateLimit), false), Err(Refusal::NotJudged { .. })));
    let forced = promotion(&both, Some(World::RateLimit), true).expect("forced");
    assert_eq!(forced.patch[1]["value"], json!({"builtin": "adaptive-rate-limit", "onFailure": "FailClosed"}));
    assert_eq!(forced.patch[2], json!({"op": "remove", "path": "/spec/rateLimit/candidate"}));

    let one = profile(false, agreed());
    let refusal = promotion(&one, Some(World::RateLimit), true).expect_err("no rate-limit candidate");
    assert_eq!(refusal.to_string(), "profile shop declares no policy candidate in spec.rateLimit");
    let mut none = one.clone();
    none.spec.cache.as_mut().expect("cache").candidate = None;
    let refusal = promotion(&none, None, true).expect_err("no candidate at all");
    assert_eq!(refusal.to_string(), "profile shop declares no policy candidate");
    assert_eq!(Error::Refused(refusal).exit_code(), exit_codes::NO_CANDIDATE);
}
