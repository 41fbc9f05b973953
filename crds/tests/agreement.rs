//! The CRD schema (what the API server enforces: bounds, patterns, list-map keys, CEL rules) and the Rust rules in
//! `validation` must agree: every bad input of the table is refused by both, naming the same field, and the good
//! profiles pass both.

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use perf_operator_api::PerformanceProfile;
use perf_operator_api::validation::validate_spec;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = serde_json::to_value(PerformanceProfile::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// A profile exercising every section, valid.
fn base() -> Value {
    json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "risk-api", "namespace": "risk"},
        "spec": {
            "targetRef": {"name": "risk-api"},
            "slo": {"p99LatencyMs": 150, "errorRatePercent": 0.1},
            "cache": {
                "redis": {"provision": {"maxMemory": "256Mi"}},
                "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}, {"name": "metrics", "ttlSeconds": 300}],
                "policy": {"configMap": {"name": "ttl-policy", "key": "policy.wasm", "sha256": "a".repeat(64)}}
            },
            "pools": {"postgres": {"min": 5, "max": 20}, "clickhouse": {"min": 10, "max": 10}},
            "clickhouse": {
                "endpoint": "http://clickhouse:8123",
                "tables": [{
                    "name": "events",
                    "projections": [{"name": "by_model", "query": "SELECT model, count() GROUP BY model"}],
                    "indexes": [{"name": "idx_model", "expression": "model", "type": "bloom_filter(0.01)"}],
                    "codecs": [{"column": "timestamp", "codec": "DoubleDelta, ZSTD(1)"}]
                }]
            },
            "rateLimit": {
                "routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}],
                "prometheus": "http://prometheus:9090",
                "policy": {"url": {"url": "https://policies.example.com/rl.wasm", "sha256": "b".repeat(64)}}
            },
            "canary": {
                "stages": [10, 25, 50, 100], "stepInterval": "1m",
                "analysis": {"metrics": [{"name": "cpu", "query": "up", "max": 0.8}]}
            }
        }
    })
}

/// Errors the API server would report: structural schema (JSON Schema keywords), list-map key uniqueness and CEL.
fn server_errors(schema: &Value, object: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let validator = jsonschema::validator_for(schema).unwrap();
    errors.extend(validator.iter_errors(object).map(|e| format!("{}: {}", e.instance_path(), e)));
    list_map_duplicates(schema, object, "", &mut errors);
    if let Err(cel) = Validator::new().validate(schema, object, None) {
        errors.extend(cel.iter().map(|e| format!("{}: {}", e.field_path, e.message)));
    }
    errors
}

/// The API server refuses two items of an `x-kubernetes-list-type: map` list with the same keys.
fn list_map_duplicates(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                    list_map_duplicates(s, v, &format!("{path}/{k}"), errors);
                }
            }
        }
        Value::Array(items) => {
            if schema.get("x-kubernetes-list-type") == Some(&json!("map")) {
                let keys: Vec<String> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect();
                let mut seen = std::collections::BTreeSet::new();
                for item in items {
                    let key: Vec<Value> = keys.iter().map(|k| item.get(k).cloned().unwrap_or(Value::Null)).collect();
                    if !seen.insert(serde_json::to_string(&key).unwrap()) {
                        errors.push(format!("{path}: duplicate entry for key {key:?}"));
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                list_map_duplicates(&schema["items"], item, &format!("{path}/{i}"), errors);
            }
        }
        _ => {}
    }
}

fn rust_errors(object: &Value) -> Vec<String> {
    let profile: PerformanceProfile = serde_json::from_value(object.clone()).unwrap();
    validate_spec(&profile.spec).into_iter().map(|e| e.to_string()).collect()
}

/// Sets `pointer` (JSON pointer under the root) to `value` in a copy of the base profile.
fn with(pointer: &str, value: Value) -> Value {
    let mut object = base();
    *object.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in base")) = value;
    object
}

#[test]
fn good_profiles_pass_both() {
    let schema = schema();
    assert_eq!(server_errors(&schema, &base()), Vec::<String>::new());
    assert_eq!(rust_errors(&base()), Vec::<String>::new());
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            if doc["kind"] == "PerformanceProfile" {
                assert_eq!(server_errors(&schema, &doc), Vec::<String>::new(), "{doc}");
                assert_eq!(rust_errors(&doc), Vec::<String>::new(), "{doc}");
            }
        }
    }
}

#[test]
fn bad_inputs_are_refused_by_both_naming_the_field() {
    let sha_short = json!({"name": "p", "key": "k", "sha256": "abc"});
    let two_sources =
        json!({"builtin": "adaptive-ttl", "url": {"url": "https://x.example/p.wasm", "sha256": "c".repeat(64)}});
    let table: Vec<(&str, Value, &str)> = vec![
        ("/spec/canary/stages", json!([10, 5, 100]), "spec.canary.stages"),
        ("/spec/canary/stages", json!([10, 25, 50]), "spec.canary.stages"),
        ("/spec/canary/stages", json!([10, 10, 100]), "spec.canary.stages"),
        ("/spec/canary/stages", json!([0, 100]), "spec.canary.stages[0]"),
        ("/spec/canary/stages", json!([50, 150]), "spec.canary.stages"),
        ("/spec/canary/stages", json!([]), "spec.canary.stages"),
        ("/spec/canary/stepInterval", json!("1d"), "spec.canary.stepInterval"),
        ("/spec/canary/analysis/metrics/0", json!({"name": "cpu", "query": "up"}), "spec.canary.analysis.metrics[0]"),
        (
            "/spec/canary/analysis/metrics/0",
            json!({"name": "cpu", "query": "up", "min": 2, "max": 1}),
            "spec.canary.analysis.metrics[0]",
        ),
        ("/spec/pools/postgres", json!({"min": 30, "max": 20}), "spec.pools.postgres"),
        ("/spec/cache/ttlClasses/0/ttlSeconds", json!(0), "spec.cache.ttlClasses[0].ttlSeconds"),
        ("/spec/cache/ttlClasses/1/name", json!("riskModel"), "spec.cache.ttlClasses"),
        ("/spec/cache/policy/configMap", sha_short, "spec.cache.policy.configMap.sha256"),
        ("/spec/cache/policy", two_sources, "spec.cache.policy"),
        ("/spec/cache/policy", json!({"onFailure": "UseSpec"}), "spec.cache.policy"),
        ("/spec/cache/redis", json!({}), "spec.cache.redis"),
        ("/spec/cache/redis", json!({"provision": {}, "external": {"address": "redis://r:6379"}}), "spec.cache.redis"),
        ("/spec/cache/redis/provision/maxMemory", json!("0"), "spec.cache.redis.provision.maxMemory"),
        ("/spec/slo/errorRatePercent", json!(0.0), "spec.slo.errorRatePercent"),
        ("/spec/slo/errorRatePercent", json!(101.0), "spec.slo.errorRatePercent"),
        ("/spec/slo/p99LatencyMs", json!(0), "spec.slo.p99LatencyMs"),
        ("/spec/rateLimit/policy/url/url", json!("http://insecure.example/p.wasm"), "spec.rateLimit.policy.url.url"),
        ("/spec/rateLimit/routes/0/burst", json!(50), "spec.rateLimit.routes[0]"),
        ("/spec/rateLimit/prometheus", json!("prometheus:9090"), "spec.rateLimit.prometheus"),
        ("/spec/clickhouse/endpoint", json!("ftp://clickhouse"), "spec.clickhouse.endpoint"),
        ("/spec/clickhouse/tables/0/name", json!("events; DROP TABLE x"), "spec.clickhouse.tables[0].name"),
        (
            "/spec/clickhouse/tables/0/indexes/0/type",
            json!("bloom filter"),
            "spec.clickhouse.tables[0].indexes[0].type",
        ),
        (
            "/spec/clickhouse/tables/0/codecs/0/codec",
            json!("ZSTD(1); DROP"),
            "spec.clickhouse.tables[0].codecs[0].codec",
        ),
        ("/spec/targetRef/name", json!(""), "spec.targetRef.name"),
    ];
    let schema = schema();
    for (pointer, value, field) in table {
        let object = with(pointer, value.clone());
        let server = server_errors(&schema, &object);
        let rust = rust_errors(&object);
        assert!(!server.is_empty(), "the CRD schema accepts {pointer} = {value}");
        assert!(!rust.is_empty(), "the Rust rules accept {pointer} = {value}; the server says {server:?}");
        assert!(
            rust.iter().any(|e| e.starts_with(&format!("{field}:"))),
            "Rust names {rust:?}, expected {field} for {pointer} = {value}"
        );
    }
}

#[test]
fn the_checked_in_crd_is_generated_from_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/performanceprofile.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let generated = serde_saphyr::to_string(&PerformanceProfile::crd()).unwrap();
    let body = checked_in.split_once("---\n").map(|(_, b)| b).unwrap_or_default();
    assert!(
        body == generated,
        "crds/performanceprofile.yaml drifted from the Rust types: run `cargo run -p perf-operator -- crd > crds/performanceprofile.yaml`"
    );
}

#[test]
fn the_cached_cel_check_sees_what_the_server_sees() {
    let bad: PerformanceProfile = serde_json::from_value(with("/spec/canary/stages", json!([10, 5, 100]))).unwrap();
    let errors = perf_operator_api::validation::validate_cel(&bad).unwrap_err();
    assert!(
        errors.iter().any(|e| e.field_path.contains("stages") && e.message.contains("strictly increasing")),
        "{errors:?}"
    );
    let good: PerformanceProfile = serde_json::from_value(base()).unwrap();
    assert!(perf_operator_api::validation::validate_cel(&good).is_ok());
}
