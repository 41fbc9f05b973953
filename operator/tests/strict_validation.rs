//! `perf-operator validate` refuses what the API server refuses on `kubectl apply` (strict field validation):
//! unknown fields anywhere, a version or kind the CRD does not serve; and still reports the CRD's own rules.
//! Repeated keys are refused too, though kubectl keeps the last one silently. Table tests: each row is a document
//! and the exact `doc:field` findings expected, with a part of the first message.

use perf_operator::manifest;
use perf_operator::validate::{self, Report};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// A profile using every section, with preserve-unknown-fields subtrees and a status; valid.
fn base() -> Value {
    json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {
            "name": "risk-api", "namespace": "risk",
            "labels": {"team": "risk"}, "annotations": {"perf.operator.dev/anything": "x"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "1"}]
        },
        "spec": {
            "targetRef": {"name": "risk-api"},
            "slo": {"p99LatencyMs": 150, "errorRatePercent": 0.1},
            "cache": {
                "redis": {"provision": {"maxMemory": "256Mi"}},
                "ttlClasses": [{"name": "riskModel", "ttlSeconds": 3600}, {"name": "metrics", "ttlSeconds": 300}],
                "policy": {"builtin": "adaptive-ttl", "settings": {"any": {"thing": [1, {"goes": true}]}}}
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
            "rateLimit": {"routes": [{"route": "/api", "requestsPerSecond": 100, "burst": 200}]},
            "canary": {
                "stages": [10, 25, 50, 100], "stepInterval": "1m",
                "analysis": {"prometheus": "http://prometheus:9090", "failureLimit": 2}
            }
        },
        "status": {
            "phase": "Ready",
            "pools": {"appReplicas": 2, "sizes": {"clickhouse": {"min": 1, "max": 2, "reason": "fixed"}}},
            "policies": {"rateLimit": {"policy": "builtin:adaptive-rate-limit", "published": "Policy",
                                       "routes": {"/a": {"requestsPerSecond": 1, "burst": 2}}}}
        }
    })
}

/// `base()` with `key: value` set in the object at the JSON `pointer`.
fn with(pointer: &str, key: &str, value: Value) -> Value {
    let mut doc = base();
    if let Some(Value::Object(object)) = doc.pointer_mut(pointer) {
        object.insert(key.into(), value);
    } else {
        panic!("no object at {pointer}");
    }
    doc
}

/// `base()` without the key at `pointer`.
fn without(pointer: &str, key: &str) -> Value {
    let mut doc = base();
    if let Some(Value::Object(object)) = doc.pointer_mut(pointer) {
        object.remove(key);
    }
    doc
}

fn yaml(doc: &Value) -> String {
    serde_saphyr::to_string(doc).expect("serializable")
}

/// Findings of a YAML text read as the file `t.yaml`, as `doc:field: message`.
fn findings(text: &str) -> (Report, Vec<String>) {
    let docs = manifest::parse_documents(Path::new("t.yaml"), text).expect("valid YAML");
    let mut report = Report::default();
    report.add_documents(&docs);
    let lines = report.findings.iter().map(|f| f.to_string().trim_start_matches("t.yaml:").to_string()).collect();
    (report, lines)
}

struct Case {
    name: &'static str,
    text: String,
    /// `doc:field` of every finding, in order.
    fields: &'static [&'static str],
    /// Part of the first finding's message.
    message: &'static str,
}

fn case(name: &'static str, doc: Value, fields: &'static [&'static str], message: &'static str) -> Case {
    Case { name, text: yaml(&doc), fields, message }
}

/// Runs a table, collecting every failing row before failing, so one run shows them all.
fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let (_, lines) = findings(&c.text);
        let fields: Vec<&str> = lines.iter().map(|l| l.split_once(": ").map_or(l.as_str(), |(f, _)| f)).collect();
        let message_ok = c.message.is_empty() || lines.first().is_some_and(|l| l.contains(c.message));
        if fields != c.fields || !message_ok {
            failures.push(format!("{}: expected {:?} with {:?}, got {lines:#?}", c.name, c.fields, c.message));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_base_profile_is_valid() {
    let (report, lines) = findings(&yaml(&base()));
    assert_eq!((report.profiles, lines), (1, Vec::<String>::new()));
}

#[test]
fn one_profile_per_target_across_files_and_documents() {
    let doc = |name: &str, namespace: Option<&str>, target: &str| {
        let ns = namespace.map_or(String::new(), |n| format!(", namespace: {n}"));
        format!(
            "apiVersion: perf.operator.dev/v1alpha1\nkind: PerformanceProfile\nmetadata: {{name: {name}{ns}}}\n\
             spec: {{targetRef: {{name: {target}}}}}\n"
        )
    };
    let text = [
        doc("a", Some("shop"), "web"),
        doc("b", Some("shop"), "web"),
        doc("c", Some("billing"), "web"),
        doc("d", Some("shop"), "api"),
        doc("e", None, "web"),
        doc("f", Some("default"), "web"),
    ]
    .join("---\n");
    let (report, lines) = findings(&text);
    assert_eq!(report.profiles, 6);
    assert_eq!(
        lines,
        [
            "2:spec.targetRef.name: Deployment shop/web is already the target of profile a (t.yaml:1): one profile per target",
            "6:spec.targetRef.name: Deployment default/web is already the target of profile e (t.yaml:5): one profile per target",
        ]
    );
}

#[test]
fn examples_pass() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let files = manifest::expand(std::slice::from_ref(&examples)).expect("examples listed");
    assert!(files.len() >= 2, "{files:?}");
    // The GitOps layouts hold other kinds (Argo CD Applications, Flux Kustomizations): no problem, no profile.
    let mut profiles = 0;
    for file in files {
        let report = validate::validate_paths(std::slice::from_ref(&file)).expect("readable");
        let problems: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
        assert!(problems.is_empty(), "{}: {problems:#?}", file.display());
        profiles += report.profiles;
    }
    assert!(profiles >= 4, "only {profiles} profiles under examples/");
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    run(vec![
        case("top level", with("", "spce", json!({})), &["1:spce"], r#"unknown field "spce" (did you mean "spec"?)"#),
        case("metadata", with("/metadata", "labls", json!({"a": "b"})), &["1:metadata.labls"], "expected one of: "),
        case(
            "metadata, nested in ownerReferences",
            with("/metadata/ownerReferences/0", "bogus", json!(1)),
            &["1:metadata.ownerReferences[0].bogus"],
            r#"unknown field "bogus""#,
        ),
        case("spec", with("/spec", "targetRefs", json!({})), &["1:spec.targetRefs"], r#"(did you mean "targetRef"?)"#),
        case(
            "nested object",
            with("/spec/slo", "errorRatePercnt", json!(1)),
            &["1:spec.slo.errorRatePercnt"],
            r#"unknown field "errorRatePercnt" (did you mean "errorRatePercent"?); expected one of: alerts, errorRatePercent, p99LatencyMs"#,
        ),
        case(
            "list item",
            with("/spec/cache/ttlClasses/0", "ttl", json!(60)),
            &["1:spec.cache.ttlClasses[0].ttl"],
            "expected one of: name, ttlSeconds",
        ),
        case(
            "list item, not the first",
            with("/spec/cache/ttlClasses/1", "ttlSecond", json!(60)),
            &["1:spec.cache.ttlClasses[1].ttlSecond"],
            r#"did you mean "ttlSeconds"?"#,
        ),
        case(
            "list in a list",
            with("/spec/clickhouse/tables/0/indexes/0", "granularty", json!(4)),
            &["1:spec.clickhouse.tables[0].indexes[0].granularty"],
            r#"did you mean "granularity"?"#,
        ),
        case(
            "canary analysis",
            with("/spec/canary/analysis", "failureLimt", json!(2)),
            &["1:spec.canary.analysis.failureLimt"],
            r#"did you mean "failureLimit"?"#,
        ),
        case(
            "rate limit route",
            with("/spec/rateLimit/routes/0", "rps", json!(5)),
            &["1:spec.rateLimit.routes[0].rps"],
            r#"unknown field "rps""#,
        ),
        case(
            "a section's own object",
            with("/spec/cache/redis/provision", "maxmemory", json!("1Gi")),
            &["1:spec.cache.redis.provision.maxmemory"],
            r#"did you mean "maxMemory"?"#,
        ),
        case("status", with("/status", "phaze", json!("Ready")), &["1:status.phaze"], r#"did you mean "phase"?"#),
        case(
            "status, under additionalProperties",
            with("/status/pools/sizes/clickhouse", "bogus", json!(1)),
            &["1:status.pools.sizes.clickhouse.bogus"],
            "expected one of: limit, max, min, reason",
        ),
        case(
            "inside a field that takes no fields",
            with("/spec/targetRef", "name", json!({"x": 1})),
            &["1:spec.targetRef.name.x", "1:spec.targetRef.name"],
            "declares no fields",
        ),
    ]);
}

#[test]
fn declared_open_fields_accept_anything() {
    run(vec![
        case("policy settings", with("/spec/cache/policy/settings", "new", json!({"deep": [{"x": 1}]})), &[], ""),
        case(
            "status policy routes map",
            with("/status/policies/rateLimit/routes", "/b", json!({"requestsPerSecond": 3, "burst": 4})),
            &[],
            "",
        ),
        case("labels", with("/metadata/labels", "any-label", json!("v")), &[], ""),
        case("annotations", with("/metadata/annotations", "example.com/any", json!("v")), &[], ""),
        case("metadata read-only fields", with("/metadata", "resourceVersion", json!("12")), &[], ""),
        case(
            "status ttlSeconds map",
            with("/status", "cache", json!({"address": "r:6379", "ttlSeconds": {"x": 1}})),
            &[],
            "",
        ),
    ]);
}

#[test]
fn every_unknown_field_is_reported_with_the_crd_rules() {
    let mut doc = with("/spec/slo", "errorRatePercnt", json!(1));
    doc["spec"]["slo"]["errorRatePercent"] = json!(200);
    doc["spec"]["canary"]["analysis"]["bogus"] = json!(true);
    doc["bogus"] = json!(1);
    run(vec![
        case(
            "unknown fields and a CRD rule",
            doc,
            &["1:bogus", "1:spec.canary.analysis.bogus", "1:spec.slo.errorRatePercnt", "1:spec.slo.errorRatePercent"],
            "",
        ),
        case(
            "a type error",
            with("/spec/slo", "p99LatencyMs", json!("fast")),
            &["1:spec.slo.p99LatencyMs"],
            "invalid type",
        ),
    ]);
}

#[test]
fn a_wrong_version_or_kind_is_refused() {
    run(vec![
        case(
            "v1",
            with("", "apiVersion", json!("perf.operator.dev/v1")),
            &["1:apiVersion"],
            "apiVersion: expected perf.operator.dev/v1alpha1, got perf.operator.dev/v1",
        ),
        case(
            "v1beta1",
            with("", "apiVersion", json!("perf.operator.dev/v1beta1")),
            &["1:apiVersion"],
            "got perf.operator.dev/v1beta1",
        ),
        case(
            "group without version",
            with("", "apiVersion", json!("perf.operator.dev")),
            &["1:apiVersion"],
            "got perf.operator.dev",
        ),
        case("another group", with("", "apiVersion", json!("example.com/v1alpha1")), &["1:apiVersion"], "got example"),
        case(
            "missing apiVersion",
            without("", "apiVersion"),
            &["1:apiVersion"],
            "apiVersion: is required; expected perf.operator.dev/v1alpha1",
        ),
        case("apiVersion not a string", with("", "apiVersion", json!(1)), &["1:apiVersion"], "got number 1"),
        case(
            "misspelt kind",
            with("", "kind", json!("PerformanceProfle")),
            &["1:kind"],
            "kind: expected PerformanceProfile, got PerformanceProfle",
        ),
        case(
            "kind in lower case",
            with("", "kind", json!("performanceprofile")),
            &["1:kind"],
            "got performanceprofile",
        ),
        case("missing kind", without("", "kind"), &["1:kind"], "kind: is required; expected PerformanceProfile"),
        case(
            "wrong version and an unknown field",
            with("/spec", "bogus", json!(1)).tap(|d| d["apiVersion"] = json!("perf.operator.dev/v1")),
            &["1:apiVersion", "1:spec.bogus"],
            "",
        ),
    ]);
}

/// Chains a mutation onto a table row's document.
trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}
impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

fn raw(name: &'static str, text: &str, fields: &'static [&'static str], message: &'static str) -> Case {
    Case { name, text: text.into(), fields, message }
}

#[test]
fn documents_without_type_are_refused_and_other_resources_skipped() {
    run(vec![
        raw("no apiVersion nor kind", "replicas: 3\n", &["1:apiVersion", "1:kind"], "apiVersion: is required"),
        raw("a list", "- a\n", &["1:(document)"], "expected an object with apiVersion and kind"),
        raw("a ConfigMap", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  x: y\n", &[], ""),
    ]);
}

#[test]
fn duplicate_keys_are_refused_by_path() {
    let good = yaml(&base());
    let slo = good.replacen("p99LatencyMs: 150", "p99LatencyMs: 150\n    p99LatencyMs: 200", 1);
    let top = format!("{good}spec:\n  targetRef:\n    name: x\n");
    run(vec![
        raw("nested", &slo, &["1:spec.slo.p99LatencyMs"], "duplicate field"),
        raw("top level, last one wins and is checked", &top, &["1:spec"], "duplicate field"),
        raw("in the second document", &format!("{good}---\n{slo}"), &["2:spec.slo.p99LatencyMs"], "duplicate"),
    ]);
}

#[test]
fn multi_document_findings_name_the_document() {
    let good = yaml(&base());
    let bad = yaml(&with("/spec/slo", "errorRatePercnt", json!(1)));
    let config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
    run(vec![
        raw("second of two", &format!("{good}---\n{bad}"), &["2:spec.slo.errorRatePercnt"], "errorRatePercnt"),
        raw("after a ConfigMap", &format!("{config_map}---\n{bad}"), &["2:spec.slo.errorRatePercnt"], ""),
        raw(
            "second has a wrong kind",
            &format!("{good}---\n{}", good.replace("kind: PerformanceProfile", "kind: Profile")),
            &["2:kind"],
            "got Profile",
        ),
    ]);
    let (report, _) = findings(&format!("{good}---\n{config_map}---\n{bad}"));
    assert_eq!(report.profiles, 2, "the ConfigMap is not counted");
}

/// Through the files and directories the CLI reads, and `plan`'s reader, which refuses duplicates outright.
#[test]
fn files_on_disk() {
    let dir = std::env::temp_dir().join(format!("perf-operator-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = yaml(&base());
    let bad = yaml(&with("/spec/cache/ttlClasses/0", "ttl", json!(60)));
    std::fs::write(dir.join("a.yaml"), &good).expect("write");
    // Another namespace's profile first: the same one as a.yaml's would be a second profile on its target.
    let elsewhere = good.replace("namespace: risk", "namespace: risk-b");
    assert_ne!(elsewhere, good);
    std::fs::write(dir.join("b.yaml"), format!("{elsewhere}---\n{bad}")).expect("write");
    std::fs::write(dir.join("c.yaml"), good.replacen("kind:", "kind: X\nkind:", 1)).expect("write");
    let report = validate::validate_paths(std::slice::from_ref(&dir)).expect("readable");
    let plan_read = manifest::read_documents(&dir.join("c.yaml"));
    std::fs::remove_dir_all(&dir).expect("cleanup");

    let lines: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    let b = dir.join("b.yaml").display().to_string();
    let c = dir.join("c.yaml").display().to_string();
    assert_eq!(report.profiles, 4);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with(&format!("{b}:2:spec.cache.ttlClasses[0].ttl: unknown field \"ttl\"")), "{lines:#?}");
    assert!(lines[1].starts_with(&format!("{c}:1:kind: duplicate field")), "{lines:#?}");
    assert!(plan_read.is_err_and(|e| e.to_string().contains("duplicate keys: kind")));
}
