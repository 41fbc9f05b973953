//! Analysis templates offline: `validate` checks template documents as the API server would (strict fields, the
//! kind's rules) plus what holds whoever uses them (PromQL, declared arguments, a tenant's template may not choose a
//! Prometheus tenant), and resolves each profile's `templateRef`s against the templates of every file given, as the
//! operator resolves them against the cluster's; `plan` prints the resolved queries. Table tests, by field.

use perf_operator::manifest;
use perf_operator::validate::Report;
use serde_json::{Value, json};
use std::path::PathBuf;

fn cluster_template(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "perf.operator.dev/v1alpha1", "kind": "ClusterAnalysisTemplate",
           "metadata": {"name": name}, "spec": spec})
}

fn template(name: &str, namespace: Option<&str>, spec: Value) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({"apiVersion": "perf.operator.dev/v1alpha1", "kind": "AnalysisTemplate", "metadata": metadata, "spec": spec})
}

fn profile(metrics: Value) -> Value {
    json!({"apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
           "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"targetRef": {"name": "web"}, "canary": {"analysis": {"metrics": metrics}}}})
}

const MESH: &str = r#"sum(rate(istio_requests_total{destination_workload="{{args.workload}}", response_code!~"5.."}[{{interval}}])) / sum(rate(istio_requests_total{destination_workload="{{args.workload}}"}[{{interval}}]))"#;

/// The templates every case of the table sees, then the case's documents.
fn shared() -> Vec<Value> {
    vec![
        cluster_template(
            "mesh-success",
            json!({"query": MESH, "args": [{"name": "workload"}], "min": 0.99,
            "prometheus": "http://mesh-prometheus.istio-system:9090",
            "prometheusAccess": {"headers": {"X-Scope-OrgID": "mesh"}}}),
        ),
        template(
            "queue",
            Some("shop"),
            json!({"query": r#"avg(queue_depth{namespace="{{namespace}}", queue="{{args.queue}}"})"#,
            "args": [{"name": "queue", "default": "orders"}], "max": 100}),
        ),
        template("elsewhere", Some("other"), json!({"query": "vector(1)", "max": 1})),
    ]
}

fn report(docs: &[Value]) -> Report {
    let text: String =
        shared().iter().chain(docs).map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap())).collect();
    let parsed = manifest::parse_documents(&PathBuf::from("t.yaml"), &text).expect("documents");
    let mut report = Report::default();
    report.add_documents(&parsed);
    report
}

fn findings(docs: &[Value]) -> Vec<String> {
    report(docs).findings.iter().map(|f| format!("{}: {}: {}", f.location, f.field, f.message)).collect()
}

#[test]
fn profiles_naming_templates_among_the_files_are_valid() {
    let ok = profile(json!([
        {"name": "mesh", "templateRef": {"kind": "ClusterAnalysisTemplate", "name": "mesh-success"}, "args": {"workload": "web-canary"}},
        {"name": "queue", "templateRef": {"name": "queue"}},
        {"name": "queue-b", "templateRef": {"name": "queue"}, "args": {"queue": "billing"}, "max": 5},
        {"name": "inline", "query": r#"up{namespace="{{namespace}}"}"#, "min": 1}
    ]));
    assert_eq!(findings(&[ok]), Vec::<String>::new());
}

/// Each row: the profile's metrics, or an extra template document, and the one `doc:field: message` part expected.
#[test]
fn every_mistake_is_named_by_document_and_field() {
    let cases: Vec<(Value, &str)> = vec![
        (
            profile(json!([{"name": "m", "templateRef": {"name": "absent"}}])),
            "t.yaml:4: spec.canary.analysis.metrics[0].templateRef: AnalysisTemplate absent not found in namespace shop",
        ),
        (
            profile(json!([{"name": "m", "templateRef": {"name": "elsewhere"}}])),
            "spec.canary.analysis.metrics[0].templateRef: AnalysisTemplate elsewhere not found in namespace shop",
        ),
        (
            profile(json!([{"name": "m", "templateRef": {"kind": "ClusterAnalysisTemplate", "name": "mesh-success"}}])),
            "spec.canary.analysis.metrics[0].args: ClusterAnalysisTemplate mesh-success needs argument \"workload\"",
        ),
        (
            profile(json!([{"name": "m", "templateRef": {"kind": "ClusterAnalysisTemplate", "name": "mesh-success"},
                         "args": {"workload": "web\"} or up{x=\""}}])),
            "spec.canary.analysis.metrics[0].args.workload: \"web\\\"} or up{x=\\\"\" is not an argument value",
        ),
        (
            profile(json!([{"name": "m", "templateRef": {"name": "queue"}, "args": {"topic": "x"}}])),
            "spec.canary.analysis.metrics[0].args.topic: AnalysisTemplate queue has no argument \"topic\": it takes queue",
        ),
        (
            profile(json!([{"name": "m", "query": "up", "templateRef": {"name": "queue"}, "max": 1}])),
            "spec.canary.analysis.metrics[0]: metric needs exactly one of query or templateRef",
        ),
        (
            profile(json!([{"name": "m", "max": 1}])),
            "spec.canary.analysis.metrics[0]: metric needs exactly one of query or templateRef",
        ),
        (
            profile(json!([{"name": "m", "query": "up{namespace=\"shop\"}", "args": {"a": "b"}, "max": 1}])),
            "spec.canary.analysis.metrics[0]: metric args need a templateRef",
        ),
        (
            profile(json!([{"name": "m", "templateRef": {"name": "queue", "kind": "Template"}}])),
            "spec.canary.analysis.metrics[0].templateRef.kind",
        ),
        (template("peek", Some("shop"), json!({"query": r#"sum(up{namespace="tenant-b"})"#, "max": 1})), ""),
        (template("bad", None, json!({"query": "sum(", "max": 1})), "t.yaml:4: spec.query: not PromQL"),
        (
            template("bad", None, json!({"query": "up{x=\"{{args.y}}\"}", "max": 1})),
            "spec.query: unknown placeholder {{args.y}}: known are {{namespace}}",
        ),
        (template("bad", None, json!({"query": "up", "args": [{"name": "1x"}]})), "spec.args[0].name"),
        (
            template("bad", None, json!({"query": "up", "args": [{"name": "a", "default": "a b"}]})),
            "spec.args[0].default: \"a b\" is not an argument value",
        ),
        (
            template("bad", None, json!({"query": "up", "min": 2, "max": 1})),
            "spec: template min must be <= max, got 2 > 1",
        ),
        (
            template("bad", None, json!({"query": "up", "prometheusAccess": {"headers": {"X-Api-Key": "k"}}})),
            "spec.prometheusAccess: template prometheusAccess needs prometheus",
        ),
        (
            template(
                "bad",
                None,
                json!({"query": "up", "prometheus": "http://p:9090",
                                       "prometheusAccess": {"headers": {"X-Scope-OrgID": "other"}}}),
            ),
            "spec.prometheusAccess.headers: header \"X-Scope-OrgID\" selects a tenant",
        ),
        (
            template("bad", None, json!({"query": "up", "prometheus": "ftp://p"})),
            "spec.prometheus: \"ftp://p\" is not an http",
        ),
        (
            template("bad", None, json!({"query": "up", "thresholds": 1})),
            "spec.thresholds: unknown field \"thresholds\"",
        ),
        (
            cluster_template("bad", json!({"query": "up", "mAx": 1})),
            "spec.mAx: unknown field \"mAx\" (did you mean \"max\"?)",
        ),
        (template("bad", None, json!({"query": 3})), "spec.query: invalid type: integer `3`, expected a string"),
    ];
    for (doc, expected) in cases {
        let found = findings(std::slice::from_ref(&doc));
        if expected.is_empty() {
            // A tenant's template that reads another namespace is valid on its own: the profile that uses it is
            // refused (the namespace is the user's, known only then).
            assert_eq!(found, Vec::<String>::new(), "{doc}");
            continue;
        }
        assert!(found.iter().any(|f| f.contains(expected)), "{expected:?} not in {found:#?}");
    }
}

#[test]
fn a_tenants_template_reading_another_namespace_is_refused_on_the_profile_that_uses_it() {
    let peek = template("peek", Some("shop"), json!({"query": r#"sum(up{namespace="tenant-b"})"#, "max": 1}));
    let uses = profile(json!([{"name": "m", "templateRef": {"name": "peek"}}]));
    let found = findings(&[peek, uses]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("metrics[0].templateRef: AnalysisTemplate peek: query: selector"), "{found:#?}");
    // The administrator's template may read beyond the namespace.
    let mesh = cluster_template("peek", json!({"query": r#"sum(up{namespace="tenant-b"})"#, "max": 1}));
    let uses = profile(json!([{"name": "m", "templateRef": {"name": "peek", "kind": "ClusterAnalysisTemplate"}}]));
    assert_eq!(findings(&[mesh, uses]), Vec::<String>::new());
}

#[tokio::test]
async fn plan_prints_the_resolved_queries_and_refuses_an_unresolved_reference() {
    let dir = std::env::temp_dir().join(format!("perf-templates-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, docs: &[Value]| {
        let path = dir.join(name);
        let text: String = docs.iter().map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap())).collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let uses =
        profile(json!([{"name": "mesh", "templateRef": {"kind": "ClusterAnalysisTemplate", "name": "mesh-success"},
                                "args": {"workload": "web-canary"}}]));
    let mut docs = shared();
    docs.push(uses.clone());
    let args = |path: PathBuf| perf_operator::cli::PlanArgs {
        file: path,
        output: perf_operator::cli::OutputFormat::Json,
        clickhouse: None,
        clickhouse_user: None,
        clickhouse_password_file: None,
        prometheus: None,
        observations: None,
    };
    let out = perf_operator::cli::run_plan(&args(file("ok.yaml", &docs))).await.expect("plan");
    let plans: Value = serde_json::from_str(&out.text).unwrap();
    // One profile: one plan, not a list.
    let checks = plans["canary"]["checks"].as_array().expect("checks");
    let mesh = checks.iter().find(|c| c["name"] == "mesh").expect("the templated check");
    assert!(mesh["query"].as_str().unwrap().contains(r#"destination_workload="web-canary""#), "{mesh}");
    assert!(mesh["query"].as_str().unwrap().contains("[1m]"), "{mesh}");
    assert_eq!(mesh["min"], json!(0.99));
    let refused = match perf_operator::cli::run_plan(&args(file("alone.yaml", &[uses]))).await {
        Ok(out) => panic!("planned without the template: {}", out.text),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("ClusterAnalysisTemplate mesh-success not found"), "{refused}");
}
