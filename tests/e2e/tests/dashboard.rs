//! The Grafana dashboard of the chart (`charts/perf-operator/dashboards/perf-operator.json`) against a real
//! Prometheus scraping a running `perf-operator` and a simulated app every second, with the profile's SLO recording
//! rules loaded (from `perf-operator plan`). A profile is driven through a canary run that rolls back and one that
//! is held mid-way (paused), with an external Redis (`REDIS_URL`) seeing lookups, pools and a cache policy; a second
//! profile's policy cannot be loaded, so failures exist too. Then every panel's every query, with Grafana's
//! variables substituted, must parse and return data, and every metric it names must be one the operator exports,
//! a recording rule the operator generates, or one of the app's own.
//!
//! `the_dashboard_is_grafana_json_whose_queries_parse` needs no cluster: it checks the JSON's shape and that every
//! query parses.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use perf_e2e::fixtures::{create_app, profile, set_image};
use perf_e2e::prometheus::{App, Behaviour, Prometheus, exposed_names};
use perf_e2e::{Cluster, cluster, env_path, kubelet, repo_root};
use perf_operator_api::PerformanceProfile;
use perf_operator_api::status::{CanaryPhase, CanaryStatus};
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TARGET: &str = "shop";
/// A profile whose cache policy comes from a ConfigMap that does not exist: a policy failure every round.
const BROKEN: &str = "broken";
const OLD: &str = "registry.example/shop:1";
/// Interval variables as Grafana would expand them on a 1 s scrape: `$__rate_interval` is at least 4 scrapes.
const INTERVALS: [(&str, &str); 3] = [("__rate_interval", "1m"), ("__interval", "15s"), ("__range", "1h")];

fn dashboard() -> Value {
    let path = repo_root().join("charts/perf-operator/dashboards/perf-operator.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard")).expect("the dashboard is JSON")
}

/// Every panel, those nested in collapsed rows included.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        all.extend(p["panels"].as_array().into_iter().flatten().cloned());
        all.push(p.clone());
    }
    all
}

/// A panel's query: its title and expression, and the variable it repeats over.
struct Query {
    panel: String,
    expr: String,
    repeat: Option<String>,
}

fn queries(dashboard: &Value) -> Vec<Query> {
    let mut all = Vec::new();
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| panic!("a target without expr in {}", p["title"]));
            let repeat = p["repeat"].as_str().map(String::from);
            all.push(Query { panel: p["title"].as_str().unwrap_or("?").into(), expr: expr.into(), repeat });
        }
    }
    all
}

/// The query variables as (name, query): Grafana's `label_values(selector, label)`.
fn variables(dashboard: &Value) -> Vec<(String, String)> {
    let list = dashboard["templating"]["list"].as_array().expect("templating.list");
    let query = |v: &Value| v["query"]["query"].as_str().or(v["query"].as_str()).map(String::from);
    list.iter()
        .filter(|v| v["type"] == "query")
        .map(|v| (v["name"].as_str().unwrap().into(), query(v).unwrap()))
        .collect()
}

/// Values of the dashboard's variables, by name.
type Values = BTreeMap<String, String>;

fn vars(pairs: &[(&str, &str)]) -> Values {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `expr` with `$name` and `${name}` replaced from `values`, and Grafana's interval variables expanded.
fn substitute(expr: &str, values: &Values) -> String {
    let mut out = expr.to_string();
    let intervals = INTERVALS.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    for (name, value) in intervals.chain(values.clone()) {
        out = out.replace(&format!("${{{name}}}"), &value).replace(&format!("${name}"), &value);
    }
    assert!(!out.contains('$'), "a variable left in {out}");
    out
}

/// `label_values(selector, label)` split into its selector and label.
fn label_values(query: &str) -> (String, String) {
    let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).expect("label_values(...)");
    let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
    (selector.trim().into(), label.trim().into())
}

/// The metric names a query reads.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = std::convert::Infallible;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
            let vs = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let by_matcher = vs.matchers.matchers.iter().filter(|m| m.name == "__name__").map(|m| m.value.clone());
            self.0.extend(vs.name.clone().into_iter().chain(by_matcher));
            Ok(true)
        }
    }
    let parsed = parser::parse(expr)?;
    let mut names = Names(BTreeSet::new());
    let _ = walk_expr(&mut names, &parsed);
    Ok(names.0)
}

#[test]
fn the_dashboard_is_grafana_json_whose_queries_parse() {
    let d = dashboard();
    assert!(d["uid"].is_string() && d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "uid and schemaVersion");
    let list = d["templating"]["list"].as_array().expect("templating.list");
    let datasource = list.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
    assert_eq!((&datasource["type"], &datasource["query"]), (&json!("datasource"), &json!("prometheus")));
    let names: Vec<&str> = list.iter().filter_map(|v| v["name"].as_str()).collect();
    assert!(names.contains(&"namespace") && names.contains(&"profile"), "variables: {names:?}");
    for (name, query) in variables(&d) {
        let (selector, _) = label_values(&query);
        metric_names(&substitute(&selector, &fake_values())).unwrap_or_else(|e| panic!("variable {name}: {e}"));
    }
    let rows: Vec<String> = panels(&d).iter().filter(|p| p["type"] == "row").map(|p| p["title"].to_string()).collect();
    for row in ["Canary", "Cache", "Pools", "Policies", "Reconcile", "SLO", "Rate limits"] {
        assert!(rows.iter().any(|r| r.contains(row)), "no {row} row in {rows:?}");
    }
    let ids: Vec<u64> = panels(&d).iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), ids.iter().collect::<BTreeSet<_>>().len(), "panel ids are not unique");
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    for p in panels(&d).iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"], datasource, "datasource of panel {}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"], datasource, "datasource of a target of {}", p["title"]);
        }
    }
    let all = queries(&d);
    assert!(all.len() >= 30, "only {} queries", all.len());
    for q in all {
        let expr = substitute(&q.expr, &fake_values());
        let names = metric_names(&expr).unwrap_or_else(|e| panic!("panel {:?}: {expr}: {e}", q.panel));
        assert!(!names.is_empty(), "panel {:?} reads no metric: {expr}", q.panel);
    }
}

fn fake_values() -> Values {
    vars(&[("namespace", "shop"), ("profile", "web"), ("check", "p99-latency")])
}

/// The profile: an external Redis with the built-in cache policy, the fixture's pools, a canary judged on
/// `prometheus` (5 s steps, a custom check too), the default SLO and a rate limit the rate-limit service enforces.
fn shop(namespace: &str, prometheus: &str) -> PerformanceProfile {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL is set by tests/run.sh");
    let throughput = r#"sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}]))"#;
    profile(
        namespace,
        TARGET,
        json!({
            "cache": {"redis": {"external": {"address": redis}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
                      "policy": {"builtin": "adaptive-ttl"}},
            "canary": {"stages": [10, 25, 50, 100], "stepInterval": "5s", "progressDeadline": "2m", "analysis": {
                "prometheus": prometheus, "minRequests": 10,
                "metrics": [{"name": "throughput", "query": throughput, "min": 1}]}},
            // Enforced by the rate-limit service (its ConfigMap is written anywhere), adapted by the policy from the
            // app's traffic on `/`: decided, enforced and rejected all exist.
            "rateLimit": {"routes": [{"route": "/", "requestsPerSecond": 100, "burst": 100}],
                          "policy": {"builtin": "adaptive-rate-limit"}, "prometheus": prometheus,
                          "enforcement": {"mode": "rateLimitService", "window": "Minute"}}
        }),
    )
}

fn broken(namespace: &str) -> PerformanceProfile {
    let redis = std::env::var("REDIS_URL").expect("REDIS_URL is set by tests/run.sh");
    let missing = json!({"configMap": {"name": "no-such-policy", "key": "policy.wasm", "sha256": "0".repeat(64)}});
    profile(
        namespace,
        BROKEN,
        json!({
            "cache": {"redis": {"external": {"address": redis}}, "ttlClasses": [{"name": "pages", "ttlSeconds": 60}],
                      "policy": missing}
        }),
    )
}

/// The profile's SLO rule file, as `perf-operator plan -o json` prints it (`sloRules`).
fn slo_rules(profile: &PerformanceProfile) -> Value {
    let file = std::env::temp_dir().join(format!("perf-e2e-dashboard-{}.json", perf_e2e::random_hex(4)));
    std::fs::write(&file, serde_json::to_string(profile).expect("profile JSON")).expect("write profile");
    let out = std::process::Command::new(env_path("PERF_OPERATOR_BIN"))
        .args(["plan", "-f", file.to_str().expect("utf-8"), "-o", "json"])
        .output()
        .expect("run perf-operator plan");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "plan failed: {}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
    assert!(plan["sloRules"]["groups"].is_array(), "no sloRules in the plan: {}", plan["sloRules"]);
    plan["sloRules"].clone()
}

/// Looks values up in Redis on a thread (one hit and one miss every 100 ms), so the operator reads a hit ratio;
/// stops on drop.
struct RedisLookups(Arc<AtomicBool>);

impl RedisLookups {
    fn start() -> Self {
        let url = std::env::var("REDIS_URL").expect("REDIS_URL is set by tests/run.sh");
        let address = url.trim_start_matches("redis://").trim_end_matches('/').to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut stream = std::net::TcpStream::connect(&address).expect("Redis reachable");
            stream.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
            let key = format!("perf-e2e-dashboard-{}", perf_e2e::random_hex(4));
            let mut reply = [0u8; 256];
            while !stopped.load(Ordering::Relaxed) {
                let commands = format!("SET {key} 1\r\nGET {key}\r\nGET {key}-missing\r\n");
                if stream.write_all(commands.as_bytes()).is_err() || stream.read(&mut reply).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self(stop)
    }
}

impl Drop for RedisLookups {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn canary_status(c: &Cluster) -> Option<CanaryStatus> {
    c.profiles().get(TARGET).await.ok()?.status?.canary
}

async fn wait_canary(c: &Cluster, secs: u64, what: &str, done: impl Fn(&CanaryStatus) -> bool) -> CanaryStatus {
    c.eventually(secs, what, || async { canary_status(c).await.filter(|s| done(s)) }).await
}

/// `perf-operator canary ARGS -n NAMESPACE` with the admin KUBECONFIG, as a user runs it.
async fn canary_cli(args: &[&str], namespace: &str) {
    let mut command = std::process::Command::new(env_path("PERF_OPERATOR_BIN"));
    command.arg("canary").args(args).args(["-n", namespace]);
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run perf-operator");
    assert!(out.status.success(), "canary {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What is wrong with one query against Prometheus: an error, or no series.
async fn problem(prom: &Prometheus, expr: &str) -> Option<String> {
    match prom.query(expr).await {
        Err(e) => Some(format!("refused: {e}")),
        Ok(series) if series.is_empty() => Some("no data".into()),
        Ok(_) => None,
    }
}

/// Every query of the dashboard with the variables set, each repeated panel once per value of its variable, as
/// (panel, expression); the values of the query variables must include the test's own.
async fn expanded(prom: &Prometheus, d: &Value, namespace: &str) -> Result<Vec<(String, String)>, String> {
    let mut values = vars(&[("namespace", namespace), ("profile", TARGET)]);
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, query) in variables(d) {
        let (selector, label) = label_values(&query);
        let found = prom.label_values(&label, &substitute(&selector, &values)).await?;
        if let Some(own) = values.get(&name).filter(|own| !found.contains(own)) {
            return Err(format!("variable {name} ({query}) offers {found:?}, not {own}"));
        }
        if found.is_empty() {
            return Err(format!("variable {name} ({query}) has no value"));
        }
        options.insert(name, found);
    }
    let mut all = Vec::new();
    for q in queries(d) {
        let choices = match &q.repeat {
            Some(var) => options.get(var).cloned().ok_or(format!("panel {} repeats over unknown {var}", q.panel))?,
            None => vec![String::new()],
        };
        for choice in choices {
            if let Some(var) = &q.repeat {
                values.insert(var.clone(), choice.clone());
            }
            let panel = q.repeat.as_ref().map_or(q.panel.clone(), |var| q.panel.replace(&format!("${var}"), &choice));
            all.push((panel, substitute(&q.expr, &values)));
        }
    }
    Ok(all)
}

#[tokio::test]
#[ignore = "needs a cluster: run through tests/run.sh"]
async fn every_panel_of_the_dashboard_has_data_from_a_running_operator() {
    let c = cluster().await;
    let d = dashboard();
    let app = App::start(&c.namespace, TARGET).await;
    let op = c.operator("replica-a");
    // The rules depend on the profile's namespace, name, target, queries and SLO, not on where Prometheus is.
    let rules = slo_rules(&shop(&c.namespace, "http://127.0.0.1:9"));
    let jobs = [("perf-operator", format!("127.0.0.1:{}", op.admin_port)), ("app", app.address.clone())];
    let prom = Prometheus::start(&jobs, Some(&rules)).await;
    let _lookups = RedisLookups::start();

    create_app(&c.api(), TARGET, OLD, 4).await;
    create_app(&c.api(), BROKEN, OLD, 1).await;
    let _kubelet = kubelet::run(c.api::<Pod>());
    let profiles = c.profiles();
    profiles.create(&PostParams::default(), &shop(&c.namespace, &prom.url)).await.expect("create profile");
    profiles.create(&PostParams::default(), &broken(&c.namespace)).await.expect("create broken profile");
    wait_canary(&c, 90, "the primary serving (Idle)", |s| s.phase == CanaryPhase::Idle).await;

    // A run that fails its checks and rolls back, then a healthy one held (paused) at its second stage.
    app.set_canary(Behaviour::erroring(0.2));
    set_image(&c.api(), TARGET, "registry.example/shop:2").await;
    wait_canary(&c, 120, "the failing run rolled back", |s| s.phase == CanaryPhase::RolledBack).await;
    app.set_canary(Behaviour::healthy());
    set_image(&c.api(), TARGET, "registry.example/shop:3").await;
    wait_canary(&c, 120, "the healthy run at its second stage", |s| {
        s.phase == CanaryPhase::Progressing && s.stage_index >= Some(1)
    })
    .await;
    canary_cli(&["pause", TARGET], &c.namespace).await;
    wait_canary(&c, 30, "the run paused", |s| s.paused).await;
    let rollbacks = format!(
        r#"perf_operator_canary_rollbacks_total{{namespace="{}",profile="{TARGET}",reason="RolledBack"}}"#,
        c.namespace
    );
    assert_eq!(op.metric(&rollbacks).await, Some(1.0), "the rollback was not counted");

    // Every query answers with data once Prometheus has scraped a minute of it (rate() over $__rate_interval).
    let started = Instant::now();
    let mut checked = 0;
    let problems = loop {
        let mut problems = Vec::new();
        match expanded(&prom, &d, &c.namespace).await {
            Ok(all) => {
                checked = all.len();
                for (panel, expr) in all {
                    if let Some(p) = problem(&prom, &expr).await {
                        problems.push(format!("{panel}: {p}: {expr}"));
                    }
                }
            }
            Err(e) => problems.push(e),
        }
        if problems.is_empty() || started.elapsed() > Duration::from_secs(150) {
            break problems;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    let down = prom.targets_down().await;
    assert!(problems.is_empty(), "panels without data:\n{}\ntargets down: {down:?}", problems.join("\n"));
    eprintln!("all {checked} queries returned data after {:.0} s", started.elapsed().as_secs_f64());

    // Every metric a panel or a variable names: the operator's, a recording rule of its own, or the app's.
    let (_, operator_text) = op.get("/metrics").await.expect("the operator's /metrics");
    let operator = exposed_names(&operator_text);
    let app_names = exposed_names(&app.exposition());
    let records: BTreeSet<String> = rules["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["record"].as_str().map(String::from))
        .collect();
    let mut unknown = Vec::new();
    let selectors = variables(&d).into_iter().map(|(name, q)| (format!("variable {name}"), label_values(&q).0));
    let exprs = queries(&d).into_iter().map(|q| (q.panel, q.expr)).chain(selectors);
    let own = vars(&[("namespace", &c.namespace), ("profile", TARGET), ("check", "requests")]);
    for (panel, expr) in exprs {
        for name in metric_names(&substitute(&expr, &own)).expect("parses") {
            if !(operator.contains(&name) || records.contains(&name) || app_names.contains(&name)) {
                unknown.push(format!("{panel}: {name}"));
            }
        }
    }
    assert!(unknown.is_empty(), "metrics no one exports: {unknown:?}\noperator exports: {operator:?}");

    // A profile deleted without a finalizer takes its series with it.
    assert!(operator_text.contains(&format!(r#"profile="{BROKEN}""#)), "no series of {BROKEN}");
    profiles.delete(BROKEN, &DeleteParams::default()).await.expect("delete");
    c.eventually(30, "the deleted profile's series gone", || async {
        let (_, text) = op.get("/metrics").await?;
        (!text.contains(&format!(r#"profile="{BROKEN}""#))).then_some(())
    })
    .await;
}
