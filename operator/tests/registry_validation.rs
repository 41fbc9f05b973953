//! A registry source as `validate` (and the reconcile) judge it: the CRD's patterns, then what they cannot say (the
//! reference read by the OCI grammar, the cosign key read as a P-256 key), each finding naming its field.

use perf_operator::validate::check_spec;
use perf_operator_api::PerformanceProfile;
use serde_json::{Value, json};

fn profile(policy: Value, candidate: Option<Value>) -> PerformanceProfile {
    let mut cache = json!({
        "redis": {"external": {"address": "redis://cache:6379"}},
        "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
        "policy": policy,
    });
    if let Some(candidate) = candidate {
        cache["candidate"] = candidate;
    }
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "team-a"},
        "spec": {"targetRef": {"name": "api"}, "cache": cache},
    }))
    .expect("a profile")
}

fn registry(fields: Value) -> Value {
    let mut source = json!({"reference": "registry://r.example/team/ttl:v1", "sha256": "a".repeat(64)});
    for (k, v) in fields.as_object().expect("fields").clone() {
        source[k] = v;
    }
    json!({"registry": source})
}

#[test]
fn each_bad_part_of_a_registry_source_is_named() {
    let key = rcgen::KeyPair::generate().expect("a P-256 key").public_key_pem();
    let field = |f: &str| format!("spec.cache.policy{f}");
    // The policy, the candidate, and the field and message expected (None: valid).
    type Case<'a> = (Value, Option<Value>, Option<(String, &'a str)>);
    let cases: Vec<Case> = vec![
        (registry(json!({})), None, None),
        (registry(json!({"pullSecret": "regcred", "cosignPublicKey": key})), None, None),
        (
            registry(json!({"reference": "registry://r.example:5000/team/ttl@sha256:".to_string() + &"b".repeat(64)})),
            None,
            None,
        ),
        (
            registry(json!({"reference": "https://r.example/ttl:v1"})),
            None,
            Some((field(".registry.reference"), "registry://host/repository")),
        ),
        (
            registry(json!({"reference": "registry://registry/ttl:v1"})),
            None,
            Some((field(".registry.reference"), "not read as a registry host")),
        ),
        (
            registry(json!({"reference": "registry://r.example/Team/ttl:v1"})),
            None,
            Some((field(".registry.reference"), "registry reference")),
        ),
        (
            registry(json!({"reference": "registry://r.example/ttl@sha256:abc"})),
            None,
            Some((field(".registry.reference"), "registry reference")),
        ),
        (registry(json!({"sha256": "ABC"})), None, Some((field(".registry.sha256"), "hex"))),
        (registry(json!({"pullSecret": "Reg_Cred"})), None, Some((field(".registry.pullSecret"), "object name"))),
        (
            registry(json!({"cosignPublicKey": "not a key"})),
            None,
            Some((field(".registry.cosignPublicKey"), "PEM public key")),
        ),
        (
            json!({"builtin": "adaptive-ttl", "registry": {"reference": "registry://r.example/t:v1", "sha256": "a".repeat(64)}}),
            None,
            Some((field(""), "exactly one of builtin, configMap, url or registry")),
        ),
        (
            json!({"builtin": "adaptive-ttl"}),
            Some(registry(json!({"reference": "registry://registry/ttl:v1"}))),
            Some(("spec.cache.candidate.registry.reference".to_string(), "not read as a registry host")),
        ),
    ];
    for (policy, candidate, expected) in cases {
        let what = format!("{policy} {candidate:?}");
        let findings = check_spec(&profile(policy, candidate), "doc");
        match expected {
            None => assert!(findings.is_empty(), "{what}: {findings:?}"),
            Some((field, says)) => {
                assert!(
                    findings.iter().any(|f| f.field == field && f.message.contains(says)),
                    "{what}: expected {field}: {says}, got {findings:?}"
                );
            }
        }
    }
}
