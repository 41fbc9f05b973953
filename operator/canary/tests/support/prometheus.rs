//! A real Prometheus (the `prometheus` binary, 1 s scrapes, temporary storage) scraping a simulated app in this
//! process: `http_request_duration_seconds` and `http_requests_total` for a primary and a canary pod per target,
//! labelled `namespace` and `pod`, with the latency and error rate the test sets.

use perf_canary::{MetricsSource, Prometheus};
use perf_test_support::prometheus::{Process, Setup};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a pod answers.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    pub latency: Duration,
    pub error_ratio: f64,
    /// Requests every 20 ms tick (5: 250 req/s).
    pub per_tick: u64,
}

impl Behaviour {
    pub fn healthy() -> Self {
        Self { latency: Duration::from_millis(40), error_ratio: 0.0, per_tick: 5 }
    }
    /// Serves `per_tick` requests every 20 ms (0: series exist, no traffic).
    pub fn thin(per_tick: u64) -> Self {
        Self { per_tick, ..Self::healthy() }
    }
    pub fn slow(latency: Duration) -> Self {
        Self { latency, ..Self::healthy() }
    }
    pub fn erroring(error_ratio: f64) -> Self {
        Self { error_ratio, ..Self::healthy() }
    }
}

struct Pod {
    namespace: String,
    behaviour: Behaviour,
    owed_errors: f64,
}

#[derive(Clone)]
struct App {
    pods: Arc<Mutex<BTreeMap<String, Pod>>>,
    /// Set by `set_canary`; the next scrape stamps `scraped_after_change`.
    change_pending: Arc<Mutex<bool>>,
    scraped_after_change: Arc<Mutex<Option<Instant>>>,
    registry: Registry,
    latency: HistogramVec,
    requests: IntCounterVec,
}

impl App {
    fn new() -> Self {
        let registry = Registry::new();
        // Fine buckets around 150 ms (the default bound), so a p99 can sit just under or just over it.
        let buckets =
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.14, 0.145, 0.15, 0.155, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, 2.5];
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Request latency").buckets(buckets),
            &["namespace", "pod"],
        )
        .unwrap();
        let requests =
            IntCounterVec::new(Opts::new("http_requests_total", "Requests"), &["namespace", "pod", "code"]).unwrap();
        registry.register(Box::new(latency.clone())).unwrap();
        registry.register(Box::new(requests.clone())).unwrap();
        Self {
            pods: Arc::default(),
            change_pending: Arc::default(),
            scraped_after_change: Arc::default(),
            registry,
            latency,
            requests,
        }
    }

    /// `per_tick` requests per pod every 20 ms. Like real apps, a pod exports its `code="500"` series only once
    /// it has served a 5xx.
    fn serve_traffic(&self) {
        let mut pods = self.pods.lock().unwrap();
        for (name, pod) in pods.iter_mut() {
            let n = pod.behaviour.per_tick;
            pod.owed_errors += n as f64 * pod.behaviour.error_ratio;
            let errors = pod.owed_errors.floor() as u64;
            pod.owed_errors -= errors as f64;
            let seconds = pod.behaviour.latency.as_secs_f64();
            let latency = self.latency.with_label_values(&[pod.namespace.as_str(), name]);
            for _ in 0..n {
                latency.observe(seconds);
            }
            self.requests.with_label_values(&[pod.namespace.as_str(), name, "200"]).inc_by(n - errors);
            if errors > 0 {
                self.requests.with_label_values(&[pod.namespace.as_str(), name, "500"]).inc_by(errors);
            }
        }
    }

    /// One real request to `pod` (as the load a hook sends): counted and timed with the pod's behaviour, answered
    /// with its status. Unknown pods get 404 and count nowhere.
    fn serve_one(&self, pod_name: &str) -> axum::http::StatusCode {
        let mut pods = self.pods.lock().unwrap();
        let Some(pod) = pods.get_mut(pod_name) else { return axum::http::StatusCode::NOT_FOUND };
        pod.owed_errors += pod.behaviour.error_ratio;
        let error = pod.owed_errors >= 1.0;
        if error {
            pod.owed_errors -= 1.0;
        }
        let namespace = pod.namespace.clone();
        self.latency.with_label_values(&[namespace.as_str(), pod_name]).observe(pod.behaviour.latency.as_secs_f64());
        let code = if error { "500" } else { "200" };
        self.requests.with_label_values(&[namespace.as_str(), pod_name, code]).inc();
        if error { axum::http::StatusCode::INTERNAL_SERVER_ERROR } else { axum::http::StatusCode::OK }
    }

    fn exposition(&self) -> String {
        let mut pending = self.change_pending.lock().unwrap();
        if *pending {
            *pending = false;
            *self.scraped_after_change.lock().unwrap() = Some(Instant::now());
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }
}

/// Pod names as Kubernetes gives them to `<target>-primary` and `<target>-canary`.
fn pod_names(target: &str) -> (String, String) {
    (format!("{target}-primary-7c9d8bf5d-x2k4p"), format!("{target}-canary-5f6b7c8d9-q7m2w"))
}

/// What a client needs to reach a fixture started with [`PrometheusFixture::start_secured`].
#[derive(Clone, Debug)]
pub struct Secured {
    pub ca_pem: String,
    pub username: String,
    pub password: String,
}

impl Secured {
    fn new() -> Self {
        Self { ca_pem: String::new(), username: "canary-reader".into(), password: format!("pw-{}", std::process::id()) }
    }

    fn access(&self) -> perf_prometheus::Access {
        perf_prometheus::Access {
            auth: Some(perf_prometheus::Auth::Basic {
                username: self.username.clone(),
                password: self.password.clone(),
            }),
            ca_pem: Some(self.ca_pem.clone().into_bytes()),
            headers: Vec::new(),
        }
    }

    /// Writes a test CA, a server certificate for 127.0.0.1 and the web config (TLS and basic auth) into `dir`;
    /// keeps the CA. Returns the `--web.config.file` path.
    fn write_web_config(&mut self, dir: &std::path::Path) -> PathBuf {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join("server.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        self.ca_pem = ca.pem();
        let hash = bcrypt::hash(&self.password, 4).unwrap();
        let web = format!(
            "tls_server_config:\n  cert_file: {0}/server.crt\n  key_file: {0}/server.key\nbasic_auth_users:\n  {1}: '{hash}'\n",
            dir.display(),
            self.username
        );
        std::fs::write(dir.join("web.yml"), web).unwrap();
        dir.join("web.yml")
    }
}

/// Prometheus plus the app it scrapes; both stop on drop.
pub struct PrometheusFixture {
    pub url: String,
    pub source: Prometheus,
    /// Set when Prometheus serves TLS with basic auth.
    pub secured: Option<Secured>,
    app: App,
    /// The simulated app: `GET /serve/<pod>` is one request served by that pod (see [`Self::canary_path`]).
    pub app_url: String,
    process: Process,
}

impl PrometheusFixture {
    /// Starts the app and Prometheus, and waits until `rate()` has a value (about 7 s after start).
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// [`PrometheusFixture::start`] with Prometheus behind TLS (a test CA) and basic auth (`--web.config.file`), as
    /// users run it.
    pub async fn start_secured() -> Self {
        Self::start_with(Some(Secured::new())).await
    }

    async fn start_with(mut secured: Option<Secured>) -> Self {
        let app = App::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_port = listener.local_addr().unwrap().port();
        let router = {
            let (app, served) = (app.clone(), app.clone());
            let serve =
                move |axum::extract::Path(pod): axum::extract::Path<String>| std::future::ready(served.serve_one(&pod));
            axum::Router::new()
                .route("/metrics", axum::routing::get(move || std::future::ready(app.exposition())))
                .route("/serve/{pod}", axum::routing::get(serve))
        };
        tokio::spawn(async move { axum::serve(listener, router).await });
        let traffic = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                traffic.serve_traffic();
            }
        });
        let setup = Setup::new("canary");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n"
        );
        let extra: Vec<String> = match secured.as_mut() {
            Some(secured) => vec![format!("--web.config.file={}", secured.write_web_config(&setup.dir).display())],
            None => Vec::new(),
        };
        let scheme = if secured.is_some() { "https" } else { "http" };
        let process = setup.start(&config, &extra, scheme);
        let url = process.url.clone();
        let access = secured.as_ref().map(Secured::access).unwrap_or_default();
        let source = Prometheus::with_access(&url, Duration::from_secs(5), access).unwrap();
        let app_url = format!("http://127.0.0.1:{app_port}");
        let fixture = Self { url, source, secured, app, app_url, process };
        fixture.add_pods("warmup", "app", Behaviour::healthy());
        fixture.wait_for_rates().await;
        fixture
    }

    async fn wait_for_rates(&self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = self.source.query("sum(rate(http_requests_total[3s]))").await {
                return;
            }
            let log = self.process.log();
            assert!(started.elapsed() < Duration::from_secs(90), "prometheus gave no rate() within 90 s; log:\n{log}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Serves a healthy primary pod and a canary pod behaving as `canary` for `namespace`/`target`, and waits
    /// until Prometheus holds three scrapes of the canary (enough for `rate()` over a 3 s window).
    pub async fn serve(&self, namespace: &str, target: &str, canary: Behaviour) {
        self.add_pods(namespace, target, canary);
        let query = format!(
            r#"count_over_time(http_requests_total{{namespace="{namespace}", pod=~"{target}-canary-.*", code="200"}}[3s])"#
        );
        let started = Instant::now();
        while !matches!(self.source.query(&query).await, Ok(Some(n)) if n >= 3.0) {
            assert!(started.elapsed() < Duration::from_secs(60), "prometheus never scraped {namespace}/{target}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn add_pods(&self, namespace: &str, target: &str, canary: Behaviour) {
        let (primary, canary_pod) = pod_names(target);
        let mut pods = self.app.pods.lock().unwrap();
        let pod = |behaviour| Pod { namespace: namespace.into(), behaviour, owed_errors: 0.0 };
        pods.insert(primary, pod(Behaviour::healthy()));
        pods.insert(canary_pod, pod(canary));
    }

    /// The path of one request to the canary pod of `target` (load aimed at the canary alone).
    pub fn canary_path(target: &str) -> String {
        format!("/serve/{}", pod_names(target).1)
    }

    /// Changes how the canary pod of `target` behaves from now on.
    pub fn set_canary(&self, target: &str, behaviour: Behaviour) {
        let (_, canary_pod) = pod_names(target);
        if let Some(pod) = self.app.pods.lock().unwrap().get_mut(&canary_pod) {
            pod.behaviour = behaviour;
        }
        *self.app.scraped_after_change.lock().unwrap() = None;
        *self.app.change_pending.lock().unwrap() = true;
    }

    /// When Prometheus first scraped the app after the last [`Self::set_canary`].
    pub fn first_scrape_after_change(&self) -> Option<Instant> {
        *self.app.scraped_after_change.lock().unwrap()
    }

    pub fn metrics(&self) -> &dyn MetricsSource {
        &self.source
    }
}

impl PrometheusFixture {
    /// Kills the Prometheus process (SIGKILL), as an OOM kill or a node loss would; the app keeps serving.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
