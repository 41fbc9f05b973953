//! One analysis, case by case, against a real Prometheus (tests/support/prometheus.rs) and stand-ins for broken
//! ones (tests/support/http.rs): each case's verdict, exit code and message, by `canary analyze` (its library
//! entry point) and by the operator's analysis step (observe -> decide on an in-memory API server). The slow cases'
//! wall time is bounded by the analysis's one deadline.

mod support;

use perf_canary::analyze::{AnalyzeArgs, EXIT_ENDPOINT, EXIT_FAIL, EXIT_NO_DATA, EXIT_PASS, EXIT_UNREACHABLE, analyze};
use perf_canary::{Prometheus, analysis};
use perf_operator_api::{CanarySpec, CheckVerdict, MetricCheck, PerformanceProfile};
use std::time::{Duration, Instant};
use support::*;

/// Step interval of every profile here: the window of the queries, and the operator's analysis deadline.
const STEP: &str = "3s";
/// Deadline given to `canary analyze`.
const DEADLINE: Duration = Duration::from_secs(3);
/// Slack over a deadline for the wall time of a case (scheduling on a busy 2-core machine, not the queries).
const SLACK: Duration = Duration::from_secs(2);

/// Where the case's Prometheus URL points.
#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Real,
    Fixed(u16, &'static str, &'static str),
    Refused,
    BlackHole,
    /// The real Prometheus, every answer delayed.
    Delayed(Duration),
}

struct Case {
    name: &'static str,
    target: &'static str,
    endpoint: Endpoint,
    tweak: fn(&mut CanarySpec),
    verdict: CheckVerdict,
    exit: i32,
    /// Text the report (analyze) and the status message (operator) must contain.
    says: &'static str,
}

const fn case(name: &'static str, target: &'static str, verdict: CheckVerdict, exit: i32, says: &'static str) -> Case {
    Case { name, target, endpoint: Endpoint::Real, tweak: |_| {}, verdict, exit, says }
}

fn metric(name: &str, query: &str, max: f64) -> MetricCheck {
    MetricCheck { name: name.into(), query: query.into(), max: Some(max), ..MetricCheck::default() }
}

const CANARY_SERIES: &str = r#"count(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*"})"#;

fn cases() -> Vec<Case> {
    use CheckVerdict::{Fail, NoData, Pass};
    let errors_bound_2_percent = |s: &mut CanarySpec| s.analysis.max_error_rate_percent = Some(2.0);
    let ghost_selector = r#"no series match http_requests_total{namespace="shop", pod=~"ghost-canary-.*"} in the last 3s (namespace shop)"#;
    vec![
        case("healthy with zero errors", "clean", Pass, EXIT_PASS, "pass"),
        Case { tweak: errors_bound_2_percent, ..case("errors just under", "errs-low", Pass, EXIT_PASS, "pass") },
        Case { tweak: errors_bound_2_percent, ..case("errors just over", "errs-high", Fail, EXIT_FAIL, "error-rate") },
        case("p99 just under 150 ms", "p99-low", Pass, EXIT_PASS, "pass"),
        case("p99 just over 150 ms", "p99-high", Fail, EXIT_FAIL, "p99-latency"),
        Case {
            // 0.125 s per series of the canary: exactly 125 ms for a clean canary (one series), at the strict bound.
            tweak: |s| {
                s.analysis.max_p99_latency_ms = Some(125);
                s.analysis.queries.p99_latency_seconds = Some(format!("0.125 * {CANARY_SERIES}"));
            },
            ..case("p99 exactly at its strict bound", "clean", Fail, EXIT_FAIL, "p99-latency")
        },
        Case {
            tweak: |s| s.analysis.metrics = vec![metric("series", CANARY_SERIES, 1.0)],
            ..case("custom metric exactly at its inclusive bound", "clean", Pass, EXIT_PASS, "pass")
        },
        Case {
            tweak: |s| s.analysis.min_requests = 400,
            ..case("thin traffic", "thin", NoData, EXIT_NO_DATA, "too few requests")
        },
        case("no traffic at all", "idle", NoData, EXIT_NO_DATA, "too few requests: 0 in the window, need 20"),
        case("no canary series", "ghost", NoData, EXIT_NO_DATA, ghost_selector),
        Case {
            tweak: |s| {
                let p50 = r#"histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{namespace}}", pod=~"{{canary}}-.*"}[{{interval}}])))"#;
                s.analysis.metrics = vec![metric("p50", p50, 1.0)];
            },
            ..case("NaN", "idle", NoData, EXIT_NO_DATA, "value is NaN")
        },
        Case {
            // Every request fails: errors per success is x/0.
            tweak: |s| {
                let per_success = r#"sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*", code=~"5.."}[{{interval}}])) / sum(rate(http_requests_total{namespace="{{namespace}}", pod=~"{{canary}}-.*", code!~"5.."}[{{interval}}]))"#;
                s.analysis.metrics = vec![metric("errors-per-success", per_success, 0.01)];
            },
            ..case("+Inf", "broken", Fail, EXIT_FAIL, "value is +Inf")
        },
        Case {
            tweak: |s| {
                // PromQL that parses (so it passes the namespace check) but Prometheus refuses: an invalid regex.
                let refused = r#"label_replace(sum(rate(http_requests_total{namespace="{{namespace}}"}[{{interval}}])), "a", "$1", "b", "(")"#;
                s.analysis.metrics = vec![metric("throughput", refused, 1e9)];
            },
            ..case("rejected PromQL", "clean", Fail, EXIT_FAIL, "Prometheus rejected the query (")
        },
        Case {
            endpoint: Endpoint::Fixed(401, "text/plain", "Unauthorized"),
            ..case("401", "clean", NoData, EXIT_ENDPOINT, "missing or wrong credentials")
        },
        Case {
            endpoint: Endpoint::Fixed(404, "text/plain", "404 page not found"),
            ..case("404", "clean", NoData, EXIT_ENDPOINT, "HTTP 404")
        },
        Case {
            endpoint: Endpoint::Fixed(200, "text/html", "<html><title>Sign in</title></html>"),
            ..case("HTML page", "clean", NoData, EXIT_ENDPOINT, "an HTML page")
        },
        Case {
            endpoint: Endpoint::Refused,
            ..case("refused", "clean", NoData, EXIT_UNREACHABLE, "connection refused")
        },
        Case { endpoint: Endpoint::BlackHole, ..case("black hole", "clean", NoData, EXIT_UNREACHABLE, "no answer") },
        Case {
            endpoint: Endpoint::Delayed(Duration::from_secs(30)),
            ..case("slower than the deadline", "clean", NoData, EXIT_UNREACHABLE, "no answer")
        },
        Case {
            // Three built-in queries at 1.2 s each: 3.6 s one after the other, within 3 s only side by side.
            endpoint: Endpoint::Delayed(Duration::from_millis(1200)),
            ..case("slow but within the deadline", "clean", Pass, EXIT_PASS, "pass")
        },
    ]
}

/// Prometheus with every target of [`cases`] served and settled (a full window of scrapes for every series).
async fn prometheus() -> PrometheusFixture {
    let prom = PrometheusFixture::start().await;
    let behaviours = [
        ("clean", Behaviour::healthy()),
        ("errs-low", Behaviour::erroring(0.014)),
        ("errs-high", Behaviour::erroring(0.026)),
        // All in one bucket: p99 = 145 + 5 x 0.99 = 149.95 ms, and 150 + 5 x 0.99 = 154.95 ms.
        ("p99-low", Behaviour::slow(Duration::from_millis(147))),
        ("p99-high", Behaviour::slow(Duration::from_millis(152))),
        ("thin", Behaviour::thin(1)),
        ("idle", Behaviour::thin(0)),
        ("broken", Behaviour::erroring(1.0)),
    ];
    for (target, behaviour) in behaviours {
        prom.serve(NS, target, behaviour).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    prom
}

async fn url_of(endpoint: Endpoint, prom: &PrometheusFixture) -> String {
    match endpoint {
        Endpoint::Real => prom.url.clone(),
        Endpoint::Fixed(status, content_type, body) => fixed(status, content_type, body).await,
        Endpoint::Refused => closed_port(),
        Endpoint::BlackHole => black_hole().await,
        Endpoint::Delayed(delay) => delaying(&prom.url, delay).await,
    }
}

fn profile_for(case: &Case) -> PerformanceProfile {
    let mut p = profile(case.target, STEP);
    if let Some(canary) = p.spec.canary.as_mut() {
        (case.tweak)(canary);
    }
    p
}

/// What the last line of `analyze` starts with for each exit code.
fn last_line_word(code: i32) -> &'static str {
    match code {
        EXIT_PASS => "pass:",
        EXIT_FAIL => "fail:",
        EXIT_NO_DATA => "no data:",
        EXIT_UNREACHABLE => "unreachable:",
        EXIT_ENDPOINT => "wrong endpoint or credentials:",
        _ => "bad input:",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_gives_each_case_its_verdict_exit_code_and_message_within_one_deadline() {
    let prom = prometheus().await;
    let mut wrong = Vec::new();
    for case in cases() {
        let url = url_of(case.endpoint, &prom).await;
        let path = std::env::temp_dir().join(format!("perf-canary-analysis-{}.yaml", std::process::id()));
        std::fs::write(&path, serde_json::to_string(&profile_for(&case)).unwrap()).unwrap();
        let args = AnalyzeArgs {
            name: None,
            file: Some(path),
            kubeconfig: None,
            context: None,
            prometheus: Some(url),
            namespace: None,
            timeout: DEADLINE,
            access: Default::default(),
            templates: Vec::new(),
        };
        let started = Instant::now();
        let mut out = Vec::new();
        let code = analyze(&args, &mut out).await.unwrap();
        let took = started.elapsed();
        let out = String::from_utf8(out).unwrap();
        let last = out.lines().last().unwrap_or_default();
        eprintln!("{:<46} exit {code} in {took:>6.2?}: {last}", case.name);
        let agrees = last.starts_with(last_line_word(code)) && last.ends_with(&format!("(exit {code})"));
        if code != case.exit || !out.contains(case.says) || !agrees || took > DEADLINE + SLACK {
            wrong.push(format!(
                "{}: exit {code} (want {}) in {took:?}, want {:?}:\n{out}",
                case.name, case.exit, case.says
            ));
        }
    }
    assert!(wrong.is_empty(), "{} case(s) wrong:\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_step_gives_each_case_its_verdict_and_message_within_its_step() {
    let prom = prometheus().await;
    let step = perf_operator_api::duration::parse_duration(STEP).unwrap();
    let mut wrong = Vec::new();
    for case in cases() {
        let url = url_of(case.endpoint, &prom).await;
        let source = Prometheus::new(&url, perf_prometheus::TIMEOUT).unwrap();
        let mut cluster = Cluster::with(profile_for(&case), &format!("shop/{}:1", case.target), vec![]).await;
        cluster.after(0, &source).await;
        cluster.after(1, &source).await;
        cluster.deploy(&format!("shop/{}:2", case.target)).await;
        cluster.after(1, &source).await;
        cluster.after(1, &source).await;
        let started = Instant::now();
        let analysed = cluster.after(step.as_secs() as i64, &source).await;
        let took = started.elapsed();
        let record = analysed.status.analyses.first().cloned().unwrap_or_default();
        let message = analysed.status.message.clone().unwrap_or_default();
        eprintln!("{:<46} {:?} in {took:>6.2?}: {message}", case.name, record.verdict);
        let said = if case.verdict == CheckVerdict::Pass {
            record.checks.iter().all(|c| c.verdict == CheckVerdict::Pass)
        } else {
            message.contains(case.says)
        };
        let bound = analysis::deadline(step) + SLACK;
        if analysed.analysis.is_none() || record.verdict != case.verdict || !said || took > bound {
            wrong.push(format!(
                "{}: {:?} in {took:?}, want {:?} saying {:?}: {message}\n{record:#?}",
                case.name, record.verdict, case.verdict, case.says
            ));
        }
    }
    assert!(wrong.is_empty(), "{} case(s) wrong:\n{}", wrong.len(), wrong.join("\n"));
}

/// A Prometheus that dies between two analyses (SIGKILL): the first passes, the second is unreachable with the
/// connection refused, within the one deadline, and says so on its last line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_killed_between_analyses_is_unreachable() {
    let mut prom = PrometheusFixture::start().await;
    prom.serve(NS, "clean", Behaviour::healthy()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let path = std::env::temp_dir().join(format!("perf-canary-killed-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&profile("clean", STEP)).unwrap()).unwrap();
    let args = AnalyzeArgs {
        name: None,
        file: Some(path),
        kubeconfig: None,
        context: None,
        prometheus: Some(prom.url.clone()),
        namespace: None,
        timeout: DEADLINE,
        access: Default::default(),
        templates: Vec::new(),
    };
    let mut out = Vec::new();
    assert_eq!(analyze(&args, &mut out).await.unwrap(), EXIT_PASS, "{}", String::from_utf8_lossy(&out));
    prom.kill();
    let (started, mut out) = (Instant::now(), Vec::new());
    let code = analyze(&args, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, EXIT_UNREACHABLE, "{out}");
    assert!(out.contains("connection refused"), "{out}");
    assert!(out.lines().last().unwrap_or_default().starts_with("unreachable:"), "{out}");
    assert!(started.elapsed() <= DEADLINE + SLACK, "took {:?}", started.elapsed());
}
