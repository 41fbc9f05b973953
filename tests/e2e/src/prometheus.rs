//! A real Prometheus (`PROMETHEUS_BIN`, Debian's `/usr/bin/prometheus` by default) on a free 127.0.0.1 port with a
//! temporary directory, scraping the targets a test names every second and evaluating its rule files; and a
//! simulated app serving `http_requests_total` and `http_request_duration_seconds` for the primary and canary pods
//! of a target, as the canary's default gate queries expect them (labels `namespace`, `pod`, `code`).

use perf_test_support::prometheus::{Process, Setup};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A Prometheus process; killed on drop, its directory removed.
pub struct Prometheus {
    pub url: String,
    process: Process,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, host:port)` every second (with `honor_labels`, as a ServiceMonitor
    /// for the operator needs) and evaluating `rules` (a rule file's content: JSON is YAML) every second; returns
    /// once its API answers.
    pub async fn start(jobs: &[(&str, String)], rules: Option<&Value>) -> Self {
        let setup = Setup::new("e2e");
        let mut config = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
        if let Some(rules) = rules {
            let file = setup.dir.join("rules.yml");
            std::fs::write(&file, rules.to_string()).expect("rule file");
            config.push_str(&format!("rule_files: ['{}']\n", file.display()));
        }
        config.push_str("scrape_configs:\n");
        for (job, target) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    honor_labels: true\n    static_configs: [{{targets: ['{target}']}}]\n"
            ));
        }
        let process = setup.start(&config, &[], "http");
        let prometheus = Self { url: process.url.clone(), process };
        let started = Instant::now();
        while prometheus.query("vector(1)").await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "Prometheus not ready in 60 s:\n{}", prometheus.log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        prometheus
    }

    /// `GET /api/v1/<path>` with `params`: the `data` of a successful answer, else the error Prometheus gave.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/{path}", self.url))
            .query(params)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("Prometheus unreachable: {e}"))?;
        let text = response.text().await.map_err(|e| format!("no answer: {e}"))?;
        let body: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"].as_str().unwrap_or("?"), body["error"].as_str().unwrap_or("?")))
        }
    }

    /// An instant query: the series of its result (a scalar or string result is one), or Prometheus's error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        Ok(match &data["result"] {
            Value::Array(series) => series.clone(),
            other => vec![other.clone()],
        })
    }

    /// The values of `label` on the series `selector` matches (Grafana's `label_values(selector, label)`).
    pub async fn label_values(&self, label: &str, selector: &str) -> Result<Vec<String>, String> {
        let data = self.api(&format!("label/{label}/values"), &[("match[]", selector)]).await?;
        Ok(data.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect())
    }

    /// Whether every scrape target is up, and the ones that are not.
    pub async fn targets_down(&self) -> Vec<String> {
        let Ok(data) = self.api("targets", &[]).await else { return vec!["targets API not answering".into()] };
        let targets = data["activeTargets"].as_array().cloned().unwrap_or_default();
        targets
            .iter()
            .filter(|t| t["health"] != "up")
            .map(|t| format!("{} {}: {}", t["labels"]["job"], t["health"], t["lastError"]))
            .collect()
    }

    /// Prometheus's own log.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// How the canary pod answers: latency of every request and the share that fails with a 500.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    pub latency: Duration,
    pub error_ratio: f64,
}

impl Behaviour {
    pub fn healthy() -> Self {
        Self { latency: Duration::from_millis(40), error_ratio: 0.0 }
    }
    pub fn erroring(error_ratio: f64) -> Self {
        Self { error_ratio, ..Self::healthy() }
    }
}

/// The simulated app of one target: a primary pod (always healthy) and a canary pod, 250 requests/s each.
#[derive(Clone)]
pub struct App {
    /// `host:port` of its `/metrics`.
    pub address: String,
    canary: Arc<Mutex<Behaviour>>,
    registry: Registry,
}

impl App {
    /// Serves the pods `<target>-primary-*` and `<target>-canary-*` of `namespace`, from now until the test ends.
    pub async fn start(namespace: &str, target: &str) -> Self {
        let registry = Registry::new();
        // Fine buckets around 150 ms (the default objective).
        let buckets = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.14, 0.15, 0.16, 0.2, 0.3, 0.5, 1.0, 2.5];
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Request latency").buckets(buckets),
            &["namespace", "pod", "route"],
        )
        .expect("histogram");
        // One route, `/`, as the Python client labels requests: the rate-limit policy reads traffic by route.
        let requests =
            IntCounterVec::new(Opts::new("http_requests_total", "Requests"), &["namespace", "pod", "code", "route"])
                .expect("counter");
        registry.register(Box::new(latency.clone())).expect("register");
        registry.register(Box::new(requests.clone())).expect("register");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the app");
        let app = Self {
            address: listener.local_addr().expect("address").to_string(),
            canary: Arc::new(Mutex::new(Behaviour::healthy())),
            registry,
        };
        let served = app.clone();
        let router =
            axum::Router::new().route("/metrics", axum::routing::get(move || std::future::ready(served.exposition())));
        tokio::spawn(async move { axum::serve(listener, router).await });
        // Pod names as Kubernetes gives them to `<target>-primary` and `<target>-canary`.
        let (primary, canary_pod) =
            (format!("{target}-primary-7c9d8bf5d-x2k4p"), format!("{target}-canary-5f6b7c8d9-q7m2w"));
        let (namespace, canary) = (namespace.to_string(), app.canary.clone());
        tokio::spawn(async move {
            // Errors owed to the canary's error ratio, carried from tick to tick.
            let mut owed = 0.0;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let now = *canary.lock().expect("lock");
                for (pod, b) in [(&primary, Behaviour::healthy()), (&canary_pod, now)] {
                    owed += 5.0 * b.error_ratio;
                    let errors = owed.floor() as u64;
                    owed -= errors as f64;
                    let observed = latency.with_label_values(&[namespace.as_str(), pod, "/"]);
                    (0..5).for_each(|_| observed.observe(b.latency.as_secs_f64()));
                    requests.with_label_values(&[namespace.as_str(), pod, "200", "/"]).inc_by(5 - errors);
                    if errors > 0 {
                        requests.with_label_values(&[namespace.as_str(), pod, "500", "/"]).inc_by(errors);
                    }
                }
            }
        });
        app
    }

    /// Changes how the canary pod answers from now on.
    pub fn set_canary(&self, behaviour: Behaviour) {
        *self.canary.lock().expect("lock") = behaviour;
    }

    /// The text exposition Prometheus scrapes.
    pub fn exposition(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("encode");
        String::from_utf8(out).expect("utf-8")
    }
}

/// The metric names of a text exposition (each sample's name: `_bucket`, `_sum`, `_count` of a histogram).
pub fn exposed_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}
