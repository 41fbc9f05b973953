//! The CRD schema (what the API server enforces: bounds, patterns, list-map keys, CEL rules) and the Rust rules in
//! `validation` must agree: every bad input of the table is refused by both, naming the same field, and the good
//! profiles pass both.

use kube::core::cel::Validator;
use perf_operator_api::PerformanceProfile;
use perf_operator_api::validation::validate_spec;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = serde_json::to_value(perf_operator_api::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The shared table of bad profiles (also run against a real API server by the end-to-end suite).
fn table() -> Value {
    serde_json::from_str(include_str!("bad_profiles.json")).unwrap()
}

/// A profile exercising every section, valid.
fn base() -> Value {
    table()["base"].clone()
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

/// The API server refuses two items of an `x-kubernetes-list-type: map` list with the same keys, and two equal
/// items of a `set`.
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
            if schema.get("x-kubernetes-list-type") == Some(&json!("set")) {
                let mut seen = std::collections::BTreeSet::new();
                for item in items {
                    if !seen.insert(serde_json::to_string(item).unwrap()) {
                        errors.push(format!("{path}: duplicate value {item}"));
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
    // Every YAML under examples/, the GitOps layouts' profiles included.
    let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
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
    let cases = table()["cases"].as_array().unwrap().clone();
    let table =
        cases.iter().map(|c| (c["pointer"].as_str().unwrap(), c["value"].clone(), c["field"].as_str().unwrap()));
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
    let generated = serde_saphyr::to_string(&perf_operator_api::crd()).unwrap();
    let body = checked_in.split_once("---\n").map(|(_, b)| b).unwrap_or_default();
    assert!(
        body == generated,
        "crds/performanceprofile.yaml drifted from the Rust types: run `cargo run -p perf-operator -- crd > crds/performanceprofile.yaml`"
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/analysistemplates.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let docs: Vec<&str> = checked_in.split("---\n").skip(1).collect();
    let generated: Vec<String> =
        perf_operator_api::template_crds().iter().map(|c| serde_saphyr::to_string(c).unwrap()).collect();
    assert!(
        docs == generated.iter().map(String::as_str).collect::<Vec<_>>(),
        "crds/analysistemplates.yaml drifted: run `cargo run -p perf-operator -- crd --templates > crds/analysistemplates.yaml`"
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

/// The analysis template kinds: every bad template of the table is refused by the CRD's schema and CEL rules and by
/// `validate_template`, each naming the field; a good one passes both, for both kinds (they share one spec).
#[test]
fn bad_templates_are_refused_by_both_naming_the_field() {
    let good = json!({"query": "sum(rate(x{namespace=\"{{namespace}}\", svc=\"{{args.svc}}\"}[{{interval}}]))",
        "args": [{"name": "svc", "default": "web"}], "min": 0, "max": 1, "onNoData": "fail",
        "prometheus": "https://mesh-prometheus:9090", "prometheusAccess": {"headers": {"X-Api-Key": "k"}}});
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/query", json!(""), "spec.query"),
        ("/args", json!([{"name": "svc"}, {"name": "svc"}]), "spec.args"),
        ("/args", json!([{"name": "1svc"}]), "spec.args[0].name"),
        ("/args", json!([{"name": "svc", "default": "a\"b"}]), "spec.args[0].default"),
        ("/args", json!([{"name": "svc", "default": ""}]), "spec.args[0].default"),
        ("/min", json!(2), "spec"),
        ("/prometheus", json!("ftp://x"), "spec.prometheus"),
        ("/prometheus", json!("http://user:pw@x"), "spec.prometheus"),
    ];
    let [namespaced, cluster] = perf_operator_api::template_crds().map(|c| serde_json::to_value(c).unwrap());
    for crd in [namespaced, cluster] {
        let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let object = |spec: &Value| {
            json!({"apiVersion": "perf.operator.dev/v1alpha1", "kind": crd["spec"]["names"]["kind"],
                                           "metadata": {"name": "t"}, "spec": spec})
        };
        let rust = |spec: &Value| {
            let body: perf_operator_api::TemplateBody = serde_json::from_value(spec.clone()).unwrap();
            perf_operator_api::validation::validate_template(&body, "spec")
        };
        assert_eq!(server_errors(&schema, &object(&good)), Vec::<String>::new());
        assert_eq!(rust(&good), vec![]);
        let mut no_prometheus = good.clone();
        no_prometheus.as_object_mut().unwrap().remove("prometheus");
        assert!(!server_errors(&schema, &object(&no_prometheus)).is_empty(), "access without prometheus");
        assert!(rust(&no_prometheus).iter().any(|e| e.field == "spec.prometheusAccess"));
        for (pointer, value, field) in &cases {
            let mut spec = good.clone();
            *spec.pointer_mut(pointer).unwrap() = value.clone();
            let server = server_errors(&schema, &object(&spec));
            assert!(!server.is_empty(), "the CRD accepts {pointer} = {value}");
            let ours = rust(&spec);
            assert!(ours.iter().any(|e| e.field == *field), "{pointer} = {value}: {ours:?} names no {field}");
        }
    }
}
