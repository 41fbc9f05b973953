//! Rate limits enforced by Envoy's rate-limit service, the real one (built from the Go module proxy at the commit
//! Envoy Gateway pins, `PERF_RATELIMIT_DIR`), backed by Debian's Redis, bound to 127.0.0.1, loading the
//! configuration `plan` renders the way a mounted ConfigMap changes (a `..data` symlink swapped). Through its
//! `POST /json`: N requests pass and the next is refused; the policy lowers a limit, the new configuration holds it;
//! the service's over-limit counter, scraped by a real Prometheus, comes back through the query the operator asks
//! as the policy's rejections. Minute windows and small N, so a loaded machine does not flake.

mod fixtures;

use fixtures::World;
use perf_operator::plan::{self, Observations};
use perf_operator_api::PerformanceProfile;
use perf_test_support::{free_port, prometheus};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fixtures' profile (`risk/risk-api`), so the reconcile of the last phase asks about the same domain.
const NAMESPACE: &str = fixtures::NS;

fn profile(policy: Option<&str>) -> PerformanceProfile {
    let mut rate_limit = json!({
        "routes": [{"route": "/a", "requestsPerSecond": 1, "burst": 1}, {"route": "/b", "requestsPerSecond": 2, "burst": 2}],
        "enforcement": {"mode": "rateLimitService", "window": "Minute"}
    });
    if let Some(prometheus) = policy {
        rate_limit["policy"] = json!({"builtin": "adaptive-rate-limit", "settings": {"decreaseFactor": 0.5}});
        rate_limit["prometheus"] = json!(prometheus);
    }
    serde_json::from_value(json!({
        "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "risk-api", "namespace": NAMESPACE},
        "spec": {"targetRef": {"name": "risk-api"}, "rateLimit": rate_limit}
    }))
    .expect("profile")
}

/// The configuration file `plan` renders for the profile, given the observations, and the plan's rateLimit section.
fn rendered(profile: &PerformanceProfile, observations: Value) -> (String, String, Value) {
    let observations: Observations = serde_json::from_value(observations).expect("observations");
    let plan = plan::plan_profile(profile, &observations);
    let section = plan.extra.get("rateLimit").cloned().expect("the plan's rateLimit section");
    let file = &section["configFile"];
    (file["name"].as_str().expect("name").into(), file["content"].as_str().expect("content").into(), section)
}

/// A directory laid out as the kubelet mounts a ConfigMap: `<key> -> ..data/<key>`, `..data -> ..<version>`.
struct Mounted {
    dir: PathBuf,
    version: u32,
}

impl Mounted {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("config dir");
        Self { dir, version: 0 }
    }

    /// Writes a new version and swaps `..data` to it atomically, as the kubelet does.
    fn swap(&mut self, key: &str, content: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir_all(self.dir.join(&version)).expect("version dir");
        std::fs::write(self.dir.join(&version).join(key), content).expect("config file");
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        let link = self.dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(key), &link).expect("key symlink");
        }
    }
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis(dir: &Path) -> (Running, u16) {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
    let port = free_port();
    let child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} (apt-get install redis-server, or set REDIS_SERVER_BIN): {e}"));
    (Running(child), port)
}

struct Service {
    _process: Running,
    http: String,
    debug: String,
    metrics_port: u16,
}

fn rate_limit_service(root: &Path, redis_port: u16) -> Service {
    let dir = perf_test_support::env_path("PERF_RATELIMIT_DIR");
    let [http, grpc, debug, metrics] = [free_port(), free_port(), free_port(), free_port()];
    let log = std::fs::File::create(root.join("ratelimit.log")).expect("log");
    let child = Command::new(dir.join("ratelimit"))
        .env_clear()
        .envs([
            ("USE_STATSD", "false".to_string()),
            ("USE_PROMETHEUS", "true".into()),
            ("PROMETHEUS_ADDR", format!("127.0.0.1:{metrics}")),
            ("STATS_FLUSH_INTERVAL", "1s".into()),
            ("HOST", "127.0.0.1".into()),
            ("PORT", http.to_string()),
            ("GRPC_HOST", "127.0.0.1".into()),
            ("GRPC_PORT", grpc.to_string()),
            ("DEBUG_HOST", "127.0.0.1".into()),
            ("DEBUG_PORT", debug.to_string()),
            ("REDIS_SOCKET_TYPE", "tcp".into()),
            ("REDIS_URL", format!("127.0.0.1:{redis_port}")),
            // A mounted ConfigMap: watch the directory itself, skip the kubelet's dot-directories.
            ("RUNTIME_ROOT", root.display().to_string()),
            ("RUNTIME_SUBDIRECTORY", "ratelimit".into()),
            ("RUNTIME_APPDIRECTORY", "config".into()),
            ("RUNTIME_WATCH_ROOT", "false".into()),
            ("RUNTIME_IGNOREDOTFILES", "true".into()),
            ("LOG_LEVEL", "info".into()),
        ])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start the rate-limit service");
    Service {
        _process: Running(child),
        http: format!("http://127.0.0.1:{http}"),
        debug: format!("http://127.0.0.1:{debug}"),
        metrics_port: metrics,
    }
}

/// Waits until `check` passes, polling every 200 ms.
async fn until<T>(secs: u64, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One `POST /json` for `route`: the HTTP status (200 within the limit, 429 over it).
async fn ask(client: &reqwest::Client, service: &Service, domain: &str, route: &str) -> u16 {
    let body = json!({"domain": domain, "descriptors": [{"entries": [{"key": "route", "value": route}]}]});
    let answer = client.post(format!("{}/json", service.http)).json(&body).send().await.expect("POST /json");
    answer.status().as_u16()
}

/// `n` asks within one minute window: waits for a fresh window when the current one is near its end.
async fn burst(client: &reqwest::Client, service: &Service, domain: &str, route: &str, n: usize) -> Vec<u16> {
    let second = jiff::Timestamp::now().as_second().rem_euclid(60);
    if second > 45 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
    let minute = jiff::Timestamp::now().as_second() / 60;
    let mut codes = Vec::with_capacity(n);
    for _ in 0..n {
        codes.push(ask(client, service, domain, route).await);
    }
    assert_eq!(jiff::Timestamp::now().as_second() / 60, minute, "the burst crossed a minute: the machine is too slow");
    codes
}

async fn prometheus_value(client: &reqwest::Client, url: &str, query: &str) -> Option<f64> {
    let answer: Value =
        client.get(format!("{url}/api/v1/query")).query(&[("query", query)]).send().await.ok()?.json().await.ok()?;
    answer["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn the_rate_limit_service_enforces_what_the_operator_renders_and_reports_its_rejections() {
    let root = std::env::temp_dir().join(format!("perf-ratelimit-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&root);
    let (_redis, redis_port) = redis(&{
        let d = root.join("redis");
        std::fs::create_dir_all(&d).expect("redis dir");
        d
    });
    let mut mounted = Mounted::new(root.join("ratelimit").join("config"));
    // The spec's limits: /a 1/s, /b 2/s, counted per minute.
    let (key, config, _) = rendered(&profile(None), json!({}));
    assert_eq!(key, "risk_risk-api.yaml");
    mounted.swap(&key, &config);
    let service = rate_limit_service(&root, redis_port);
    let client = reqwest::Client::new();
    until(30, "the service's health check", async || {
        let ok = client.get(format!("{}/healthcheck", service.http)).send().await.ok()?.status().is_success();
        ok.then_some(())
    })
    .await;
    let domain = "risk_risk-api";

    // N = 60 pass in the minute, the next is refused.
    let codes = burst(&client, &service, domain, "/a", 61).await;
    assert!(codes[..60].iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(codes[60], 429);

    // The policy sees /b breach the SLO and halves it: 120 -> 60 a minute, re-rendered and swapped in.
    let breaching = json!({"traffic": {
        "/a": {"requestsPerSecond": 0.5, "p99LatencyMs": 20.0, "errorPercent": 0.0, "rejectedPerSecond": 0.0},
        "/b": {"requestsPerSecond": 1.5, "p99LatencyMs": 900.0, "errorPercent": 0.0, "rejectedPerSecond": 0.0}}});
    let (_, lowered, section) = rendered(&profile(Some("http://prometheus.invalid:9090")), breaching);
    let b = section["enforced"].as_array().and_then(|e| e.iter().find(|l| l["route"] == "/b")).cloned();
    assert_eq!(b, Some(json!({"route": "/b", "requests": 60, "window": "Minute"})), "{section}");
    mounted.swap(&key, &lowered);
    until(30, "the lowered limit loaded", async || {
        let dump = client.get(format!("{}/rlconfig", service.debug)).send().await.ok()?.text().await.ok()?;
        dump.lines().any(|l| l.contains("route_/b") && l.contains("requests_per_unit=60")).then_some(())
    })
    .await;
    let codes = burst(&client, &service, domain, "/b", 61).await;
    assert!(codes[..60].iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(codes[60], 429, "the lowered limit holds");

    // The over-limit counter and the app's traffic, scraped by a real Prometheus; a reconcile of the profile asks
    // it as the operator does, and the policy's input carries the service's rejections.
    let app = app_metrics().await;
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: ratelimit\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n  - job_name: app\n    static_configs: [{{targets: ['{app}']}}]\n",
        service.metrics_port
    );
    let prom = prometheus::Setup::new("ratelimit").start(&config, &[], "http");
    let p = profile(Some(&prom.url));
    let backend = perf_operator::enforcement::backend(&p, &Default::default());
    let query = perf_operator::enforcement::rejections_query(&p, backend.as_ref(), "/a").expect("a rejections query");
    // Counters move between scrapes: more refused asks, a second apart.
    until(60, "rejections of /a in Prometheus", async || {
        for _ in 0..5 {
            ask(&client, &service, domain, "/a").await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        prometheus_value(&client, &prom.url, &query).await.filter(|v| *v > 0.0)
    })
    .await;
    let world = World::with(p, None).await.evaluating_every_round();
    let observed = until(60, "the policy's input", async || {
        world.reconcile().await.ok()?;
        let status = world.profile().await.status?;
        let observed = status.policies?.rate_limit?.observed.get("/a").copied()?;
        (observed.rejected_per_second > 0.0).then_some(observed)
    })
    .await;
    assert!(observed.requests_per_second > 0.0, "{observed:?}");
    let p = world.profile().await;
    assert_eq!(World::condition(&p, "RateLimitReady").1, "Enforced", "{:?}", World::condition(&p, "RateLimitReady"));
    let map =
        world.api::<k8s_openapi::api::core::v1::ConfigMap>().get("risk-api-ratelimit").await.expect("the ConfigMap");
    let written = map.data.unwrap_or_default().remove(&key).expect("the configuration file");
    assert!(written.contains("domain: risk_risk-api"), "{written}");
    let _ = std::fs::remove_dir_all(&root);
}

/// An app's `/metrics`: requests and latencies on `/a` in the fixtures' namespace, growing at each scrape.
async fn app_metrics() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = 100 * (1 + scrapes.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            let sel = format!("namespace=\"{NAMESPACE}\",route=\"/a\"");
            std::future::ready(format!(
                "# TYPE http_requests_total counter\nhttp_requests_total{{{sel},code=\"200\"}} {n}\n\
                 # TYPE http_request_duration_seconds histogram\n\
                 http_request_duration_seconds_bucket{{{sel},le=\"0.05\"}} {n}\n\
                 http_request_duration_seconds_bucket{{{sel},le=\"+Inf\"}} {n}\n\
                 http_request_duration_seconds_sum{{{sel}}} 1\nhttp_request_duration_seconds_count{{{sel}}} {n}\n"
            ))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// The service's own checker accepts every configuration the operator renders: edge routes, many routes, every
/// window, names with dots, one file per profile in one directory (distinct domains).
#[test]
fn the_config_checker_accepts_every_rendered_configuration() {
    let dir = std::env::temp_dir().join(format!("perf-ratelimit-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let many: Vec<Value> =
        (0..256).map(|i| json!({"route": format!("/r/{i}"), "requestsPerSecond": 1 + i, "burst": 1 + i})).collect();
    let edge =
        ["/", "/api/v1/risk", "/x:y|z", "/quote\"d", "/ünïcode/路径", "/with space", "/a/b/c/d/e/f/g/h", "route-name"];
    let edge: Vec<Value> = edge.iter().map(|r| json!({"route": r, "requestsPerSecond": 7, "burst": 7})).collect();
    let cases = [
        ("many", Value::Array(many), "Second"),
        ("edge", Value::Array(edge.clone()), "Minute"),
        ("v1.2.hourly", Value::Array(edge), "Hour"),
        ("max", json!([{"route": "/m", "requestsPerSecond": 1_193_046, "burst": 1_193_046}]), "Hour"),
    ];
    for (name, routes, window) in cases {
        let profile: PerformanceProfile = serde_json::from_value(json!({
            "apiVersion": "perf.operator.dev/v1alpha1", "kind": "PerformanceProfile",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"targetRef": {"name": name}, "rateLimit": {"routes": routes,
                "enforcement": {"mode": "rateLimitService", "window": window}}}
        }))
        .expect("profile");
        assert_eq!(perf_operator_api::validation::validate_spec(&profile.spec), vec![], "{name}");
        let (key, config, _) = rendered(&profile, json!({}));
        std::fs::write(dir.join(key), config).expect("write");
    }
    let bin = perf_test_support::env_path("PERF_RATELIMIT_DIR").join("config_check");
    let out = Command::new(bin).arg("-config_dir").arg(&dir).output().expect("config_check");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("all rate limit configs ok"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
