use super::*;
use perf_operator_api::{NoDataPolicy, TemplateArg};

const MESH: &str = r#"sum(rate(istio_requests_total{destination_workload="{{args.workload}}", reporter="{{args.reporter}}", response_code!~"5.."}[{{interval}}])) / sum(rate(istio_requests_total{destination_workload="{{args.workload}}"}[{{interval}}]))"#;
const OWN: &str = r#"avg(queue_depth{namespace="{{namespace}}", queue="{{args.queue}}"})"#;

fn ctx() -> QueryContext {
    QueryContext { namespace: "shop".into(), target: "web".into() }
}

fn arg(name: &str, default: Option<&str>) -> TemplateArg {
    TemplateArg { name: name.into(), default: default.map(Into::into) }
}

fn templates() -> Templates {
    let mesh = TemplateBody {
        query: MESH.into(),
        args: vec![arg("workload", None), arg("reporter", Some("destination"))],
        prometheus: Some("http://mesh-prometheus.istio-system:9090".into()),
        min: Some(0.99),
        on_no_data: Some(NoDataPolicy::Fail),
        ..Default::default()
    };
    let own = TemplateBody {
        query: OWN.into(),
        args: vec![arg("queue", Some("orders"))],
        max: Some(100.0),
        ..Default::default()
    };
    let peek = TemplateBody { query: r#"sum(up{namespace="tenant-b"})"#.into(), max: Some(1.0), ..Default::default() };
    let typo = TemplateBody {
        query: r#"up{namespace="{{namespace}}", x="{{args.undeclared}}"}"#.into(),
        max: Some(1.0),
        ..Default::default()
    };
    let unbounded = TemplateBody { query: r#"up{namespace="{{namespace}}"}"#.into(), ..Default::default() };
    Templates {
        namespaced: BTreeMap::from([
            ("queue".to_string(), own),
            ("peek".to_string(), peek.clone()),
            ("typo".to_string(), typo),
            ("unbounded".to_string(), unbounded),
        ]),
        cluster: BTreeMap::from([("mesh-success".to_string(), mesh), ("peek".to_string(), peek)]),
        cluster_refused: None,
    }
}

fn metric(name: &str, kind: TemplateKind, template: &str, args: &[(&str, &str)]) -> MetricCheck {
    MetricCheck {
        name: name.into(),
        template_ref: Some(TemplateRef { name: template.into(), kind }),
        args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

fn spec(metrics: Vec<MetricCheck>) -> CanarySpec {
    let mut spec = CanarySpec::default();
    spec.analysis.metrics = metrics;
    spec
}

const CLUSTER: TemplateKind = TemplateKind::ClusterAnalysisTemplate;
const OURS: TemplateKind = TemplateKind::AnalysisTemplate;

#[test]
fn a_cluster_template_fills_its_arguments_bounds_and_prometheus_and_may_read_beyond_the_namespace() {
    let inline = MetricCheck {
        name: "own".into(),
        query: r#"up{namespace="{{namespace}}"}"#.into(),
        max: Some(1.0),
        ..Default::default()
    };
    let spec = spec(vec![inline, metric("mesh", CLUSTER, "mesh-success", &[("workload", "web-canary")])]);
    let resolved = resolve(&spec, &templates(), &ctx()).unwrap();
    let m = &resolved.spec.analysis.metrics[1];
    assert!(m.query.contains(r#"destination_workload="web-canary", reporter="destination""#), "{}", m.query);
    assert_eq!((m.min, m.max, m.on_no_data), (Some(0.99), None, Some(NoDataPolicy::Fail)));
    assert_eq!(resolved.endpoints.len(), 1);
    assert_eq!(resolved.endpoints[0].url, "http://mesh-prometheus.istio-system:9090");
    assert_eq!((resolved.source_of(0), resolved.source_of(1)), (0, 1));
    let checks = resolved.checks(&Default::default(), &ctx());
    let sources: Vec<(String, usize)> = checks.iter().map(|c| (c.name.clone(), c.source)).collect();
    assert_eq!(sources[3..], [("own".to_string(), 0), ("mesh".to_string(), 1)]);
    assert!(checks[4].query.contains("[1m]"), "the built-in placeholders are rendered too: {}", checks[4].query);
}

#[test]
fn the_metrics_own_bounds_and_on_no_data_replace_the_templates() {
    let mut m = metric("mesh", CLUSTER, "mesh-success", &[("workload", "web")]);
    (m.max, m.on_no_data) = (Some(1.0), Some(NoDataPolicy::Wait));
    let resolved = resolve(&spec(vec![m]), &templates(), &ctx()).unwrap();
    let m = &resolved.spec.analysis.metrics[0];
    assert_eq!(
        (m.min, m.max, m.on_no_data),
        (None, Some(1.0), Some(NoDataPolicy::Wait)),
        "both bounds are the metric's"
    );
}

#[test]
fn two_metrics_on_one_template_share_its_endpoint() {
    let a = metric("a", CLUSTER, "mesh-success", &[("workload", "web")]);
    let b = metric("b", CLUSTER, "mesh-success", &[("workload", "api")]);
    let resolved = resolve(&spec(vec![a, b]), &templates(), &ctx()).unwrap();
    assert_eq!((resolved.endpoints.len(), resolved.source_of(0), resolved.source_of(1)), (1, 1, 1));
    assert_eq!(references(&resolved.spec).len(), 1);
}

#[test]
fn a_namespaced_template_is_held_to_the_namespace_and_uses_the_analysis_prometheus() {
    let resolved = resolve(&spec(vec![metric("q", OURS, "queue", &[])]), &templates(), &ctx()).unwrap();
    let m = &resolved.spec.analysis.metrics[0];
    assert!(m.query.contains(r#"queue="orders""#), "the default: {}", m.query);
    assert_eq!((resolved.endpoints.len(), resolved.source_of(0)), (0, 0));
    let problems = resolve(&spec(vec![metric("p", OURS, "peek", &[])]), &templates(), &ctx()).unwrap_err();
    assert_eq!(problems[0].0, "spec.canary.analysis.metrics[0].templateRef");
    assert!(problems[0].1.starts_with("AnalysisTemplate peek: query: selector"), "{problems:?}");
    // The same text as the administrator's is theirs to write.
    assert!(resolve(&spec(vec![metric("p", CLUSTER, "peek", &[])]), &templates(), &ctx()).is_ok());
}

/// Every way a reference can be wrong: each names its field and says what was expected.
#[test]
fn bad_references_are_refused_naming_the_field() {
    let cases: Vec<(MetricCheck, &str, &str)> = vec![
        (
            metric("m", OURS, "absent", &[]),
            "metrics[0].templateRef",
            "AnalysisTemplate absent not found in namespace shop",
        ),
        (metric("m", CLUSTER, "queue", &[]), "metrics[0].templateRef", "ClusterAnalysisTemplate queue not found"),
        (
            metric("m", CLUSTER, "mesh-success", &[]),
            "metrics[0].args",
            "needs argument \"workload\" (it has no default)",
        ),
        (
            metric("m", CLUSTER, "mesh-success", &[("workload", "web"), ("pod", "x")]),
            "metrics[0].args.pod",
            "has no argument \"pod\": it takes workload, reporter",
        ),
        (metric("m", CLUSTER, "peek", &[("x", "y")]), "metrics[0].args.x", "has no argument \"x\": it takes none"),
        (metric("m", OURS, "typo", &[]), "metrics[0].templateRef", "unknown placeholder {{args.undeclared}}"),
        (
            metric("m", OURS, "unbounded", &[]),
            "metrics[0]",
            "metric needs min or max: neither it nor AnalysisTemplate unbounded",
        ),
    ];
    for (m, field, message) in cases {
        let problems = resolve(&spec(vec![m]), &templates(), &ctx()).unwrap_err();
        let expected = format!("spec.canary.analysis.{field}");
        assert!(problems.iter().any(|(f, msg)| *f == expected && msg.contains(message)), "{field}: {problems:?}");
    }
}

/// What a tenant passes can never reshape the administrator's query: a value is a plain token.
#[test]
fn an_argument_that_could_change_the_query_is_refused() {
    let hostile = [
        r#"web"} or up{namespace="tenant-b"#,
        "web\"",
        "web}",
        "web|.*",
        ".*",
        "web) or vector(1",
        "a b",
        "web\n",
        "{{namespace}}",
        "x,y",
        "web'",
        "web\\",
        "web[5m]",
        "web=~",
        "",
    ];
    for value in hostile {
        let m = metric("m", CLUSTER, "mesh-success", &[("workload", value)]);
        let problems = resolve(&spec(vec![m]), &templates(), &ctx()).unwrap_err();
        assert_eq!(problems[0].0, "spec.canary.analysis.metrics[0].args.workload", "{value:?}: {problems:?}");
        assert!(problems[0].1.contains("is not an argument value"), "{value:?}: {problems:?}");
    }
    for value in ["web-canary", "api.v2", "team_a", "eu-west-1:8080", "svc/path"] {
        let m = metric("m", CLUSTER, "mesh-success", &[("workload", value)]);
        assert!(resolve(&spec(vec![m]), &templates(), &ctx()).is_ok(), "{value:?} is a plain token");
    }
}

#[test]
fn a_template_is_checked_on_its_own_for_what_holds_whoever_uses_it() {
    let ok = TemplateBody {
        query: MESH.into(),
        args: vec![arg("workload", None), arg("reporter", None)],
        ..Default::default()
    };
    assert_eq!(check_template(&ok), Vec::<(String, String)>::new());
    let undeclared = TemplateBody { query: MESH.into(), args: vec![arg("workload", None)], ..Default::default() };
    let problems = check_template(&undeclared);
    assert!(
        problems[0].1.starts_with("unknown placeholder {{args.reporter}}: known are {{args.workload}}, {{namespace}}"),
        "{problems:?}"
    );
    let broken = TemplateBody { query: "sum(rate(x[{{interval}}])".into(), ..Default::default() };
    assert!(check_template(&broken)[0].1.starts_with("not PromQL"), "{:?}", check_template(&broken));
}

#[test]
fn templates_are_read_from_documents_by_kind_and_namespace() {
    let docs: Vec<serde_json::Value> = [
        r#"{"apiVersion":"perf.operator.dev/v1alpha1","kind":"ClusterAnalysisTemplate","metadata":{"name":"mesh"},"spec":{"query":"up","max":1}}"#,
        r#"{"apiVersion":"perf.operator.dev/v1alpha1","kind":"AnalysisTemplate","metadata":{"name":"here","namespace":"shop"},"spec":{"query":"up"}}"#,
        r#"{"apiVersion":"perf.operator.dev/v1alpha1","kind":"AnalysisTemplate","metadata":{"name":"unset"},"spec":{"query":"up"}}"#,
        r#"{"apiVersion":"perf.operator.dev/v1alpha1","kind":"AnalysisTemplate","metadata":{"name":"there","namespace":"other"},"spec":{"query":"up"}}"#,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"mesh"}}"#,
        r#"{"apiVersion":"perf.operator.dev/v1alpha1","kind":"PerformanceProfile","metadata":{"name":"web"}}"#,
    ]
    .iter()
    .map(|d| serde_json::from_str(d).unwrap())
    .collect();
    let t = Templates::from_documents(&docs, "shop").unwrap();
    assert_eq!(t.cluster.keys().collect::<Vec<_>>(), ["mesh"]);
    assert_eq!(t.namespaced.keys().collect::<Vec<_>>(), ["here", "unset"]);
    let bad: serde_json::Value = serde_json::from_str(
        r#"{"apiVersion":"perf.operator.dev/v1alpha1","kind":"ClusterAnalysisTemplate","metadata":{"name":"x"},"spec":{"query":3}}"#,
    )
    .unwrap();
    assert!(Templates::from_documents([&bad], "shop").unwrap_err().starts_with("ClusterAnalysisTemplate \"x\": "));
}

/// In the operator a template that cannot be resolved fails the one check it backs, by name and reason, without
/// asking Prometheus; the other checks are judged as always.
#[test]
fn a_metric_whose_template_is_missing_fails_its_check_with_the_reason() {
    let inline = MetricCheck { name: "own".into(), query: "q".into(), max: Some(1.0), ..Default::default() };
    let spec = spec(vec![inline, metric("mesh", CLUSTER, "renamed", &[])]);
    let resolved = resolve_each(&spec, &templates(), &ctx());
    let checks = resolved.checks(&Default::default(), &ctx());
    let reason = "spec.canary.analysis.metrics[1].templateRef: ClusterAnalysisTemplate renamed not found";
    assert_eq!(checks[4].broken.as_deref(), Some(reason));
    let answers: Vec<Result<Option<f64>, perf_prometheus::QueryError>> =
        vec![Ok(Some(500.0)), Ok(Some(0.01)), Ok(Some(0.0)), Ok(Some(0.5)), Ok(Some(1.0))];
    let analysis = crate::analysis::evaluate(&checks, answers);
    assert_eq!(analysis.verdict, perf_operator_api::CheckVerdict::Fail);
    assert_eq!(analysis.failing(), ["mesh"]);
    assert_eq!(analysis.outcomes[4].reason.as_deref(), Some(reason));
    assert_eq!(analysis.outcomes[3].verdict, perf_operator_api::CheckVerdict::Pass, "the others are judged");
    // Off in this installation: said so, not "not found".
    let off = Templates { cluster_refused: Some("off here".into()), ..templates() };
    let resolved = resolve_each(&spec, &off, &ctx());
    assert_eq!(
        resolved.broken[1].as_ref().map(Broken::reason).as_deref(),
        Some("spec.canary.analysis.metrics[1].templateRef: off here")
    );
}

#[tokio::test(start_paused = true)]
async fn a_broken_check_is_never_asked_and_a_template_check_goes_to_its_own_prometheus() {
    use perf_prometheus::{MetricsSource, QueryFuture};
    use std::sync::Mutex;
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);
    impl MetricsSource for Recording {
        fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
            self.0.lock().unwrap().push(promql.to_string());
            Box::pin(std::future::ready(Ok(Some(1.0))))
        }
    }
    let spec = spec(vec![
        metric("mesh", CLUSTER, "mesh-success", &[("workload", "web")]),
        metric("gone", CLUSTER, "renamed", &[]),
    ]);
    let resolved = resolve_each(&spec, &templates(), &ctx());
    let checks = resolved.checks(&Default::default(), &ctx());
    let (own, mesh) = (Recording::default(), Recording::default());
    let asking = crate::Asking { namespace: "shop", window: "1m", deadline: std::time::Duration::from_secs(1) };
    crate::analysis::analyse(&[&own, &mesh], &checks, asking).await;
    let asked_own = own.0.lock().unwrap().clone();
    let asked_mesh = mesh.0.lock().unwrap().clone();
    assert_eq!(asked_own.len(), 3, "the built-in gates only: {asked_own:?}");
    assert_eq!(asked_mesh.len(), 1, "the template's query only: {asked_mesh:?}");
    assert!(asked_mesh[0].contains("istio_requests_total"), "{asked_mesh:?}");
}
